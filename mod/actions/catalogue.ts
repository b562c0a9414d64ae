/**
 * Every processor the agent can run, in one place: the built-in ones (the calendar) and the
 * user's own from the processors folder. `agent run` serves what the config enables,
 * `agent replay` runs one by name; both ask here, and each processor's module is loaded
 * only when it is used.
 */
import type { Config } from "../config/config.ts";
import type { BuiltProcessor, ProcessorFactory } from "../action_module/factory.ts";
import { UsageError } from "../cli/command.ts";

/** The built-in processors, by name. */
const BUILT_IN: Readonly<Record<string, ProcessorFactory>> = {
  calendar: async (config) => (await import("../calendar/factory.ts")).createCalendar(config),
};

type Env = (name: string) => string | undefined;

/** Whether the config enables any processor (the calendar, or a processors folder). */
export async function wantsProcessors(config: Config): Promise<boolean> {
  const { processorsDir } = await import("./load.ts");
  return config.taskcalendar !== undefined || processorsDir(config) !== undefined;
}

/** The processors the config enables: the calendar with `[taskcalendar]`, and every user one. */
export async function enabledProcessors(config: Config, env: Env): Promise<BuiltProcessor[]> {
  const built: BuiltProcessor[] = [];
  try {
    if (config.taskcalendar) built.push(await BUILT_IN.calendar!(config));
    const { buildProcessors, processorsDir } = await import("./load.ts");
    if (processorsDir(config)) built.push(...await buildProcessors(config, env));
    return built;
  } catch (error) {
    for (const b of built) b.close();
    throw error;
  }
}

/**
 * One processor by name: built in, or from the processors folder; an unknown name is a
 * usage error listing what there is.
 */
export async function processorNamed(
  name: string,
  config: Config,
  env: Env,
  command: string,
): Promise<ProcessorFactory> {
  const builtIn = BUILT_IN[name];
  if (builtIn) return builtIn;
  const { buildProcessors, processorFiles, processorsDir } = await import("./load.ts");
  const dir = processorsDir(config);
  const custom = dir ? await processorFiles(dir) : new Map<string, string>();
  if (!custom.has(name)) {
    throw new UsageError(
      `unknown processor "${name}" (built in: ${Object.keys(BUILT_IN).join(", ")}; in ${
        dir ?? "processors_dir (not set)"
      }: ${[...custom.keys()].join(", ") || "none"})`,
      command,
    );
  }
  return async (c) => (await buildProcessors(c, env, [name]))[0]!;
}
