/**
 * `agent`: the edge agent's command line. Parses the command, builds the shared
 * dependencies once, dispatches, and maps errors to exit codes (the only place that calls
 * Deno.exit): 0 success, 1 failure, 2 usage or configuration error.
 */
import {
  type Command,
  type Deps,
  GLOBAL_SWITCHES,
  GLOBAL_VALUE_FLAGS,
  UsageError,
} from "./mod/cli/command.ts";
import { ConfigError } from "./mod/config/config.ts";
import { describeError } from "./mod/errors/classify.ts";
import { configCommand } from "./mod/config/command.ts";
import { doctorCommand } from "./mod/doctor/command.ts";
import { selftestCommand } from "./mod/doctor/selftest.ts";
import { ticketApiCommand } from "./mod/ticket_api/command.ts";
import { authorizeCommand, mailBridgeCommand } from "./mod/mail_bridge/command.ts";
import { runCommand } from "./mod/run/command.ts";
import { serviceCommand } from "./mod/systemd/command.ts";
import { VERSION } from "./mod/cli/version.ts";
import { completionsCommand } from "./mod/cli/completions.ts";
import { calendarCommand } from "./mod/calendar/command.ts";
import { enrichCommand } from "./mod/enrich/command.ts";
import { replayCommand } from "./mod/actions/replay_command.ts";
import { actionsCommand } from "./mod/actions/command.ts";

const COMMANDS: Command[] = [
  runCommand,
  calendarCommand,
  actionsCommand,
  mailBridgeCommand,
  authorizeCommand,
  ticketApiCommand,
  enrichCommand,
  doctorCommand,
  selftestCommand,
  serviceCommand,
  replayCommand,
  configCommand,
  completionsCommand(() => COMMANDS),
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 7) + 2;
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`);
  lines.push(`  ${"version".padEnd(width)}Print the version`);
  return `agent ${VERSION}: connects IBM SOAR, Microsoft 365, Jira and Tufin SecureChange

Usage: agent <command> [options]

Commands:
${lines.join("\n")}

Run "agent <command> --help" for a command's options.
`;
}

export async function main(argv: string[], deps: Deps): Promise<number> {
  let args = argv;
  // SecureChange may pass a script's whole Arguments string as one argv element.
  if (argv.length === 1 && /\s/.test(argv[0]!)) {
    try {
      const { splitArguments } = await import("./mod/securechange/trigger.ts");
      args = splitArguments(argv);
    } catch (error) {
      deps.stderr(`agent: ${(error as Error).message}\n`);
      return 2;
    }
  }
  args = commandFirst(args);
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    if (name === "help" && rest[0]) return main([rest[0], "--help"], deps);
    (name === undefined ? deps.stderr : deps.stdout)(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version" || name === "-V") {
    deps.stdout(`agent ${VERSION} (deno ${Deno.version.deno})\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const near = closest(name, [...COMMANDS.map((c) => c.name), "version", "help"]);
    deps.stderr(
      `agent: unknown command "${name}"${near ? ` (did you mean "${near}"?)` : ""}\n\n${usage()}`,
    );
    return 2;
  }
  try {
    return await command.run(rest, deps);
  } catch (error) {
    if (error instanceof UsageError) {
      deps.stderr(`agent ${command.name}: ${error.message}\n\n${command.help}\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      deps.stderr(`agent ${command.name}: ${error.message}\n`);
      return 2;
    }
    deps.stderr(`agent ${command.name}: ${describeError(error)}\n`);
    return 1;
  }
}

/**
 * The common options may come before the command (`agent -c app.config run`, as
 * resilient-circuits' users type): they are moved behind it.
 */
function commandFirst(args: string[]): string[] {
  const global: string[] = [];
  let i = 0;
  while (i < args.length) {
    const arg = args[i]!;
    const flag = arg.split("=")[0]!;
    if (GLOBAL_SWITCHES.includes(arg)) global.push(args[i++]!);
    else if (GLOBAL_VALUE_FLAGS.includes(flag)) {
      global.push(args[i++]!);
      if (!arg.includes("=") && i < args.length) global.push(args[i++]!);
    } else break;
  }
  if (!global.length || i >= args.length) return args;
  return [args[i]!, ...global, ...args.slice(i + 1)];
}

/** The known word nearest to `word` (a typo of it), if any is near enough. */
function closest(word: string, known: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const current = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
        previous = current;
      }
    }
    return row[b.length]!;
  };
  const ranked = known.map((k) => ({ k, d: distance(word.toLowerCase(), k) }))
    .sort((a, b) => a.d - b.d);
  const best = ranked[0];
  return best && best.d <= Math.max(1, Math.floor(best.k.length / 3)) ? best.k : undefined;
}

if (import.meta.main) {
  const controller = new AbortController();
  const stop = () => controller.abort(new Error("interrupted"));
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, stop);
  const encoder = new TextEncoder();
  const write = (file: typeof Deno.stdout) => (text: string) => {
    let bytes = encoder.encode(text);
    while (bytes.byteLength) bytes = bytes.subarray(file.writeSync(bytes));
  };
  const code = await main(Deno.args, {
    signal: controller.signal,
    stdout: write(Deno.stdout),
    stderr: write(Deno.stderr),
    env: (name) => Deno.env.get(name),
    isTerminal: Deno.stderr.isTerminal(),
  });
  Deno.exit(code);
}
