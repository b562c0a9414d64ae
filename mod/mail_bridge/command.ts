/** `agent mail-bridge` and `agent authorize`. */
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  type Deps,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import { type Config, ConfigError } from "../config/config.ts";
import { Store } from "../store/store.ts";
import type { Outcome } from "./bridge.ts";
import type { OpenBridge } from "./run_bridge.ts";

const HELP = `Usage: agent mail-bridge [--once] [--retry-failed] [--config FILE]
       agent mail-bridge backfill --days N [--config FILE]
       agent mail-bridge failed [--json] [--config FILE]

Turns mail arriving in a Microsoft 365 mailbox ([graph]) into Jira issues ([jira]) and
replies into comments, with a ledger in the store so that no mail is lost or bridged
twice. The mailbox is marked (category "Jira: KEY") only after Jira has everything.
Without [graph] and [jira] it runs on the embedded defaults of [mail_bridge]: .eml
files from mail_dir, issues as JSON files in issues_dir.

Commands:
  (none)                Poll every poll_seconds until stopped
  backfill --days N     Re-scan the last N days; create only what the ledger lacks
  failed                List the dead letters (mails that failed for good)

Options:
      --once            One pass each way (mail to Jira, comments back), then exit
                        (1 if a mail could not be bridged)
      --retry-failed    Handle the dead letters again (then poll, or exit with --once)
      --days N          For backfill: how many days back
      --json            For failed: one JSON object {"dead_letters": [...]}
${COMMON_HELP}`;

export const mailBridgeCommand: Command = {
  name: "mail-bridge",
  summary: "Turn mail in a Microsoft 365 mailbox into Jira issues and comments",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "mail-bridge", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        once: { type: "boolean" },
        "retry-failed": { type: "boolean" },
        days: { type: "string" },
        json: { type: "boolean" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const [sub, ...extra] = positionals;
    if (extra.length || (sub !== undefined && sub !== "backfill" && sub !== "failed")) {
      throw new UsageError(`unknown argument "${extra[0] ?? sub}"`);
    }
    const config = await loadCommandConfig(values, deps);
    setupCommandLogging(values, config);
    const store = await Store.open(config.agent.store);
    let open: OpenBridge | undefined;
    try {
      if (sub === "failed") return await listFailed(config, store, deps, values.json === true);
      // The bridge (Graph, Jira, the mail parsers) is loaded only by the commands that use it.
      const { openBridge, pollForever } = await import("./run_bridge.ts");
      open = await openBridge(config, store);
      if (sub === "backfill") {
        const days = Number(values.days);
        if (!values.days || !Number.isInteger(days) || days < 1 || days > 3650) {
          throw new UsageError("backfill needs --days N (a whole number of days, 1 to 3650)");
        }
        const progress = progressReporter(deps);
        await open.bridge.backfill(open.folders, days, {
          signal: deps.signal,
          progress: progress.step,
        });
        progress.done();
        deps.stdout(summary(open.bridge.stats) + "\n");
        return open.bridge.stats.failed ? 1 : 0;
      }
      if (values["retry-failed"]) {
        const n = await open.bridge.retryFailed(deps.signal);
        deps.stdout(`Retried ${n} dead letter(s).\n`);
      }
      if (values.once) {
        await open.pass(deps.signal);
        const r = open.replier.stats;
        deps.stdout(
          summary(open.bridge.stats) +
            (config.mailBridge?.replies === false
              ? ""
              : `; replies: ${r.sent} sent, ${r.skipped} not for the sender, ${r.failed} refused`) +
            "\n",
        );
        return open.bridge.stats.failed ? 1 : 0;
      }
      await pollForever(open, { signal: deps.signal });
      return 0;
    } finally {
      await open?.close();
      store.close();
    }
  },
};

async function listFailed(
  config: Config,
  store: Store,
  deps: Deps,
  json: boolean,
): Promise<number> {
  const mailbox = config.graph?.mailbox ?? "local";
  const { Ledger } = await import("./ledger.ts");
  if (json) {
    const letters = [];
    for await (const { record } of new Ledger(store, mailbox).failed()) {
      letters.push({
        received_at: record.receivedAt,
        from: record.from,
        subject: record.subject,
        message_id: record.messageId,
        mail_id: record.mailId,
        error: record.error,
        attempts: record.attempts,
      });
    }
    deps.stdout(JSON.stringify({ dead_letters: letters }) + "\n");
    return 0;
  }
  let n = 0;
  for await (const { record } of new Ledger(store, mailbox).failed()) {
    n++;
    deps.stdout(
      `${record.receivedAt}  ${record.from}  ${JSON.stringify(record.subject)}\n` +
        `    ${record.messageId}: ${record.error}\n`,
    );
  }
  deps.stdout(`${n} dead letter(s). "agent mail-bridge --retry-failed" handles them again.\n`);
  return 0;
}

