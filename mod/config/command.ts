/** `agent config init|check`. */
import { worldReadableSecrets } from "./secrets.ts";
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig } from "./setup.ts";
import { type Config, findConfigFile } from "./config.ts";
import { updateConfigText } from "./update.ts";
import { CONFIG_TEMPLATE } from "./template.ts";

const HELP = `Usage: agent config init [PATH] [--force]      (also: agent config -c [PATH])
       agent config update [PATH]             (also: agent config -u [PATH])
       agent config check [--json] [--config FILE]

  init    Write a commented config template to PATH (default ./app.config).
          An existing file is left alone unless --force is given.
  update  Add what PATH (default: the config file found) lacks of the template: missing
          sections and keys are added commented out, with their defaults; values,
          comments and order already there are kept as they are.
  check   Validate the config and print the effective settings, secrets masked (with
          --json: one JSON object). Exits 2 naming file, line, section and key of every
          problem when something is wrong.

resilient-circuits' spellings work too: -c/--create is init, -u/--update is update.

${COMMON_HELP}`;

export const configCommand: Command = {
  name: "config",
  summary: "Write, update or check a config file",
  help: HELP,
  async run(rawArgs, deps) {
    // resilient-circuits' `config -c [FILE]` (create): -c is --config everywhere else, so a
    // -c without an action word means create.
    const hasAction = rawArgs.some((a) => ["init", "update", "check"].includes(a));
    const args = hasAction ? rawArgs : rawArgs.map((a) => (a === "-c" ? "--create" : a));
    const parsed = parseOrShowHelp(
      { name: "config", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        // -c is --config elsewhere; here, as in resilient-circuits, a bare -c means create.
        create: { type: "boolean" },
        update: { type: "boolean", short: "u" },
        force: { type: "boolean" },
        json: { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    let [action, ...rest] = positionals;
    if (values.create) [action, rest] = ["init", positionals];
    if (values.update) [action, rest] = ["update", positionals];
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
    if (action === "update") {
      if (rest.length > 1) throw new UsageError("config update takes at most one PATH", "config");
      const path = rest[0] ?? values.config ?? await findConfigFile(undefined, deps.env);
      if (!path) throw new UsageError("no config file to update: give its PATH", "config");
      const text = await Deno.readTextFile(path);
      const { text: updated, added } = updateConfigText(text, CONFIG_TEMPLATE);
      if (!added.length) {
        deps.stdout(`${path} has every section and key of the template; nothing changed\n`);
        return 0;
      }
      await Deno.writeTextFile(`${path}.tmp`, updated, {
        mode: (await Deno.stat(path)).mode ?? 0o600,
      });
      await Deno.rename(`${path}.tmp`, path);
      deps.stdout(`Updated ${path}: added ${added.join(", ")} (commented out; values kept)\n`);
      return 0;
    }
    if (action === "check") {
      if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`, "config");
      const config = await loadCommandConfig(values, deps);
      const exposed = await worldReadableSecrets(config);
      if (values.json) {
        deps.stdout(JSON.stringify(configJson(config, exposed)) + "\n");
        return 0;
      }
      deps.stdout(describeConfig(config));
      for (const warning of config.warnings) deps.stderr(`warning: ${warning}\n`);
      if (exposed) deps.stderr(`warning: ${exposed}\n`);
      return 0;
    }
    throw new UsageError(
      action ? `unknown config action "${action}"` : "config needs init, update or check",
      "config",
    );
  },
};

/** `config check --json`: the effective settings (secrets masked) and the warnings. */
function configJson(config: Config, exposed: string | undefined) {
  return {
    file: config.file,
    ok: true,
    settings: Object.fromEntries(
      [...config.effective].map(([section, values]) => [
        section,
        Object.fromEntries(
          [...values].map((
            [key, v],
          ) => [key, { value: v.secret ? "********" : v.value, default: v.fromDefault }]),
        ),
      ]),
    ),
    other_sections: Object.keys(config.other),
    warnings: [...config.warnings, ...(exposed ? [exposed] : [])],
  };
}

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
