/**
 * What every subcommand is (deployctl's shape): a name, help text, its options, and
 * `run(args, deps)`. Only main.ts turns the result into an exit code.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** What `main.ts` builds once and hands to a subcommand. */
export interface Deps {
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: (name: string) => string | undefined;
  isTerminal: boolean;
}

/** A subcommand of `agent`. */
export interface Command {
  name: string;
  /** One line for `agent --help`. */
  summary: string;
  /** The full text for `agent <name> --help`. */
  help: string;
  /** Resolves to the exit code. */
  run(args: string[], deps: Deps): Promise<number>;
}

/** Bad arguments: usage on stderr, exit 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Options every service command takes. */
export const COMMON_OPTIONS = {
  config: { type: "string", short: "c" },
  "log-format": { type: "string" },
  "log-level": { type: "string" },
  /** resilient-circuits' spelling. */
  loglevel: { type: "string" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/** The common options that take a value (main.ts moves them behind the command). */
export const GLOBAL_VALUE_FLAGS = ["-c", "--config", "--log-format", "--log-level", "--loglevel"];
/** The common options without a value. */
export const GLOBAL_SWITCHES = ["-v", "--verbose", "-q", "--quiet"];

export const COMMON_HELP = `Common options (also before the command: agent -c FILE run):
  -c, --config FILE     Config file (default: $APP_CONFIG_FILE, ./app.config,
                        ~/.resilient/app.config)
      --log-format F    text or json (default: text on a terminal, json otherwise)
      --log-level L     debug, info, warning or error, any case (default: info);
                        also --loglevel, as resilient-circuits spells it
  -v, --verbose         Log at debug level
  -q, --quiet           Log errors only
  -h, --help            Show this help`;

/** node:util parseArgs, with its errors turned into UsageError naming the command. */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig["options"]>>(
  command: string,
  args: string[],
  options: O,
  config: { allowPositionals?: boolean } = {},
) {
  try {
    return parseArgs({
      args,
      options,
      allowPositionals: config.allowPositionals ?? false,
      strict: true,
    });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify a positional.*$/s, "");
    throw new UsageError(message, command);
  }
}

/**
 * parseCommandArgs, and for `--help` prints the command's help and returns undefined (the
 * command then exits 0).
 */
export function parseOrShowHelp<O extends NonNullable<ParseArgsConfig["options"]>>(
  command: { name: string; help: string },
  args: string[],
  options: O,
  deps: Pick<Deps, "stdout">,
  config: { allowPositionals?: boolean } = {},
): ReturnType<typeof parseCommandArgs<O>> | undefined {
  const parsed = parseCommandArgs(command.name, args, options, config);
  if ((parsed.values as { help?: boolean }).help) {
    deps.stdout(command.help + "\n");
    return undefined;
  }
  return parsed;
}
