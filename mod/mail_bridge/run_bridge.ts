/**
 * The mail bridge assembled from the config, and its poll loop. With [graph] and [jira]
 * it bridges a Microsoft 365 mailbox to Jira; without them it runs on the embedded
 * defaults: `.eml` files from `mail_dir`, issues as JSON in `issues_dir`, replies as
 * `.eml` in `issues_dir/outbox` (the demo).
 */
import { type Config, ConfigError } from "../config/config.ts";
import type { Mailbox } from "../graph/types.ts";
import type { Tracker } from "../jira/types.ts";
import { log } from "../log/log.ts";
import type { Health } from "../ops/http.ts";
import { type Family, gauge } from "../ops/prometheus.ts";
import { abortableSleep } from "../async/delay.ts";
import { everyStep, supervise } from "../async/supervise.ts";
import type { GraphStats } from "../graph/client.ts";
import type { JiraStats } from "../jira/client.ts";
import type { Store } from "../store/store.ts";
import { MailBridge } from "./bridge.ts";
import { Ledger } from "./ledger.ts";
import { RunLock } from "../store/run_lock.ts";
import { bridgeLine } from "../ops/startup.ts";
import { Replier } from "./replies.ts";

const logger = log("mail-bridge");
const RETRY_BACKOFF_S = [5, 15, 30, 60, 120, 300];

/** A bridge with what it talks to. */
export interface OpenBridge {
  bridge: MailBridge;
  mailbox: Mailbox;
  tracker: Tracker;
  folders: string[];
  pollSeconds: number;
  /** Graph/Jira counters for /metrics, when they are the real ones. */
  stats(): { graph?: GraphStats | undefined; jira?: JiraStats | undefined };
  /** The way back: comments to the people who wrote in. */
  replier: Replier;
  /** One pass in each direction: mail to Jira, then comments back (when replies are on). */
  pass(signal?: AbortSignal): Promise<void>;
  /** Ends this run's hold on its reservations (a clean stop). */
  close(): Promise<void>;
}

export async function openBridge(config: Config, store: Store): Promise<OpenBridge> {
  const settings = config.mailBridge;
  if (!settings) {
    throw new ConfigError(
      { file: config.file, section: "mail_bridge" },
      "the mail bridge is not configured: add [graph] and [jira] (or [mail_bridge] alone for the embedded demo defaults)",
    );
  }
  logger.info(bridgeLine(config));
  let mailbox: Mailbox;
  let graphStats: GraphStats | undefined;
  if (config.graph) {
    const { MsalTokenSource } = await import("../graph/token.ts");
    const { GraphMailbox } = await import("../graph/client.ts");
    const tokens = await MsalTokenSource.fromConfig(config.graph, { store });
    const graph = await GraphMailbox.fromConfig(config.graph, tokens);
    graphStats = graph.stats;
    mailbox = graph;
  } else {
    const { DirMailbox } = await import("./local.ts");
    mailbox = new DirMailbox(settings.mailDir, {
      store,
      outbox: `${settings.issuesDir}/outbox`,
      maxMailBytes: settings.maxMailBytes,
    });
  }
  let tracker: Tracker;
  let jiraStats: JiraStats | undefined;
  if (config.jira) {
    const { JiraTracker } = await import("../jira/client.ts");
    const jira = await JiraTracker.fromConfig(config.jira);
    jiraStats = jira.stats;
    tracker = jira;
  } else {
    const { FileTracker } = await import("./local.ts");
    tracker = new FileTracker(settings.issuesDir);
  }
  const project = config.jira?.project ?? "MAIL";
  // A crashed run's reservations on this host are taken over at once (not after claim_seconds).
  const runs = await RunLock.acquire(config.agent.store);
  const bridge = new MailBridge(
    { mailbox, tracker, ledger: new Ledger(store, mailbox.address), runs },
    { config: settings, project, issueType: config.jira?.issueType ?? "Task" },
  );
  const replier = new Replier({ tracker, mailbox, store, runs }, settings, {
    concurrency: config.graph?.maxConcurrency ?? 4,
  });
  const folders = config.graph?.folders ?? ["Inbox"];
  return {
    bridge,
    mailbox,
    tracker,
    folders,
    pollSeconds: config.graph?.pollSeconds ?? 30,
    stats: () => ({ graph: graphStats, jira: jiraStats }),
    replier,
    // A failure one way does not keep the other from its turn.
    pass: (signal?: AbortSignal) =>
      everyStep([
        () => bridge.sync(folders, signal),
        ...(settings.replies ? [() => replier.pass(signal)] : []),
      ], signal),
    close: async () => await runs?.release(),
  };
}

