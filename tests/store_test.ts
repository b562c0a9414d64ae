import { assert, assertEquals } from "./support/assert.ts";
import { Store } from "../mod/store/store.ts";
import { parseConfig } from "../mod/config/config.ts";

Deno.test("claim() is exactly-once across two processes sharing one store file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/shared.kv`;
    const child = new URL("./fixtures/claim_child.ts", import.meta.url).pathname;
    const count = 300;
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--unstable-kv",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          child,
          path,
          String(count),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const [a, b] = await Promise.all([run(), run()]);
    const decode = (o: Deno.CommandOutput) => {
      assert(o.success, new TextDecoder().decode(o.stderr));
      return new TextDecoder().decode(o.stdout).split("\n").filter((l) => l !== "").map(Number);
    };
    const wonA = decode(a);
    const wonB = decode(b);
    const all = [...wonA, ...wonB].sort((x, y) => x - y);
    // Every key was claimed, and none twice.
    assertEquals(all, Array.from({ length: count }, (_, i) => i));
    const store = await Store.open(path);
    assertEquals(await store.claim(["claim", 0]), false);
    store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("records expire at their own expiry time, not KV's lazy one", async () => {
  let now = 1_000_000;
  const store = await Store.open(":memory:", { now: () => now });
  try {
    assert(await store.claim(["k"], "first", { ttlMs: 1000 }));
    assertEquals(await store.claim(["k"], "second"), false);
    assertEquals(await store.get(["k"]), "first");
    now += 1000;
    assertEquals(await store.get(["k"]), undefined);
    // An expired claim can be claimed again.
    assert(await store.claim(["k"], "third"));
    assertEquals(await store.get(["k"]), "third");
  } finally {
    store.close();
  }
});

Deno.test("get() calls made at once, more than one group read's worth, each get their own record, absent or expired", async () => {
  let now = 1_000_000;
  const store = await Store.open(":memory:", { now: () => now });
  try {
    for (let i = 0; i < 25; i++) {
      if (i % 5 === 0) continue; // absent
      await store.set(["k", i], { i }, i % 5 === 1 ? { ttlMs: 1_000 } : {});
    }
    now += 2_000; // the ttl records have expired
    const got = await Promise.all(Array.from({ length: 25 }, (_, i) => store.get(["k", i])));
    got.forEach((value, i) => {
      assertEquals(value, i % 5 === 0 || i % 5 === 1 ? undefined : { i }, `key ${i}`);
    });
  } finally {
    store.close();
  }
});

Deno.test("commit() writes and deletes together; list() skips expired records", async () => {
  let now = 0;
  const store = await Store.open(":memory:", { now: () => now });
  try {
    await store.set(["q", 1], "a");
    await store.commit({
      set: [[["q", 2], "b"], [["q", 3], "c", { ttlMs: 10 }]],
      delete: [["q", 1]],
    });
    assertEquals((await Array.fromAsync(store.list(["q"]))).map((e) => e.value), ["b", "c"]);
    now = 10;
    assertEquals((await Array.fromAsync(store.list(["q"]))).map((e) => e.value), ["b"]);
    assertEquals(await store.count(["q"]), 1);
  } finally {
    store.close();
  }
});

Deno.test("a KV Connect URL in [agent] store stays a URL and is opened with DENO_KV_ACCESS_TOKEN; plain http only to this host; under systemd the store defaults to STATE_DIRECTORY", async () => {
  const config = (store: string, env: Record<string, string> = {}) =>
    parseConfig(`[agent]\n${store ? `store = ${store}\n` : ""}`, {
      file: "/etc/agent/app.config",
      env: (name) => env[name],
    });
  assertEquals(
    config("https://kv.example.com/connect").agent.store,
    "https://kv.example.com/connect",
  );
  assertEquals(config("relative.kv").agent.store, "/etc/agent/relative.kv");
  assertEquals(config("").agent.store, "/etc/agent/agent.kv");
  assertEquals(
    config("", { STATE_DIRECTORY: "/var/lib/agent" }).agent.store,
    "/var/lib/agent/agent.kv",
  );
  let refused = "";
  try {
    config("http://kv.example.com/connect");
  } catch (error) {
    refused = (error as Error).message;
  }
  assert(refused.includes("plain http: a remote store must be https"), refused);

  // No KV Connect server can run here (denokv is neither on npm nor in Debian): the fake
  // endpoint shows the URL and the token are what Deno KV is opened with.
  const seen: { path: string; auth: string | null; body: string }[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    seen.push({
      path: new URL(req.url).pathname,
      auth: req.headers.get("authorization"),
      body: await req.text(),
    });
    return new Response("database not found", { status: 404 });
  });
  const before = Deno.env.get("DENO_KV_ACCESS_TOKEN");
  Deno.env.set("DENO_KV_ACCESS_TOKEN", "kv-token-for-the-test");
  try {
    const url = `http://127.0.0.1:${server.addr.port}/connect`;
    let error = "";
    try {
      (await Store.open(config(url).agent.store)).close();
    } catch (e) {
      error = (e as Error).message;
    }
    assert(error.startsWith(`Cannot open the store "${url}"`), error);
    assertEquals(seen.length, 1);
    assertEquals(seen[0]!.path, "/connect");
    assertEquals(seen[0]!.auth, "Bearer kv-token-for-the-test");
    assert(JSON.parse(seen[0]!.body).supportedVersions.length > 0, seen[0]!.body);
  } finally {
    if (before === undefined) Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    else Deno.env.set("DENO_KV_ACCESS_TOKEN", before);
    await server.shutdown();
  }
});
