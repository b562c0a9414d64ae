/**
 * Resident memory of `agent run` (the real CLI with its permission flags, in its own
 * process) with the calendar on ActiveMQ over STOMP+SSL and a real SMTP server: at rest after
 * start-up, at the end of 10,000 task actions (each an invite), and idle again afterwards
 * (target: under 120 MB). Read from /proc/<pid>/status (VmRSS, VmHWM for the peak, RssAnon
 * and RssFile), with the JavaScript heap from the agent's /metrics to tell V8's share from
 * the native one. BENCH_MESSAGES=N runs a shorter round.
 */
import { join } from "node:path";
import { type BenchResult, round } from "./_report.ts";
import { freePort, startBroker } from "../tests/support/activemq.ts";
import { testPki } from "../tests/support/ca.ts";
import { FakeResilient, resilientSection } from "../tests/support/fake_resilient.ts";
import { PlatformClient, taskAction } from "../tests/support/stomp_client.ts";
import { TestSmtpServer } from "../tests/support/smtp_server.ts";
import { SELF_RUN_FLAGS } from "../mod/cli/permissions.ts";
import { waitUntil } from "../tests/support/wait.ts";

const ORG = 201;
const MESSAGES = Number(Deno.env.get("BENCH_MESSAGES") ?? 10_000);
const IDLE_MS = 20_000;
const TARGET_MB = 120;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function memoryMb(pid: number) {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mb = (field: string) =>
    round(Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) / 1024);
  // Anonymous memory is the process's own; file pages (the binary, a mapped store) are shared.
  return { rss: mb("VmRSS"), peak: mb("VmHWM"), anon: mb("RssAnon"), file: mb("RssFile") };
}

export async function benchRunMemory(): Promise<BenchResult> {
  const pki = await testPki();
  const fake = await new FakeResilient({ orgId: ORG }).start();
  fake.users.set(4, { id: 4, email: "ann@example.com", fname: "Ann", lname: "Example" });
  fake.users.set(5, { id: 5, email: "bob@example.com", fname: "Bob", lname: "Example" });
  fake.rules.set(11, "taskcalendar");
  const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
  const platform = await PlatformClient.connect(broker);
  const smtp = await new TestSmtpServer().start();
  const dir = await Deno.makeTempDir({ prefix: "agent-bench-memory-" });
  const port = freePort();
  const config = join(dir, "app.config");
  await Deno.writeTextFile(
    config,
    `[agent]\nstore = ${dir}/agent.kv\nhttp_listen = 127.0.0.1:${port}\n` +
      resilientSection(fake, { sslPort: broker.sslPort, caCertFile: pki.caCertFile }) +
      `\n[taskcalendar]\nqueue = memcal\nsmtpserver = 127.0.0.1\nsmtpport = ${smtp.port}\n` +
      `smtpfrom = soar@example.com\ndebounce_seconds = 0\n`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SELF_RUN_FLAGS, MAIN, "run", "--config", config, "--log-level", "error"],
    env: { SOAR_SECRET: fake.apiKeySecret, NO_COLOR: "1" },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    const healthy = async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
    await waitUntil("agent run is healthy", healthy, 60_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const atRest = await memoryMb(child.pid);

    platform.listenForReplies(ORG, "memcal");
    const t0 = performance.now();
    // Owner changes on 2,000 tasks: new invites, updates with a growing SEQUENCE, cancels.
    for (let i = 0; i < MESSAGES; i++) {
      platform.sendAction(
        ORG,
        "memcal",
        taskAction({ id: 50_000 + (i % 2_000), owner_id: i % 3 === 0 ? 5 : 4, due_date: i }),
      );
      if (i % 500 === 499) await platform.sync();
    }
    await platform.waitFor((r) => r.length >= MESSAGES, 600_000);
    const seconds = (performance.now() - t0) / 1000;
    const busy = await memoryMb(child.pid);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const idle = await memoryMb(child.pid);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const gauge = (name: string) =>
      round(Number(new RegExp(`^${name} (\\d+)$`, "m").exec(metrics)?.[1]) / 1024 / 1024);
    const failed = platform.replies.filter((r) => r.json?.message_type !== 0).length;
    return {
      name: "run_memory",
      figures: {
        messages: MESSAGES,
        failed_replies: failed,
        invites_sent: smtp.messages.length,
        msgs_per_s: round(MESSAGES / seconds),
        rss_at_rest_mb: atRest.rss,
        rss_after_messages_mb: busy.rss,
        rss_idle_after_messages_mb: idle.rss,
        rss_peak_mb: idle.peak,
        rss_idle_anon_mb: idle.anon,
        rss_idle_file_mb: idle.file,
        heap_used_idle_mb: gauge("agent_heap_used_bytes"),
        heap_total_idle_mb: gauge("agent_heap_total_bytes"),
        external_idle_mb: gauge("agent_external_memory_bytes"),
      },
      targets: {
        idle_rss: {
          target: `idle agent run after ${MESSAGES} messages < ${TARGET_MB} MB resident`,
          met: idle.rss < TARGET_MB,
        },
      },
      notes: [
        `agent run (calendar, STOMP+SSL, SMTP) in its own process; idle = ${
          IDLE_MS / 1000
        } s after the last reply`,
      ],
    };
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await platform.close();
    await smtp.stop();
    await fake.stop();
    await broker.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}
