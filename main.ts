/**
 * `agent`: the edge agent's command line. Parses the command, builds the shared
 * dependencies once, dispatches, and maps errors to exit codes (the only place that calls
 * Deno.exit): 0 success, 1 failure, 2 usage or configuration error.
 */
import { type Command, type Deps, UsageError } from "./mod/cli/command.ts";
import { ConfigError } from "./mod/config/config.ts";
import { describeError } from "./mod/errors/classify.ts";
import { splitArguments } from "./mod/securechange/trigger.ts";
import { configCommand } from "./mod/config/command.ts";
import { doctorCommand } from "./mod/doctor/command.ts";
import { authorizeCommand, mailBridgeCommand } from "./mod/mail_bridge/command.ts";
import { runCommand } from "./mod/run/command.ts";
import { serviceCommand } from "./mod/service/command.ts";
import { VERSION } from "./mod/cli/version.ts";
import { calendarCommand } from "./mod/calendar/command.ts";
import { enrichCommand } from "./mod/enrich/command.ts";
import { replayCommand } from "./mod/actions/replay_command.ts";
import { actionsCommand } from "./mod/processors/command.ts";
import type { ProcessorFactory } from "./mod/actions/factory.ts";

/** Processors `agent replay --processor NAME` can run (loaded only when used). */
const PROCESSORS: Record<string, ProcessorFactory> = {
  calendar: async (config) => (await import("./mod/calendar/factory.ts")).createCalendar(config),
};

const COMMANDS: Command[] = [
  runCommand,
  calendarCommand,
  actionsCommand,
  mailBridgeCommand,
  authorizeCommand,
  enrichCommand,
  doctorCommand,
  serviceCommand,
  replayCommand(PROCESSORS),
  configCommand,
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
      args = splitArguments(argv);
    } catch (error) {
      deps.stderr(`agent: ${(error as Error).message}\n`);
      return 2;
    }
  }
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
    deps.stderr(`agent: unknown command "${name}"\n\n${usage()}`);
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
