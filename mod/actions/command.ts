/** `agent actions`: hosts the action processors users write (what resilient-circuits run does). */
import { dirname, resolve } from "node:path";
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import { findConfigFile, loadConfig } from "../config/config.ts";

const HELP = `Usage: agent actions [--config FILE] [--record DIR]
       agent actions list [--json] [--config FILE]
       agent actions new NAME [--dir DIR] [--config FILE]

Hosts your own action processors: every module in the processors folder
([agent] processors_dir, or [resilient] componentsdir) that default-exports
defineProcessor({...}) is loaded into its own sandbox, and the agent listens on its queue.
A processor that does not load, or needs fields the platform lacks, is refused with the
reason; the others run.

  (no subcommand)  Serve every processor until SIGINT/SIGTERM.
  list             Load every processor and print what it handles (no platform needed).
  new NAME         Write NAME.ts, NAME_test.ts and agent_sdk.ts into the folder and the
                   [NAME] section into the config; "deno test NAME_test.ts" passes as is.

Options:
      --record DIR      Write every received message to its own JSON file in DIR
      --dir DIR         Where "new" writes (default: the processors folder, else
                        processors/ beside the config)
      --json            For list: one JSON object {"processors": [...], "not_loaded": [...]}
${COMMON_HELP}`;

export const actionsCommand: Command = {
  name: "actions",
  summary: "Host your own action processors (like resilient-circuits), each in a sandbox",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "actions", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        record: { type: "string" },
        dir: { type: "string" },
        json: { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const [sub, ...rest] = positionals;
    if (sub === "new") {
      if (rest.length !== 1) throw new UsageError("new takes one NAME", "actions");
      return await newProcessor(rest[0]!, values, deps);
    }
    if (sub !== undefined && sub !== "list") {
      throw new UsageError(`unknown subcommand "${sub}" (list, new)`, "actions");
    }
    if (rest.length) throw new UsageError(`unexpected "${rest[0]}"`, "actions");
    const config = await loadCommandConfig(values, deps);
    setupCommandLogging(values, config);
    if (sub === "list") {
      const { loadProcessors, ruleList } = await import("./load.ts");
      const { started, refused } = await loadProcessors(config, deps.env);
      if (values.json) {
        deps.stdout(
          JSON.stringify({
            processors: started.map((p) => {
              const d = p.description;
              p.close();
              return {
                name: p.processor.name,
                queue: p.processor.queue,
                rules: d.rules,
                any_rule: d.catchAll,
                workers: p.processor.workers,
                timeout_seconds: (p.processor.timeoutMs ?? 0) / 1000,
                requires: [...d.requiredFields, ...d.requiredActionFields].map((f) => f.name),
              };
            }),
            not_loaded: refused.map((r) => ({ name: r.name, reason: r.reason })),
          }) + "\n",
        );
        return refused.length ? 1 : 0;
      }
      for (const p of started) {
        const d = p.description;
        const required = [...d.requiredFields, ...d.requiredActionFields].map((f) => f.name);
        deps.stdout(
          `${p.processor.name}: queue ${p.processor.queue}; rules ${ruleList(d)}; ` +
            `${p.processor.workers} workers; timeout ${(p.processor.timeoutMs ?? 0) / 1000} s` +
            `${required.length ? `; requires ${required.join(", ")}` : ""}\n`,
        );
        p.close();
      }
      for (const r of refused) deps.stdout(`${r.name}: NOT LOADED: ${r.reason}\n`);
      return refused.length ? 1 : 0;
    }
    const { serveProcessors } = await import("../action_module/serve.ts");
    const { buildProcessors } = await import("./load.ts");
    return await serveProcessors(config, (c) => buildProcessors(c, deps.env), {
      signal: deps.signal,
      recordDir: values.record,
    });
  },
};

async function newProcessor(
  name: string,
  values: { config?: string | undefined; dir?: string | undefined },
  deps: Parameters<Command["run"]>[1],
): Promise<number> {
  const { scaffoldProcessor } = await import("./scaffold.ts");
  const configFile = await findConfigFile(values.config, deps.env);
  let dir = values.dir;
  let config;
  if (configFile) {
    config = await loadConfig(configFile, { env: deps.env });
    const { processorsDir } = await import("./load.ts");
    dir ??= processorsDir(config);
  }
  // Without a processors_dir, beside the config (which is what a relative path there means),
  // and the hint names the absolute path, so the next command finds it.
  dir ??= resolve(config ? dirname(config.file) : ".", "processors");
  const made = await scaffoldProcessor(name, dir);
  for (const file of made.files) deps.stdout(`wrote ${file}\n`);
  if (config && !(name in config.other)) {
    await Deno.writeTextFile(config.file, made.section, { append: true });
    deps.stdout(`added [${name}] to ${config.file}\n`);
  } else if (!config) {
    deps.stdout(`\nAdd this section to your config:\n${made.section}`);
  }
  if (config && !config.agent.processorsDir && !config.resilient?.componentsdir) {
    deps.stdout(
      `\nSet "processors_dir = ${resolve(dir)}" in [agent] of ${config.file} so that ` +
        `"agent actions" finds it.\n`,
    );
  }
  deps.stdout(
    `\nTest it: cd ${dir} && deno test ${name}_test.ts\n` +
      `Serve it: agent actions${configFile ? ` --config ${configFile}` : ""}\n`,
  );
  return 0;
}
