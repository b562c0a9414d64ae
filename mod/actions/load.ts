/**
 * Finds the custom processors in the processors folder (`[agent] processors_dir`, else
 * resilient-circuits' `[resilient] componentsdir`) and starts each in its sandbox. A module
 * that does not load or define a processor is refused with the reason; the others start.
 */
import { basename, extname, join } from "node:path";
import type { BuiltProcessor } from "../action_module/factory.ts";
import { type Config, ConfigError } from "../config/config.ts";
import { log } from "../log/log.ts";
import { readSandboxSection, refuseSecretsIn } from "../sandbox/section.ts";
import type { ProcessorDescription } from "../sdk/sdk.ts";
import { type CustomProcessor, startCustomProcessor } from "./host.ts";

const logger = log("actions");
const EXTENSIONS = [".ts", ".js", ".mjs"];
/** The SDK copy `agent actions new` writes next to the processors. */
export const SDK_FILE = "agent_sdk.ts";
/** Keys of a processor's section the host reads (besides the sandbox's). */
const HOST_KEYS = ["queue", "workers"];

/** The processors folder, if configured. */
export function processorsDir(config: Config): string | undefined {
  return config.agent.processorsDir ?? config.resilient?.componentsdir;
}

/** Processor modules in `dir` by name: `<name>.ts|.js|.mjs`, not tests, not `_private`. */
export async function processorFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  try {
    for await (const entry of Deno.readDir(dir)) {
      const ext = extname(entry.name);
      const stem = basename(entry.name, ext);
      if (
        !entry.isFile || !EXTENSIONS.includes(ext) || entry.name === SDK_FILE ||
        entry.name.endsWith(".d.ts") || stem.startsWith("_") || /[._]test$/.test(stem)
      ) continue;
      files.set(stem, join(dir, entry.name));
    }
  } catch (error) {
    // resilient-circuits' stock componentsdir (~/.resilient/components) rarely exists: a
    // folder not made yet holds no processors, as for resilient-circuits.
    if (error instanceof Deno.errors.NotFound) {
      logger.info("No processors: the folder {dir} does not exist", { dir });
      return files;
    }
    throw new Error(`Cannot read the processors folder "${dir}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  return new Map([...files].sort(([a], [b]) => a.localeCompare(b)));
}

/** The outcome of loading: what started, and what was refused with why. */
export interface LoadedProcessors {
  started: CustomProcessor[];
  refused: { name: string; reason: string }[];
}

/** Starts the processors in the folder (only `names`, when given). */
export async function loadProcessors(
  config: Config,
  env: (name: string) => string | undefined,
  names?: string[],
): Promise<LoadedProcessors> {
  const dir = processorsDir(config);
  if (!dir) {
    throw new ConfigError(
      { file: config.file, section: "agent", key: "processors_dir" },
      "not set (nor [resilient] componentsdir): the folder with your processors",
    );
  }
  refuseSecretsIn(config, dir, {
    section: config.agent.processorsDir ? "agent" : "resilient",
    key: config.agent.processorsDir ? "processors_dir" : "componentsdir",
  });
  const files = await processorFiles(dir);
  const wanted = names ?? [...files.keys()];
  const result: LoadedProcessors = { started: [], refused: [] };
  await Promise.all(wanted.map(async (name) => {
    const path = files.get(name);
    if (!path) {
      result.refused.push({ name, reason: `no ${name}.ts/.js/.mjs in ${dir}` });
      return;
    }
    const section = await readSandboxSection(
      config,
      name,
      config.other[name] ?? {},
      env,
      HOST_KEYS,
    );
    const workers = section.values["workers"];
    if (workers !== undefined && !(Number.isInteger(Number(workers)) && Number(workers) >= 1)) {
      throw new ConfigError(
        { file: config.file, section: name, key: "workers" },
        `"${workers}" is not a whole number of at least 1`,
      );
    }
    try {
      result.started.push(
        await startCustomProcessor({
          name,
          path,
          dir,
          section,
          defaultWorkers: config.resilient?.numWorkers ?? 10,
        }),
      );
    } catch (error) {
      const reason = `${path}: ${(error as Error).message}`;
      logger.error("Processor {name} not loaded: {reason}", { name, reason });
      result.refused.push({ name, reason });
    }
  }));
  result.started.sort((a, b) => a.processor.name.localeCompare(b.processor.name));
  return result;
}

/** The rules a processor handles, for people: "add_note, (any other)". */
export function ruleList(description: ProcessorDescription): string {
  return [...description.rules, ...(description.catchAll ? ["(any other)"] : [])].join(", ");
}

/** The processors as the action service takes them; fails when none could load. */
export async function buildProcessors(
  config: Config,
  env: (name: string) => string | undefined,
  names?: string[],
): Promise<BuiltProcessor[]> {
  const { started, refused } = await loadProcessors(config, env, names);
  if (!started.length) {
    throw new Error(
      refused.length
        ? `No processor could load: ${refused.map((r) => `${r.name}: ${r.reason}`).join("; ")}`
        : `No processors in ${processorsDir(config)} (write one with "agent actions new NAME")`,
    );
  }
  for (const p of started) {
    logger.info(
      "Loaded processor {name}: queue {queue}, rules {rules}, {workers} workers",
      {
        name: p.processor.name,
        queue: p.processor.queue,
        rules: ruleList(p.description),
        workers: p.processor.workers,
      },
    );
  }
  return started.map((p) => ({ processor: p.processor, close: p.close }));
}
