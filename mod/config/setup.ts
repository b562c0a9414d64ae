/**
 * Start-up shared by the commands: find and validate the config, set up logging from the
 * flags and the config.
 */
import { join } from "node:path";
import { type Config, ConfigError, findConfigFile, loadConfig } from "./config.ts";
import { type AgentLogLevel, log, LOG_LEVELS, type LogFormat, setupLogging } from "../log/log.ts";
import { type Deps, UsageError } from "../cli/command.ts";

/** The common option values (see COMMON_OPTIONS). */
export interface CommonValues {
  config?: string | undefined;
  "log-format"?: string | undefined;
  "log-level"?: string | undefined;
  loglevel?: string | undefined;
  verbose?: boolean | undefined;
  quiet?: boolean | undefined;
}

/** resilient-circuits' and Python's level names, in any case, as ours. */
const LEVEL_ALIASES: Record<string, AgentLogLevel> = {
  warn: "warning",
  critical: "error",
  fatal: "error",
  notset: "debug",
  trace: "debug",
};

/** Finds and loads the config; a missing file is a ConfigError naming where it looked. */
export async function loadCommandConfig(values: CommonValues, deps: Deps): Promise<Config> {
  const file = await findConfigFile(values.config, deps.env);
  if (!file) {
    throw new ConfigError(
      { file: "app.config" },
      "no config file: pass --config FILE, set APP_CONFIG_FILE, or create ./app.config " +
        "(`agent config init` writes a template)",
    );
  }
  return await loadConfig(file, { env: deps.env });
}

/** Logging from flags, then [agent], then [resilient] (resilient-circuits' own keys). */
export function setupCommandLogging(
  values: CommonValues,
  config?: Config,
  options: { logFile?: boolean } = {},
): void {
  const format = values["log-format"] ?? config?.agent.logFormat;
  if (format !== undefined && format !== "text" && format !== "json") {
    throw new UsageError(`--log-format must be text or json, not "${format}"`);
  }
  const flag = values["log-level"] ?? values.loglevel;
  const asked = flag?.toLowerCase();
  const level = (asked && LEVEL_ALIASES[asked]) ?? asked ??
    (values.verbose ? "debug" : values.quiet ? "error" : undefined) ??
    config?.agent.logLevel ?? config?.resilient?.loglevel;
  if (level !== undefined && !LOG_LEVELS.includes(level as AgentLogLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, not "${flag}"`);
  }
  const r = config?.resilient;
  const file = r?.logdir && options.logFile !== false
    ? join(r.logdir, r.logfile ?? "agent.log")
    : undefined;
  if (file && config) {
    // resilient-circuits' stock logdir (~/.resilient/logs) rarely exists yet: make it.
    try {
      Deno.mkdirSync(r!.logdir!, { recursive: true, mode: 0o750 });
      Deno.openSync(file, { append: true, create: true, mode: 0o640 }).close();
    } catch (error) {
      throw new ConfigError(
        { file: config.file, section: "resilient", key: "logdir" },
        `cannot write the log file ${file}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  setupLogging({
    format: format as LogFormat | undefined,
    level: level as AgentLogLevel | undefined,
    file,
  });
  // Typos in key names are said once, at start, by every command.
  for (const warning of config?.warnings ?? []) log("config").warn("{warning}", { warning });
}
