/**
 * `GET /tickets/{key}` of `agent ticket-api` (its own process, the ticket served from the
 * store, a bearer token checked per request, the access log written) under 50 concurrent
 * keep-alive clients, beside a bare `Deno.serve` handler in its own process answering the
 * same JSON, in the same run. Target: at least 0.5x the bare handler's requests/s.
 */
import { join } from "node:path";
import { type BenchResult, percentile, round } from "./_report.ts";
import { SELF_RUN_FLAGS } from "../mod/cli/permissions.ts";
import { Store } from "../mod/store/store.ts";
import { Tokens } from "../mod/ticket_api/tokens.ts";
import { freePort } from "../tests/support/activemq.ts";

const CONCURRENCY = 50;
const SECONDS = 5;

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `CONCURRENCY` loops of GET for `seconds` (after a 1 s warm-up). */
async function load(url: string, headers: Record<string, string>, seconds: number): Promise<Load> {
  const run = async (ms: number, keep: boolean) => {
    const until = performance.now() + ms;
    const times: number[] = [];
    let errors = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        const start = performance.now();
        const response = await fetch(url, { headers });
        await response.arrayBuffer();
        if (response.status !== 200) errors++;
        if (keep) times.push(performance.now() - start);
      }
    }));
    return { times, errors };
  };
  await run(1000, false);
  const started = performance.now();
  const { times, errors } = await run(seconds * 1000, true);
  const elapsed = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  return {
    rps: times.length / elapsed,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    errors,
  };
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} never answered`);
}

export async function benchTicketApi(): Promise<BenchResult> {
  const dir = await Deno.makeTempDir({ prefix: "bench-ticket-api-" });
  const port = freePort();
  const configFile = join(dir, "app.config");
  await Deno.writeTextFile(
    configFile,
    `[agent]\nstore = ${dir}/agent.kv\nlog_format = json\n` +
      `[mail_bridge]\nissues_dir = ${dir}/issues\n` +
      `[ticket_api]\nlisten = 127.0.0.1:${port}\ncache_seconds = 3600\n`,
  );
  const store = await Store.open(`${dir}/agent.kv`);
  const token = await new Tokens(store).create("bench", "write");
  store.close();
  const main = new URL("../main.ts", import.meta.url).pathname;
  const agent = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SELF_RUN_FLAGS, main, "ticket-api", "--config", configFile],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let bare: Deno.ChildProcess | undefined;
  try {
    const base = `http://127.0.0.1:${port}/api/tickets/v1`;
    await waitFor(`${base}/openapi.json`);
    const auth = { authorization: `Bearer ${token}` };
    const created = await fetch(`${base}/tickets`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        title: "Benchmark ticket",
        body: "Served from the store, again and again.",
        reporter: "ann@example.com",
      }),
    });
    const { key } = await created.json();
    const url = `${base}/tickets/${key}`;
    const body = await (await fetch(url, { headers: auth })).text();

    // The baseline: the same JSON from a bare Deno.serve, in a process of its own.
    const barePort = freePort();
    const bodyFile = join(dir, "ticket.json");
    await Deno.writeTextFile(bodyFile, body);
    bare = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const body = Deno.readTextFileSync(${JSON.stringify(bodyFile)});
Deno.serve({ hostname: "127.0.0.1", port: ${barePort}, onListen() {} },
  () => new Response(body, { headers: { "content-type": "application/json" } }));`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const bareUrl = `http://127.0.0.1:${barePort}/tickets/${key}`;
    await waitFor(bareUrl);

    const baseline = await load(bareUrl, auth, SECONDS);
    const ours = await load(url, auth, SECONDS);
    const ratio = ours.rps / baseline.rps;
    return {
      name: "ticket_api",
      figures: {
        agent_requests_per_s: round(ours.rps, 0),
        agent_p50_ms: round(ours.p50),
        agent_p99_ms: round(ours.p99),
        bare_requests_per_s: round(baseline.rps, 0),
        bare_p50_ms: round(baseline.p50),
        bare_p99_ms: round(baseline.p99),
        ratio: round(ratio, 2),
        errors: ours.errors + baseline.errors,
        concurrency: CONCURRENCY,
        ticket_bytes: body.length,
      },
      targets: { ratio: { target: ">= 0.5 of the bare handler", met: ratio >= 0.5 } },
      notes: [
        "the agent checks the bearer token (a store read and a SHA-256) and reads the ticket " +
        "from the store on every request, and writes an access log line; the bare handler " +
        "answers a constant",
      ],
    };
  } finally {
    agent.kill("SIGTERM");
    await agent.status;
    bare?.kill("SIGTERM");
    await bare?.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
