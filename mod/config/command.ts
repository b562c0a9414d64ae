/** `agent config init|check`. */
import { worldReadableSecrets } from "./secrets.ts";
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig } from "../cli/setup.ts";
import type { Config } from "./config.ts";
import { CONFIG_TEMPLATE } from "./template.ts";

const HELP = `Usage: agent config init [PATH] [--force]
       agent config check [--config FILE]

  init    Write a commented config template to PATH (default ./app.config).
          An existing file is left alone unless --force is given.
  check   Validate the config and print the effective settings, secrets masked.
          Exits 2 naming file, line, section and key when something is wrong.

${COMMON_HELP}`;

export const configCommand: Command = {
  name: "config",
  summary: "Write a config template or check a config file",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "config", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        force: { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const [action, ...rest] = positionals;
    if (action === "init") {
      if (rest.length > 1) throw new UsageError("config init takes at most one PATH", "config");
      const path = rest[0] ?? "app.config";
      try {
        await Deno.writeTextFile(path, CONFIG_TEMPLATE, { createNew: !values.force, mode: 0o600 });
      } catch (error) {
        if (error instanceof Deno.errors.AlreadyExists) {
          deps.stderr(`agent config init: ${path} exists; use --force to overwrite it\n`);
          return 1;
        }
        throw error;
      }
      deps.stdout(`Wrote ${path}. Edit it, then run: agent config check --config ${path}\n`);
      return 0;
    }
    if (action === "check") {
      if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`, "config");
      const config = await loadCommandConfig(values, deps);
      deps.stdout(describeConfig(config));
      for (const warning of config.warnings) deps.stderr(`warning: ${warning}\n`);
      const exposed = await worldReadableSecrets(config);
      if (exposed) deps.stderr(`warning: ${exposed}\n`);
      return 0;
    }
    throw new UsageError(
      action ? `unknown config action "${action}"` : "config needs init or check",
      "config",
    );
  },
};

/** The effective settings as INI text, secrets masked. */
export function describeConfig(config: Config): string {
  const lines = [`# ${config.file}: OK`];
  for (const [section, values] of config.effective) {
    lines.push("", `[${section}]`);
    for (const [key, v] of values) {
      const shown = v.secret ? "********" : v.value;
      lines.push(`${key} = ${shown}${v.fromDefault ? "    ; default" : ""}`);
    }
  }
  const others = Object.keys(config.other);
  if (others.length) lines.push("", `; other sections, left to their owners: ${others.join(", ")}`);
  return lines.join("\n") + "\n";
}
