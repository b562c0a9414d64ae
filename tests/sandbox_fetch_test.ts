/**
 * A sandbox process's fetch goes through the host (mod/sandbox/fetch_relay.ts and fetchRelay
 * in mod/sandbox/_guest.ts): what a plugin sees is what Deno's fetch gives (bodies, repeated
 * headers, a private CA, redirects, aborts, errors), and the host carries nothing the
 * sandbox's allow_net does not grant, whatever the guest sends.
 */
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { HttpsFake } from "./support/https_fake.ts";
import { testPki } from "./support/ca.ts";
import { Sandbox } from "../mod/sandbox/sandbox.ts";
import { MAX_OPEN_PER_SANDBOX, relayMayReach } from "../mod/sandbox/fetch_relay.ts";
import { log, setupLogging } from "../mod/log/log.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** Starts `code` (a plugin module) in a sandbox process that may reach `allowNet`. */
async function plugin(dir: string, code: string, allowNet: string[]): Promise<Sandbox> {
  const path = `${dir}/plugin${crypto.randomUUID()}.js`;
  await Deno.writeTextFile(path, code);
  const { sandbox } = await Sandbox.start({
    name: "relay-test",
    source: { kind: "file", path },
    kind: "plugin",
    allowNet,
    allowRead: [],
    logger: log("test"),
  });
  return sandbox;
}

const run = (sandbox: Sandbox, config: Record<string, string>) =>
  sandbox.call({ ticketInfo: { Id: 1 }, config }) as Promise<string>;

/**
 * Runs `code` as a plugin that may reach `api` (started here) and `alsoAllowed`, with
 * `ca_pem`, `base` and `config` as its settings; `check` gets the sandbox and its answer.
 */
async function againstApi(
  api: HttpsFake,
  code: string,
  check: (sandbox: Sandbox, answer: string) => void,
  options: { alsoAllowed?: (port: number) => string[]; config?: Record<string, string> } = {},
): Promise<void> {
  setupLogging({ format: "json", level: "error" });
  const pki = await testPki();
  await api.start();
  const dir = await Deno.makeTempDir();
  const allowNet = [`127.0.0.1:${api.port}`, ...(options.alsoAllowed?.(api.port) ?? [])];
  const sandbox = await plugin(dir, code, allowNet);
  try {
    check(sandbox, await run(sandbox, { ca_pem: pki.caCert, base: api.url, ...options.config }));
  } finally {
    sandbox.terminate("done");
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "a sandbox process's fetch goes through the host: JSON, a POST body, repeated headers, a 3 MB body intact, HEAD and 204, a private CA, redirects hop by hop, an abort, a refused connection",
  ...integration,
  async fn() {
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) % 251);
    const api: HttpsFake = new HttpsFake()
      .route("GET", "/json", () => ({ verdict: "clean" }))
      .route(
        "POST",
        "/echo",
        (request, _p, body) =>
          new Response(`${request.headers.get("content-type")}|${body}`, {
            headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"], ["x-seen", "yes"]],
          }),
      )
      .route("GET", "/big", () => new Response(big))
      .route("HEAD", "/json", () => new Response(null, { headers: { "x-head": "yes" } }))
      .route("DELETE", "/item", () => new Response(null, { status: 204 }))
      .route(
        "GET",
        "/hop",
        () => new Response(null, { status: 302, headers: { location: "/json" } }),
      )
      .route("POST", "/see-other", () =>
        new Response(null, {
          status: 303,
          headers: { location: `https://localhost:${api.port}/method` },
        }))
      .route(
        "GET",
        "/method",
        (request) => new Response(`${request.method} auth=${request.headers.get("authorization")}`),
      )
      .route("GET", "/slow", async () => {
        await new Promise((r) => setTimeout(r, 2_000));
        return "late";
      });
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = listener.addr.port;
    listener.close();
    let expectedSum = 0;
    for (const b of big) expectedSum = (expectedSum * 31 + b) >>> 0;
    await againstApi(
      api,
      `export async function getData(ticket, logger, config) {
        const client = Deno.createHttpClient({ caCerts: [config.ca_pem] });
        const base = config.base;
        const out = [];
        const json = await (await fetch(base + "/json", { client })).json();
        out.push("json " + json.verdict);
        const echo = await fetch(new URL("/echo", base), { method: "POST", body: "hello", client });
        out.push("echo " + echo.status + " " + (await echo.text()) + " " +
          echo.headers.getSetCookie().join(";") + " " + echo.headers.get("x-seen"));
        const big = new Uint8Array(await (await fetch(base + "/big", { client })).arrayBuffer());
        let sum = 0;
        for (const b of big) sum = (sum * 31 + b) >>> 0;
        out.push("big " + big.length + " " + sum);
        const head = await fetch(base + "/json", { method: "HEAD", client });
        const gone = await fetch(base + "/item", { method: "DELETE", client });
        out.push("empty " + head.headers.get("x-head") + " " + head.body + " " + gone.status);
        const hop = await fetch(base + "/hop", { client });
        out.push("hop " + hop.redirected + " " + new URL(hop.url).pathname + " " + (await hop.json()).verdict);
        const manual = await fetch(base + "/hop", { client, redirect: "manual" });
        out.push("manual " + manual.status + " " + manual.headers.get("location"));
        await manual.body?.cancel();
        const other = await fetch(base + "/see-other", {
          method: "POST", body: "x", headers: { authorization: "Bearer t" }, client,
        });
        out.push("other " + (await other.text()));
        try {
          await fetch(base + "/slow", { client, signal: AbortSignal.timeout(100) });
          out.push("slow answered");
        } catch (error) {
          out.push("slow " + error.name);
        }
        try {
          await fetch(config.closed + "/x", { client });
          out.push("closed answered");
        } catch (error) {
          out.push("closed " + error.constructor.name + " " +
            /refused/i.test(error.message + " " + error.cause?.message));
        }
        return out.join("\\n");
      }`,
      (sandbox, result) => {
        assertEquals(result.split("\n"), [
          "json clean",
          "echo 200 text/plain;charset=UTF-8|hello a=1;b=2 yes",
          `big ${big.length} ${expectedSum}`,
          "empty yes null 204",
          "hop true /json clean",
          "manual 302 /json",
          // 303 turns a POST into a GET; a redirect to another origin drops Authorization.
          "other GET auth=null",
          "slow TimeoutError",
          "closed TypeError true",
        ]);
        // Every request went through the host (each redirect hop one; and the refused
        // connection): the sandbox's own TLS never started.
        assertEquals(api.requests.length, 11);
        assertEquals(sandbox.fetchesRelayed, api.requests.length + 1);
      },
      {
        alsoAllowed: (port) => [`localhost:${port}`, `127.0.0.1:${closedPort}`],
        config: { closed: `https://127.0.0.1:${closedPort}` },
      },
    );
  },
});

