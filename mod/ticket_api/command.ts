/** `agent ticket-api`: the ticket service, and its tokens. */
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import { ConfigError } from "../config/config.ts";
import { Store } from "../store/store.ts";
import { type Scope, Tokens } from "./tokens.ts";

const HELP = `Usage: agent ticket-api [--config FILE]
       agent ticket-api token create NAME [--scope read|write] [--config FILE]
       agent ticket-api token list [--json] [--config FILE]
       agent ticket-api token revoke NAME [--config FILE]

The Ticket Manager's ticket service: create, search, read and comment on tickets (Jira
issues of the supported boards) over a REST API, documented under OpenAPI 3.1 with a
Swagger UI at http://[ticket_api] listen/[ticket_api] context/ (default
http://127.0.0.1:5000/api/tickets/v1/). Every route but the UI and /openapi.json needs a
bearer token; "agent run" serves it too when [ticket_api] is configured.

  (no subcommand)   Serve until SIGINT/SIGTERM.
  token create      Make a token and print it (once: only its hash is kept). A read
                    token may only GET; a write token may do everything.
  token list        The tokens' names, scopes and dates (never the tokens).
  token revoke      Remove a token (a running service refuses it within a second).

Options:
      --scope S         read or write (default: write)
      --json            For token list: one JSON object {"tokens": [...]}
${COMMON_HELP}`;

export const ticketApiCommand: Command = {
  name: "ticket-api",
  summary: "Serve the ticket REST API (OpenAPI, Swagger UI); manage its tokens",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "ticket-api", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        scope: { type: "string" },
        json: { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const [sub, action, name, ...extra] = positionals;
    if (sub !== undefined && sub !== "token") {
      throw new UsageError(`unknown argument "${sub}"`, "ticket-api");
    }
    const config = await loadCommandConfig(values, deps);
    if (sub === "token") {
      setupCommandLogging({ ...values, "log-level": values["log-level"] ?? "warning" }, config);
      if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`, "ticket-api");
      const store = await Store.open(config.agent.store);
      try {
        const tokens = new Tokens(store);
        if (action === "create") {
          if (!name) throw new UsageError("token create needs a NAME", "ticket-api");
          const scope = (values.scope ?? "write").toLowerCase();
          if (scope !== "read" && scope !== "write") {
            throw new UsageError(`--scope is read or write, not "${values.scope}"`, "ticket-api");
          }
          const token = await tokens.create(name, scope as Scope);
          deps.stdout(`${token}\n`);
          deps.stderr(
            `Token "${name}" (${scope}) made. It is shown this once; the agent keeps only its ` +
              `hash. Send it as "Authorization: Bearer TOKEN".\n`,
          );
          return 0;
        }
        if (action === "list") {
          if (name) throw new UsageError(`unexpected argument "${name}"`, "ticket-api");
          const list = await tokens.list();
          if (values.json) deps.stdout(JSON.stringify({ tokens: list }, null, 2) + "\n");
          else if (!list.length) deps.stdout("No tokens (agent ticket-api token create NAME)\n");
          else {
            for (const t of list) deps.stdout(`${t.name}\t${t.scope}\tcreated ${t.created}\n`);
          }
          return 0;
        }
        if (action === "revoke") {
          if (!name) throw new UsageError("token revoke needs a NAME", "ticket-api");
          if (!(await tokens.revoke(name))) {
            deps.stderr(`agent ticket-api: no token named "${name}"\n`);
            return 1;
          }
          deps.stdout(`Token "${name}" revoked\n`);
          return 0;
        }
        throw new UsageError(
          "say token create NAME, token list or token revoke NAME",
          "ticket-api",
        );
      } finally {
        store.close();
      }
    }
    if (action !== undefined) throw new UsageError(`unknown argument "${action}"`, "ticket-api");
    if (!config.ticketApi) {
      throw new ConfigError(
        { file: config.file, section: "ticket_api" },
        "missing; add [ticket_api] (every key has a default: listen = 127.0.0.1:5000)",
      );
    }
    setupCommandLogging(values, config);
    const store = await Store.open(config.agent.store);
    try {
      const { serveTicketApi } = await import("./serve.ts");
      const server = await serveTicketApi(config, store, deps.signal);
      await server.finished;
      return 0;
    } finally {
      store.close();
    }
  },
};
