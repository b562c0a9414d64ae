/**
 * `agent completions bash|zsh|fish`: a completion script for the shell, made from the
 * commands themselves (names, summaries, subcommands, the flags their help lists), so it
 * cannot drift from them.
 */
import { type Command, COMMON_HELP, parseOrShowHelp, UsageError } from "./command.ts";

const HELP = `Usage: agent completions bash|zsh|fish

Prints a shell completion script for agent's commands, subcommands and flags:
  bash:  source <(agent completions bash)       (or save it in
         /etc/bash_completion.d/agent)
  zsh:   agent completions zsh > "\${fpath[1]}/_agent"
  fish:  agent completions fish > ~/.config/fish/completions/agent.fish
`;

/** Subcommands (positional words) of the commands that have them. */
const SUBCOMMANDS: Record<string, string[]> = {
  config: ["init", "check", "update"],
  actions: ["list", "new"],
  "mail-bridge": ["backfill", "failed"],
  service: ["install", "uninstall"],
  completions: ["bash", "zsh", "fish"],
  "ticket-api": ["token"],
  enrich: ["new", "list"],
};

/** The completions command for these commands (itself included). */
export function completionsCommand(commands: () => Command[]): Command {
  return {
    name: "completions",
    summary: "Print a shell completion script (bash, zsh, fish)",
    help: HELP,
    run(args, deps) {
      const parsed = parseOrShowHelp(
        { name: "completions", help: HELP },
        args,
        { help: { type: "boolean", short: "h" } },
        deps,
        { allowPositionals: true },
      );
      if (!parsed) return Promise.resolve(0);
      const [shell, ...extra] = parsed.positionals;
      if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`, "completions");
      const spec = commands().map((c) => ({
        name: c.name,
        summary: c.summary,
        flags: flagsOf(c.help),
        subcommands: SUBCOMMANDS[c.name] ?? [],
      }));
      if (shell === "bash") deps.stdout(bash(spec));
      else if (shell === "zsh") deps.stdout(zsh(spec));
      else if (shell === "fish") deps.stdout(fish(spec));
      else throw new UsageError("say bash, zsh or fish", "completions");
      return Promise.resolve(0);
    },
  };
}

interface Spec {
  name: string;
  summary: string;
  flags: string[];
  subcommands: string[];
}

/** The long flags a help text lists (the common ones included). */
function flagsOf(help: string): string[] {
  const flags = new Set<string>();
  for (const text of [help, COMMON_HELP]) {
    for (const m of text.matchAll(/(?:^|\s)(--[a-z][a-z0-9-]*)/gm)) flags.add(m[1]!);
  }
  flags.add("--help");
  return [...flags].sort();
}

const VALUE_FLAGS = "-c|--config|--record|--ticket-file|--unit-dir|--dir|--rest-fixtures";

function bash(spec: Spec[]): string {
  const cases = spec.map((c) =>
    `    ${c.name}) words="${[...c.subcommands, ...c.flags].join(" ")}" ;;`
  ).join("\n");
  return `# bash completion for agent: source <(agent completions bash)
_agent() {
  local cur prev words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [[ \$COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${
    spec.map((c) => c.name).join(" ")
  } version --help --version" -- "\$cur"))
    return
  fi
  case "\$prev" in
    ${VALUE_FLAGS}) COMPREPLY=($(compgen -f -- "\$cur")); return ;;
  esac
  case "\${COMP_WORDS[1]}" in
${cases}
    *) words="--help" ;;
  esac
  COMPREPLY=($(compgen -W "\$words" -- "\$cur"))
}
complete -o default -F _agent agent
`;
}

function zsh(spec: Spec[]): string {
  // zsh runs bash completion functions through bashcompinit.
  return `#compdef agent
# zsh completion for agent: agent completions zsh > "\${fpath[1]}/_agent"
autoload -U +X bashcompinit && bashcompinit
${bash(spec).split("\n").slice(1).join("\n")}`;
}

function fish(spec: Spec[]): string {
  const quote = (text: string) => `'${text.replace(/\\\\/g, "\\\\\\\\").replace(/'/g, "\\\\'")}'`;
  const lines = [
    "# fish completion for agent: agent completions fish > ~/.config/fish/completions/agent.fish",
    "complete -c agent -f",
  ];
  for (const c of spec) {
    lines.push(
      `complete -c agent -n __fish_use_subcommand -a ${c.name} -d ${quote(c.summary)}`,
    );
    for (const sub of c.subcommands) {
      lines.push(`complete -c agent -n '__fish_seen_subcommand_from ${c.name}' -a ${sub}`);
    }
    for (const flag of c.flags) {
      lines.push(
        `complete -c agent -n '__fish_seen_subcommand_from ${c.name}' -l ${flag.slice(2)}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}
