/**
 * A mail bridge wired to the fake tenant and the fake Jira over HTTPS (test CA), with a
 * recording sleep so that Retry-After and backoff are checked without waiting.
 */
import { parseConfig } from "../../mod/config/config.ts";
import { GraphMailbox } from "../../mod/graph/client.ts";
import { MsalTokenSource } from "../../mod/graph/token.ts";
import { JiraTracker } from "../../mod/jira/client.ts";
import { MailBridge } from "../../mod/mail_bridge/bridge.ts";
import { Ledger } from "../../mod/mail_bridge/ledger.ts";
import { Replier } from "../../mod/mail_bridge/replies.ts";
import { Store } from "../../mod/store/store.ts";
import { testPki } from "./ca.ts";
import { FakeGraph, graphSection } from "./fake_graph.ts";
import { FakeJira, jiraSection } from "./fake_jira.ts";

export interface BridgeHarness {
  graph: FakeGraph;
  jira: FakeJira;
  store: Store;
  bridge: MailBridge;
  ledger: Ledger;
  mailbox: GraphMailbox;
  tracker: JiraTracker;
  /** The way back, on the same mailbox, tracker and store. */
  replier: Replier;
  /** One reply pass (queued comments, then polling). */
  replies(): Promise<void>;
  /** Every wait the bridge asked for, in ms. */
  sleeps: number[];
  configText: string;
  /** One pass over the Inbox. */
  sync(): Promise<void>;
  /** A new bridge on the same store and fakes (a restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startBridge(
  options: {
    deployment?: "cloud" | "server";
    bridge?: Record<string, string>;
    graph?: Record<string, string>;
    jira?: Record<string, string>;
    storePath?: string;
    /** More config (another section). */
    extra?: string;
  } = {},
): Promise<BridgeHarness> {
  const pki = await testPki();
  const graph = await new FakeGraph().start();
  const jira = await new FakeJira(options.deployment ?? "cloud").start();
  const bridgeLines = Object.entries({
    ack_mail: "true",
    categories: "general, network",
    default_category: "general",
    blocked_addresses: "spam@bad.example, *@blocked.example",
    ...options.bridge,
  })
    .map(([k, v]) => `${k} = ${v}`).join("\n");
  const configText = [
    graphSection(graph, pki.caCertFile, { page_size: "5", ...options.graph }),
    jiraSection(jira, pki.caCertFile, options.jira),
    `[mail_bridge]\n${bridgeLines}\n`,
    options.extra ?? "",
  ].join("\n");
  const config = parseConfig(configText, { file: "/tmp/bridge-test.ini", env: () => undefined });
  const store = await Store.open(options.storePath ?? ":memory:");
  const sleeps: number[] = [];
  const sleep = (ms: number) => {
    sleeps.push(ms);
    return Promise.resolve();
  };
  const harness = { graph, jira, store, sleeps, configText } as BridgeHarness;
  const build = async () => {
    const tokens = await MsalTokenSource.fromConfig(config.graph!, { store });
    harness.mailbox = await GraphMailbox.fromConfig(config.graph!, tokens, { sleep });
    harness.tracker = await JiraTracker.fromConfig(config.jira!, { sleep });
    harness.ledger = new Ledger(store, graph.mailbox);
    harness.bridge = new MailBridge(
      { mailbox: harness.mailbox, tracker: harness.tracker, ledger: harness.ledger },
      {
        config: config.mailBridge!,
        project: config.jira!.project,
        issueType: config.jira!.issueType,
      },
    );
    harness.replier = new Replier(
      { tracker: harness.tracker, mailbox: harness.mailbox, store },
      config.mailBridge!,
    );
  };
  await build();
  harness.sync = () => harness.bridge.sync(["Inbox"]);
  harness.replies = () => harness.replier.pass();
  harness.restart = build;
  harness.close = async () => {
    store.close();
    await graph.stop();
    await jira.stop();
  };
  return harness;
}

/** The plain text of an ADF document or wiki string, for assertions. */
export function textOf(body: unknown): string {
  if (typeof body === "string") return body;
  const node = body as { text?: string; content?: unknown[] };
  return (node.text ?? "") + (node.content ?? []).map(textOf).join(node.content ? " " : "");
}
