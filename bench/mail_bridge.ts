/**
 * The mail bridge against the fake tenant and the fake Jira, both answering after 20 ms
 * (a SaaS round trip):
 * - 2,000 mails end to end (read, issue, mark, acknowledgement): mails per second, and how
 *   close that is to the ceiling set by Graph's 4 concurrent requests per mailbox
 *   (4 / 20 ms = 200 Graph requests/s, divided by the Graph requests one mail needs).
 * - Memory: `agent mail-bridge --once` as its own process on 12 mails with a 10 MB
 *   attachment each, then with a 40 MB one each, and without: peak resident memory
 *   (VmHWM). Attachments are streamed from Graph to Jira, so the peak does not grow with
 *   the attachments' size (whole files in memory would add 16 uploads x 30 MB more).
 */
import { type BenchResult, round } from "./_report.ts";
import { setupLogging } from "../mod/log/log.ts";
import { SELF_RUN_FLAGS } from "../mod/cli/permissions.ts";
import { startBridge } from "../tests/support/mail_bridge.ts";
import { testPki } from "../tests/support/ca.ts";
import { FakeGraph, graphSection } from "../tests/support/fake_graph.ts";
import { FakeJira, jiraSection } from "../tests/support/fake_jira.ts";

const MAILS = 2_000;
const LATENCY_MS = 20;
const BIG_MAILS = 12;
const MB = 1024 * 1024;

export async function benchMailBridge(): Promise<BenchResult> {
  setupLogging({ format: "json", level: "error" });
  const throughput = await measureThroughput();
  const none = await peakMemory(0);
  const ten = await peakMemory(10 * MB);
  const forty = await peakMemory(40 * MB);
  return {
    name: "mail_bridge",
    figures: {
      mails: MAILS,
      fake_latency_ms: LATENCY_MS,
      mails_per_s: round(throughput.mailsPerS),
      graph_requests_per_mail: round(throughput.graphPerMail, 2),
      ceiling_mails_per_s: round(throughput.ceiling),
      ratio_to_graph_ceiling: round(throughput.mailsPerS / throughput.ceiling, 3),
      max_graph_in_flight: throughput.maxInFlight,
      graph_slot_use: round(throughput.slotUse, 3),
      graph_request_ms_seen_by_client: round(throughput.requestMs),
      peak_rss_mb_12_mails_no_attachments: round(none / MB),
      peak_rss_mb_12x10mb_attachments: round(ten / MB),
      peak_rss_mb_12x40mb_attachments: round(forty / MB),
    },
    targets: {
      "at most 4 Graph requests in flight": { target: "<= 4", met: throughput.maxInFlight <= 4 },
      "memory bounded (streamed): 40 MB attachments peak within 64 MB of 10 MB ones": {
        target: "peak(40 MB) - peak(10 MB) < 64 MB",
        met: forty - ten < 64 * MB,
      },
    },
    notes: [
      "graph_slot_use = time Graph requests were in flight / (4 x wall time): how busy the bridge kept " +
      "the 4 allowed slots; a request took graph_request_ms_seen_by_client (20 ms fake latency + TLS " +
      "and the fakes sharing this machine's 2 cores), which is what bounds the ratio to the nominal ceiling",
      "ceiling = 4 concurrent / 20 ms = 200 Graph requests/s, divided by the Graph requests per mail " +
      "(delta page share, message read, mark, acknowledgement)",
    ],
  };
}

async function measureThroughput() {
  const h = await startBridge({ graph: { page_size: "100" } });
  try {
    h.graph.latencyMs = LATENCY_MS;
    h.jira.latencyMs = LATENCY_MS;
    h.graph.keepBodyChars = 0;
    h.jira.keepBodyChars = 0;
    for (let i = 0; i < MAILS; i++) {
      h.graph.deliver({
        from: "ann@example.com",
        subject: `Alert ${i}`,
        html: `<p>mail <b>${i}</b></p>`,
      });
    }
    const started = performance.now();
    await h.sync();
    const seconds = (performance.now() - started) / 1000;

    if (h.jira.issues.size !== MAILS) {
      throw new Error(`expected ${MAILS} issues, got ${h.jira.issues.size}`);
    }
    const graphPerMail = h.mailbox.stats.requests / MAILS;
    return {
      mailsPerS: MAILS / seconds,
      graphPerMail,
      ceiling: 4 / (LATENCY_MS / 1000) / graphPerMail,
      maxInFlight: h.graph.maxInFlight,
      slotUse: h.mailbox.stats.busyMs / 1000 / seconds / 4,
      requestMs: h.mailbox.stats.busyMs / h.mailbox.stats.requests,
    };
  } finally {
    await h.close();
  }
}

/** Peak RSS (bytes) of `agent mail-bridge --once` bridging 20 mails with `size`-byte attachments. */
async function peakMemory(size: number): Promise<number> {
  const pki = await testPki();
  const graph = await new FakeGraph().start();
  const jira = await new FakeJira("cloud").start();
  jira.uploadLimit = 64 * MB;
  jira.keepAttachments = false;
  jira.keepBodyChars = 0;
  const dir = await Deno.makeTempDir({ prefix: "bench-mail-" });
  try {
    for (let i = 0; i < BIG_MAILS; i++) {
      graph.deliver({
        from: "ann@example.com",
        subject: `Capture ${i}`,
        text: "see attached",
        attachments: size
          ? [{
            name: `capture-${i}.pcap`,
            contentType: "application/octet-stream",
            isInline: false,
            size,
          }]
          : [],
      });
    }
    await Deno.writeTextFile(
      `${dir}/app.config`,
      `[agent]\nstore = ${dir}/agent.kv\n\n${graphSection(graph, pki.caCertFile)}\n` +
        `${jiraSection(jira, pki.caCertFile)}\n[mail_bridge]\nack_mail = false\n` +
        // Above the 25 MB default: the point is that big mails stream through.
        "max_mail_mb = 64\n",
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...SELF_RUN_FLAGS,
        new URL("../main.ts", import.meta.url).pathname,
        "mail-bridge",
        "--once",
        "--config",
        `${dir}/app.config`,
        "--log-level",
        "error",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
        const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
        peak = Math.max(peak, kb * 1024);
      } catch {
        // exited
      }
    }, 20);
    const out = await child.output();
    clearInterval(sampler);
    if (!out.success) {
      throw new Error(`mail-bridge failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    const uploaded = [...jira.issues.values()].reduce((n, i) => n + i.attachments.length, 0);
    if (size && uploaded !== BIG_MAILS) {
      throw new Error(`expected ${BIG_MAILS} uploads, got ${uploaded}`);
    }
    return peak;
  } finally {
    await graph.stop();
    await jira.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