Deno.test({
  name:
    "the host relays nothing a sandbox's allow_net does not grant: a redirect to another port fails as Deno's own permission check fails, and requests forged on the raw stdout are refused",
  ...integration,
  async fn() {
    setupLogging({ format: "json", level: "error" });
    const pki = await testPki();
    const allowed = new HttpsFake();
    const forbidden = new HttpsFake().route("GET", "/secret", () => "secret");
    await allowed.start();
    await forbidden.start();
    allowed
      .route(
        "GET",
        "/away",
        () => new Response(null, { status: 302, headers: { location: `${forbidden.url}/secret` } }),
      )
      .route("GET", "/forged", () => "forged but allowed");
    const dir = await Deno.makeTempDir();
    // node:process writes to the real stdout, past the guest's own printer: the host sees
    // these lines as protocol, exactly as a hostile plugin would send them.
    const sandbox = await plugin(
      dir,
      `import process from "node:process";
      export async function getData(ticket, logger, config) {
        const out = [];
        const client = Deno.createHttpClient({ caCerts: [config.ca_pem] });
        try {
          await fetch(config.allowed + "/away", { client });
          out.push("away answered");
        } catch (error) {
          out.push("away " + error.name + " " + error.message);
        }
        for (const [fid, url] of [[9001, config.forbidden + "/secret"], [9002, config.allowed + "/forged"],
            [9003, "file:///etc/passwd"], [9004, config.forbidden.replace("127.0.0.1", "[::1]") + "/secret"]]) {
          process.stdout.write(JSON.stringify({ op: "fetch", fid, url, method: "GET", headers: [],
            client: { caCerts: [config.ca_pem] } }) + "\\n");
        }
        process.stdout.write(JSON.stringify({ op: "fetch", fid: 9005, url: config.forbidden + "/secret",
          method: "GET", headers: [], client: { caCerts: [config.ca_pem], proxy: { url: config.allowed } } }) + "\\n");
        await new Promise((r) => setTimeout(r, 500));
        return out.join("\\n");
      }`,
      [`127.0.0.1:${allowed.port}`],
    );
    try {
      const result = await run(sandbox, {
        ca_pem: pki.caCert,
        allowed: allowed.url,
        forbidden: forbidden.url,
      });
      assertMatch(result, /^away NotCapable Requires net access to "127\.0\.0\.1:\d+"/);
      assertEquals(forbidden.requests.length, 0, "nothing reached the forbidden server");
      assertEquals(
        allowed.requests.map((r) => r.path),
        ["/away", "/forged"],
        "the forged request for an allowed URL went through: the channel was reached",
      );
    } finally {
      sandbox.terminate("done");
      await allowed.stop();
      await forbidden.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a plugin opening more requests at once than the agent holds for one sandbox gets them all answered, those past the limit through its own fetch",
  ...integration,
  async fn() {
    const total = MAX_OPEN_PER_SANDBOX + 16;
    const api = new HttpsFake().route("GET", "/slow/:n", async (_r, params) => {
      await new Promise((r) => setTimeout(r, 300));
      return { n: Number(params.n) };
    });
    await againstApi(
      api,
      `export async function getData(ticket, logger, config) {
        const client = Deno.createHttpClient({ caCerts: [config.ca_pem] });
        const answers = await Promise.all(Array.from({ length: ${total} }, async (_, n) =>
          (await (await fetch(config.base + "/slow/" + n, { client })).json()).n));
        return answers.reduce((a, b) => a + b, 0);
      }`,
      (sandbox, sum) => {
        assertEquals(Number(sum), (total * (total - 1)) / 2);
        assertEquals(api.requests.length, total);
        assertEquals(sandbox.fetchesRelayed, MAX_OPEN_PER_SANDBOX);
      },
    );
  },
});

Deno.test({
  name:
    "a plugin making more distinct clients than the agent keeps for one sandbox gets every answer, those past the limit through its own fetch",
  ...integration,
  async fn() {
    const api = new HttpsFake().route("GET", "/n/:n", (_r, params) => ({ n: Number(params.n) }));
    await againstApi(
      api,
      `export async function getData(ticket, logger, config) {
        let sum = 0;
        for (let i = 0; i < 20; i++) {
          // Each a client of its own options: the CA given i + 1 times.
          const client = Deno.createHttpClient({ caCerts: Array(i + 1).fill(config.ca_pem) });
          sum += (await (await fetch(config.base + "/n/" + i, { client })).json()).n;
        }
        return sum;
      }`,
      (sandbox, sum) => {
        assertEquals(Number(sum), 190);
        assertEquals(api.requests.length, 20);
        assertEquals(sandbox.fetchesRelayed, 16);
      },
    );
  },
});

Deno.test("relayMayReach grants only what allow_net certainly names", () => {
  const url = (u: string) => new URL(u);
  assert(relayMayReach(["api.example.com"], url("https://api.example.com/x")));
  assert(relayMayReach(["API.example.com"], url("https://api.example.com:8443/x")));
  assert(relayMayReach(["api.example.com:443"], url("https://api.example.com/x")));
  assert(relayMayReach(["api.example.com:80"], url("http://api.example.com/x")));
  assert(relayMayReach(["[::1]:8443"], url("https://[::1]:8443/")));
  assert(relayMayReach(["127.0.0.1"], url("https://0x7f.0.0.1/")), "URL's own normal form");
  assert(!relayMayReach(["api.example.com:443"], url("https://api.example.com:8443/x")));
  assert(!relayMayReach(["api.example.com"], url("https://api.example.com.evil.test/")));
  assert(!relayMayReach(["api.example.com"], url("https://evil.test/?api.example.com")));
  assert(!relayMayReach(["example.com"], url("https://api.example.com/")));
  assert(!relayMayReach(["*.example.com"], url("https://api.example.com/")), "Deno decides");
  assert(!relayMayReach(["api.example.com"], url("ftp://api.example.com/")));
  assert(!relayMayReach(["[::1]:8443"], url("https://[::2]:8443/")));
  assert(!relayMayReach([], url("https://api.example.com/")));
});
