/** `agent run`: every configured service in one process (see run.ts). */
import { type Command, COMMON_HELP, COMMON_OPTIONS, parseOrShowHelp } from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";

const HELP = `Usage: agent run [--config FILE]

Runs every service the config enables in one process, with one store and one log:
the calendar ([taskcalendar]) and your own processors ([agent] processors_dir) on one
Action Module connection, the mail bridge ([graph] and [jira]), and, with [agent]
http_listen, /healthz and /metrics. A
service that fails is restarted with backoff and reported; the others keep running.
SIGINT/SIGTERM drain everything and exit 0.

${COMMON_HELP}`;

export const runCommand: Command = {
  name: "run",
  summary: "Run every configured service in one process (health and metrics over HTTP)",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp({ name: "run", help: HELP }, args, COMMON_OPTIONS, deps);
    if (!parsed) return 0;
    const config = await loadCommandConfig(parsed.values, deps);
    setupCommandLogging(parsed.values, config);
    const { runServices } = await import("./run_services.ts");
    return await runServices(config, { signal: deps.signal, env: deps.env });
  },
};
