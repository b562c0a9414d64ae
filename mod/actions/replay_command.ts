/**
 * `agent replay`: runs a processor on recorded action messages without a broker (what
 * resilient-circuits' res-action-test does) and prints the reply each would get, one JSON
 * line per message; or lists the dead letters kept in the store.
 */
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import { processorNamed } from "./catalogue.ts";

const HELP = `Usage: agent replay FILE... --processor NAME [--config FILE] [--rest-fixtures FILE]
       agent replay --dead-letters [--config FILE]

Runs a processor on recorded action messages without a broker, with the platform's REST
API and SMTP as configured, and prints per message one JSON line:
  {"correlation_id": "invid:80", "reply": {"message_type": 0, "message": "...", "complete": true}}

A FILE is what "--record DIR" writes ({"headers": {...}, "body": "<raw body>"}) or a bare
ActionDataDTO. Side effects are real (mail is sent); each run counts as new messages.
A summary goes to stderr. Exit 0 when every message was replayed, whatever the replies
say (an error reply is the processor's answer); 1 when the agent itself failed; 2 for bad
arguments or config.

Options:
      --processor NAME      Which processor handles the messages: calendar, or one of
                            yours in the processors folder
      --rest-fixtures FILE  Answer REST calls from this JSON instead of the platform:
                            {"GET /users/4": {"id": 4, "email": "ann@example.com"}}
                            (used by default when the config has no [resilient])
      --dead-letters        List the messages kept because they could not be
                            processed, as JSON lines
${COMMON_HELP}`;

/** `agent replay`: runs a processor from the catalogue on recorded messages. */
export const replayCommand: Command = {
  name: "replay",
  summary: "Run a processor on recorded action messages, or list dead letters",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "replay", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        processor: { type: "string" },
        "rest-fixtures": { type: "string" },
        "dead-letters": { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    if (values["dead-letters"]) {
      if (positionals.length) throw new UsageError("--dead-letters takes no files", "replay");
      const config = await loadCommandConfig(values, deps);
      setupCommandLogging(values, config);
      const { listDeadLetters } = await import("../action_module/replay.ts");
      return await listDeadLetters(config, deps);
    }
    if (!values.processor) throw new UsageError("--processor NAME is required", "replay");
    if (!positionals.length) throw new UsageError("no message files given", "replay");
    const config = await loadCommandConfig(values, deps);
    setupCommandLogging(values, config);
    const factory = await processorNamed(values.processor, config, deps.env, "replay");
    const { replayFiles } = await import("../action_module/replay.ts");
    return await replayFiles(config, factory, positionals, {
      restFixtures: values["rest-fixtures"],
      stdout: deps.stdout,
      stderr: deps.stderr,
      signal: deps.signal,
    });
  },
};
