import { assert, assertEquals } from "./support/assert.ts";
import { Store } from "../mod/store/store.ts";

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
