/**
 * `agent enrich`: the SecureChange trigger script. SecureChange judges it by its exit code:
 * 0 when done or nothing to do, 1 when it failed (SecureChange retries), 2 for bad input
 * or config; the reason is one line on stderr.
 */
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  type Deps,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import { ConfigError } from "../config/config.ts";

const HELP = `Usage: agent enrich [--config FILE] < ticket_info.xml
       agent enrich --ticket-file TICKET.json [--config FILE]
       agent enrich new NAME [--dir DIR] [--config FILE]
       agent enrich list [--json] [--config FILE]

The Tufin SecureChange trigger script. Register it under Settings > SecureChange API >
Add Script (path: this binary or a wrapper, arguments: "enrich --config FILE"), with the
workflow events to act on. SecureChange passes the event in SCW_EVENT and <ticket_info>
XML on stdin; the agent fetches the ticket, runs every integration in its sandbox at once,
and adds their findings as one comment on the current step. The Test button (SCW_EVENT=TEST
or an empty <ticket_info/>) checks the config and finds the plugins, contacting nothing:
exit 0 when they are fine, 2 with the reason otherwise.

  new NAME   Write NAME.ts (a plugin), NAME_test.ts and NAME_ticket.json (a sample
             ticket) into the integrations folder; "deno test NAME_test.ts" passes as is.
  list       Every integration the config runs (built-in, JavaScript, Python), loaded
             without running: exit 1 when one would not load, naming why.

Options:
      --ticket-file FILE  Read a saved ticket (the JSON GET tickets/{id} returns) instead
                          of the API, and print the comment instead of posting it
      --dir DIR           For new: where to write (default: [enrich] integrations_dir)
      --json              For list: one JSON object {"integrations": [...]}
${COMMON_HELP}`;

export const enrichCommand: Command = {
  name: "enrich",
  summary: "SecureChange trigger: enrich a ticket with plugins and post one comment",
  help: HELP,
  async run(rawArgs, deps) {
    const { splitArguments, TriggerInputError } = await import("../securechange/trigger.ts");
    let args: string[];
    try {
      args = splitArguments(rawArgs);
    } catch (error) {
      throw new UsageError((error as Error).message, "enrich");
    }
    const parsed = parseOrShowHelp(
      { name: "enrich", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        "ticket-file": { type: "string" },
        dir: { type: "string" },
        json: { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const [sub, name, ...extra] = positionals;
    if (sub !== undefined) {
      if (sub !== "new" && sub !== "list") {
        throw new UsageError(`unknown argument "${sub}"`, "enrich");
      }
      if (extra.length || (sub === "list" && name)) {
        throw new UsageError(`unexpected argument "${extra[0] ?? name}"`, "enrich");
      }
      return sub === "new" ? await newPlugin(name, values, deps) : await listPlugins(values, deps);
    }
    const event = (deps.env("SCW_EVENT") ?? "").trim().toUpperCase();
    if (event === "TEST") {
      // The Test button proves the script can run as configured: the config must load, and
      // its plugins must be found (nothing is contacted).
      const config = await loadCommandConfig(values, deps);
      if (!config.securechange) {
        throw new ConfigError(
          { file: config.file, section: "securechange" },
          "missing; enrich needs the SecureChange API",
        );
      }
      const { defaultEnrichConfig, pluginJobs } = await import("./enrich.ts");
      const jobs = await pluginJobs(config, config.enrich ?? defaultEnrichConfig(), deps.env);
      deps.stdout(
        `agent enrich: test trigger received; ${config.file} is valid, ` +
          `${jobs.length} integration(s): ${jobs.map((j) => j.name).join(", ")}\n`,
      );
      return 0;
    }
    const { parseTicketInfo } = await import("../securechange/trigger.ts");
    let info;
    if (values["ticket-file"]) {
      info = { ticketId: undefined };
    } else {
      const xml = await readStdin();
      try {
        info = parseTicketInfo(xml);
      } catch (error) {
        if (error instanceof TriggerInputError) {
          deps.stderr(`agent enrich: ${error.message}\n`);
          return 2;
        }
        throw error;
      }
      if (info.ticketId === undefined) {
        deps.stdout("agent enrich: empty ticket_info (test trigger); nothing to do\n");
        return 0;
      }
    }
    const config = await loadCommandConfig(values, deps);
    setupCommandLogging(values, config);
    const { runEnrichFromCommand } = await import("./run_enrich.ts");
    return await runEnrichFromCommand(config, {
      info,
      event: event || "CREATE",
      ticketFile: values["ticket-file"],
    }, deps);
  },
};

async function newPlugin(
  name: string | undefined,
  values: { dir?: string | undefined; config?: string | undefined },
  deps: Deps,
): Promise<number> {
  if (!name) throw new UsageError("new needs a NAME", "enrich");
  let dir = values.dir;
  if (!dir) {
    const config = await loadCommandConfig(values, deps);
    dir = config.enrich?.integrationsDir;
    if (!dir) {
      throw new ConfigError(
        { file: config.file, section: "enrich", key: "integrations_dir" },
        "not set: the folder plugins go in (or give --dir)",
      );
    }
  }
  const { scaffoldPlugin } = await import("./scaffold.ts");
  const files = await scaffoldPlugin(name, dir);
  deps.stdout(
    `Wrote ${files.join(", ")}.\nTest it: cd ${dir} && deno test ${name}_test.ts\n` +
      `Run it: add ${name} to [enrich] integrations (or leave integrations unset), and give ` +
      `it a [${name}] section for its settings and allow_net.\n`,
  );
  return 0;
}

async function listPlugins(
  values: Parameters<typeof loadCommandConfig>[0] & { json?: boolean | undefined },
  deps: Deps,
): Promise<number> {
  const config = await loadCommandConfig(values, deps);
  setupCommandLogging({ ...values, "log-level": values["log-level"] ?? "error" }, config, {
    logFile: false,
  });
  const { defaultEnrichConfig, pluginJobs } = await import("./enrich.ts");
  const { listIntegrations } = await import("./scaffold.ts");
  const jobs = await pluginJobs(config, config.enrich ?? defaultEnrichConfig(), deps.env);
  const statuses = await listIntegrations(jobs);
  if (values.json) {
    deps.stdout(JSON.stringify({ integrations: statuses }, null, 2) + "\n");
  } else {
    for (const s of statuses) {
      deps.stdout(
        `${s.name}: ${s.kind}${s.file ? ` (${s.file})` : ""}; ${
          s.ok ? "loads" : `NOT LOADED: ${s.problem}`
        }\n`,
      );
    }
  }
  return statuses.every((s) => s.ok) ? 0 : 1;
}

async function readStdin(): Promise<string> {
  if (Deno.stdin.isTerminal()) return "";
  return await new Response(Deno.stdin.readable).text();
}