/**
 * Passes every `pollSeconds` until `signal`; a pass that a retryable failure stopped is
 * tried again with backoff. `onPass` hears each pass's result (health).
 */
export async function pollForever(
  open: OpenBridge,
  options: { signal: AbortSignal; onPass?: (error?: unknown) => void },
): Promise<void> {
  let failures = 0;
  while (!options.signal.aborted) {
    let wait = open.pollSeconds * 1000;
    try {
      await open.pass(options.signal);
      failures = 0;
      options.onPass?.();
    } catch (error) {
      if (options.signal.aborted) break;
      const seconds = RETRY_BACKOFF_S[Math.min(failures++, RETRY_BACKOFF_S.length - 1)]!;
      wait = Math.min(wait, seconds * 1000);
      logger.warning("Mail pass stopped: {error}; trying again in {seconds} s", {
        error: (error as Error).message,
        seconds,
      });
      options.onPass?.(error);
    }
    await abortableSleep(wait, options.signal).catch(() => {});
  }
}

/** The bridge as one of `agent run`'s services. */
export interface BridgeService {
  done: Promise<void>;
  health(): Health;
  families(): Promise<Family[]>;
}

/**
 * Runs the bridge until `signal`, rebuilding it with backoff when it cannot start (a CA
 * file missing, a certificate unreadable); a pass that fails only marks it unhealthy.
 */
export function superviseBridge(config: Config, store: Store, signal: AbortSignal): BridgeService {
  let open: OpenBridge | undefined;
  let state: Health = { healthy: false, detail: "starting" };
  const done = supervise({
    signal,
    delaysMs: RETRY_BACKOFF_S.map((s) => s * 1000),
    async run(started) {
      await open?.close();
      open = await openBridge(config, store);
      started();
      await pollForever(open, {
        signal,
        onPass: (error) => {
          const s = open!.bridge.stats;
          state = error
            ? { healthy: false, detail: `last pass failed: ${(error as Error).message}` }
            : {
              healthy: true,
              detail: `last pass ${new Date().toISOString()}: ${s.created} created, ` +
                `${s.commented} comments, ${s.failed} failed since start`,
            };
        },
      });
    },
    onFailure(error, waitMs) {
      state = { healthy: false, detail: `cannot start: ${(error as Error).message}` };
      logger.error("Mail bridge cannot start: {error}; trying again in {seconds} s", {
        error: (error as Error).message,
        seconds: waitMs / 1000,
      });
    },
  }).finally(async () => await open?.close());
  return {
    done,
    health: () => {
      const { graph, jira } = open?.stats() ?? {};
      const failing = graph?.failing ?? jira?.failing;
      return failing && state.healthy ? { healthy: false, detail: failing } : state;
    },
    async families() {
      if (!open) return [];
      const s = open.bridge.stats;
      const { graph, jira } = open.stats();
      const deadLetters = await new Ledger(store, open.mailbox.address).failedCount();
      const throttle = (system: string, c?: { throttled: number; throttleWaitMs: number }) => [
        {
          name: `agent_${system}_throttled_total`,
          help: `${system === "graph" ? "Graph" : "Jira"} answers 429/503 the agent waited out.`,
          type: "counter" as const,
          samples: [{ value: c?.throttled ?? 0 }],
        },
        {
          name: `agent_${system}_throttle_wait_seconds_total`,
          help: `Time spent waiting for ${system === "graph" ? "Graph" : "Jira"}'s Retry-After.`,
          type: "counter" as const,
          samples: [{ value: (c?.throttleWaitMs ?? 0) / 1000 }],
        },
      ];
      return [
        {
          name: "agent_mails_bridged_total",
          help: "Mails handled by the bridge, by outcome.",
          type: "counter",
          samples: (["created", "commented", "skipped", "failed"] as const).map((outcome) => ({
            labels: { outcome },
            value: s[outcome],
          })),
        },
        gauge(
          "agent_mail_dead_letters",
          "Mails that failed for good (agent mail-bridge --retry-failed).",
          deadLetters,
        ),
        ...throttle("graph", graph),
        ...throttle("jira", jira),
      ];
    },
  };
}