function summary(
  stats: { created: number; commented: number; skipped: number; failed: number; known: number },
): string {
  return `mail-bridge: ${stats.created} issue(s) created, ${stats.commented} comment(s), ` +
    `${stats.skipped} skipped, ${stats.failed} failed, ${stats.known} already done`;
}

/** A progress bar on a terminal, a line per 100 mails otherwise. */
function progressReporter(deps: Deps) {
  const counts = new Map<Outcome, number>();
  let done = 0;
  const line = () => `${done} mail(s): ` + [...counts].map(([k, v]) => `${v} ${k}`).join(", ");
  return {
    step: (n: number, outcome: Outcome) => {
      done = n;
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      if (deps.isTerminal) {
        const bar = "#".repeat(Math.min(30, Math.floor(Math.log2(n + 1) * 3))).padEnd(30, ".");
        deps.stderr(`\r[${bar}] ${line()}`);
      } else if (n % 100 === 0) deps.stderr(`backfill: ${line()}\n`);
    },
    done: () => deps.stderr(deps.isTerminal ? `\r${line()}\n` : `backfill: ${line()}\n`),
  };
}

const AUTH_HELP = `Usage: agent authorize [--device-code] [--config FILE]

Gets a Microsoft Graph token for [graph], proves it by reading the mailbox, and stores
MSAL's token cache in the agent's store (readable by the agent's user only; never
written to logs or plain files). The mail bridge then starts without another round trip
to Entra ID.

  auth = app (a client secret or certificate): the app's own token (client credentials).
    The app registration needs the application permissions Mail.ReadWrite (and Mail.Send
    for replies); limit them to the bridged mailbox with RBAC for Applications (or an
    application access policy), so the app can read no other.
  auth = delegated: --device-code signs a user in once (Entra ID's device code flow: open
    the URL it prints, enter the code); the bridge then acts as that user with the
    delegated permissions of [graph] scopes (default Mail.ReadWrite, Mail.Send,
    offline_access). Run it again when doctor or /healthz says the sign-in lapsed.

Options:
      --device-code     Sign in as a user (auth = delegated)
${COMMON_HELP}`;

export const authorizeCommand: Command = {
  name: "authorize",
  summary: "Obtain and store the Microsoft Graph token the mail bridge uses",
  help: AUTH_HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "authorize", help: AUTH_HELP },
      args,
      { ...COMMON_OPTIONS, "device-code": { type: "boolean" } },
      deps,
    );
    if (!parsed) return 0;
    const config = await loadCommandConfig(parsed.values, deps);
    setupCommandLogging(parsed.values, config);
    const graph = config.graph;
    if (!graph) {
      throw new ConfigError(
        { file: config.file, section: "graph" },
        "no [graph] section: nothing to authorize",
      );
    }
    const store = await Store.open(config.agent.store);
    try {
      const { MsalTokenSource } = await import("../graph/token.ts");
      const { GraphMailbox } = await import("../graph/client.ts");
      const tokens = await MsalTokenSource.fromConfig(graph, { store });
      if (graph.auth === "delegated") {
        if (!parsed.values["device-code"]) {
          throw new UsageError(
            "[graph] auth is delegated: sign in with --device-code",
            "authorize",
          );
        }
        const who = await tokens.signIn((message) => deps.stderr(`${message}\n`), deps.signal);
        deps.stderr(`Signed in as ${who.username}.\n`);
      } else {
        if (parsed.values["device-code"]) {
          throw new UsageError(
            "--device-code is for [graph] auth = delegated (this config has a client credential)",
            "authorize",
          );
        }
        await tokens.token({ force: true });
      }
      const mailbox = await GraphMailbox.fromConfig(graph, tokens);
      await mailbox.probe(deps.signal);
      deps.stdout(
        graph.auth === "delegated"
          ? `Authorized: the signed-in user can read ${graph.mailbox}; the sign-in is stored in ` +
            `${config.agent.store}.\n`
          : `Authorized: client ${graph.clientId} in tenant ${graph.tenantId} can read ` +
            `${graph.mailbox}; the token is stored in ${config.agent.store}.\n`,
      );
      return 0;
    } finally {
      store.close();
    }
  },
};
