/**
 * Subcommands whose capability is not built yet: their help and argument parsing exist,
 * and running them says so clearly (exit 1) instead of pretending.
 */
import { type Command, COMMON_HELP, COMMON_OPTIONS, parseOrShowHelp } from "./command.ts";

function pending(name: string, summary: string, usage: string, issue: number): Command {
  const help = `Usage: agent ${name} ${usage}\n\n${summary}.\n\n${COMMON_HELP}`;
  return {
    name,
    summary,
    help,
    run(args, deps) {
      if (
        !parseOrShowHelp({ name, help }, args, COMMON_OPTIONS, deps, { allowPositionals: true })
      ) {
        return Promise.resolve(0);
      }
      deps.stderr(
        `agent ${name}: not available in this version yet (tracked in issue #${issue})\n`,
      );
      return Promise.resolve(1);
    },
  };
}

export const doctorCommand = pending(
  "doctor",
  "Check connectivity, TLS and credentials of every configured system",
  "[--json] [--config FILE]",
  7,
);
