/**
 * The way back against the fake tenant and the fake Jira, both answering after 20 ms: 500
 * public comments on 100 issues that came from mail, sent back as replies in one polling
 * pass. Replies per second, and Graph requests per reply, beside the ceiling Graph's 4
 * concurrent requests per mailbox set (4 / 20 ms = 200 requests/s, divided by the requests
 * one reply needs), as the bridge's own benchmark reports.
 */
import { type BenchResult, round } from "./_report.ts";
import { setupLogging } from "../mod/log/log.ts";
import { startBridge } from "../tests/support/mail_bridge.ts";

const ISSUES = 100;
const COMMENTS_PER_ISSUE = 5;
const LATENCY_MS = 20;

export async function benchReplies(): Promise<BenchResult> {
  setupLogging({ format: "json", level: "error" });
  const h = await startBridge({ graph: { page_size: "100" }, bridge: { ack_mail: "false" } });
  try {
    for (let i = 0; i < ISSUES; i++) {
      h.graph.deliver({ from: `user${i}@example.com`, subject: `Request ${i}`, html: "<p>x</p>" });
    }
    await h.sync();
    await h.replies(); // the cursor starts
    for (const key of h.jira.issues.keys()) {
      for (let n = 0; n < COMMENTS_PER_ISSUE; n++) {
        h.jira.commentAs(key, { author: "bob@example.com", text: `Update ${n} on ${key}` });
      }
    }
    h.graph.latencyMs = LATENCY_MS;
    h.jira.latencyMs = LATENCY_MS;
    h.graph.keepBodyChars = 0;
    h.jira.keepBodyChars = 0;
    const graphBefore = h.mailbox.stats.requests;
    const busyBefore = h.mailbox.stats.busyMs;
    const started = performance.now();
    await h.replies();
    const seconds = (performance.now() - started) / 1000;
    const replies = h.replier.stats.sent;
    const expected = ISSUES * COMMENTS_PER_ISSUE;
    if (replies !== expected) throw new Error(`expected ${expected} replies, sent ${replies}`);
    const graphPerReply = (h.mailbox.stats.requests - graphBefore) / replies;
    const ceiling = 4 / (LATENCY_MS / 1000) / graphPerReply;
    const perS = replies / seconds;
    return {
      name: "replies",
      figures: {
        comments: expected,
        issues: ISSUES,
        fake_latency_ms: LATENCY_MS,
        replies_per_s: round(perS),
        graph_requests_per_reply: round(graphPerReply, 2),
        ceiling_replies_per_s: round(ceiling),
        ratio_to_graph_ceiling: round(perS / ceiling, 3),
        max_graph_in_flight: h.graph.maxInFlight,
        graph_slot_use: round((h.mailbox.stats.busyMs - busyBefore) / 1000 / seconds / 4, 3),
      },
      targets: {
        "at most 4 Graph requests in flight": { target: "<= 4", met: h.graph.maxInFlight <= 4 },
      },
      notes: [
        "a reply is createReply + send (2 Graph requests); Jira is read once per issue for its " +
        "comments; each comment is recorded in the store before and after its reply",
      ],
    };
  } finally {
    await h.close();
  }
}
