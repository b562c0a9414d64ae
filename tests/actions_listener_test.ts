import { assert, assertEquals, assertRejects, assertStringIncludes } from "./support/assert.ts";
import { startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { FakeResilient } from "./support/fake_resilient.ts";
import { PlatformClient, taskAction } from "./support/stomp_client.ts";
import { startCore } from "./support/agent_core.ts";
import type { Processor } from "../mod/action_module/types.ts";
import { StompLink } from "../mod/stomp/link.ts";
import { TlsError } from "../mod/tls/errors.ts";
import { Store } from "../mod/store/store.ts";
import {
  DEAD_LETTER_PREFIX,
  type DeadLetter,
  deadLetterBody,
  SCHEDULED_PREFIX,
} from "../mod/action_module/listener.ts";

const ORG = 201;
const broker = await startBroker();
const fake = await new FakeResilient({ orgId: ORG }).start();
const platform = await PlatformClient.connect(broker);
const integration = { sanitizeOps: false, sanitizeResources: false };

function echoProcessor(queue: string, seen: string[] = []): Processor {
  return {
    name: "echo",
    queue,
    check: (action) => (action.task ? undefined : 'the action has no "task"'),
    handle: async (action, ctx) => {
      const id = await ctx.effect("record", () => {
        seen.push(ctx.message.correlationId ?? "");
        return Promise.resolve(action.task!.id);
      });
      return `Handled task ${id}`;
    },
  };
}

Deno.test({
  name: "an action message gets exactly one reply with its correlation id, and the frame is acked",
  ...integration,
  async fn() {
    const queue = "single";
    platform.listenForReplies(ORG, queue);
    const seen: string[] = [];
    let contextToken: string | undefined;
    const processor = echoProcessor(queue, seen);
    const handle = processor.handle;
    processor.handle = async (action, ctx) => {
      contextToken = ctx.message.contextToken;
      await ctx.rest!.get(`/incidents/${action.incident.id}`).catch(() => {});
      return handle(action, ctx);
    };
    const core = await startCore(broker, fake, [processor]);
    try {
      const correlationId = platform.sendAction(ORG, queue, taskAction({ id: 80 }));
      await platform.waitFor((r) => r.some((x) => x.correlationId === correlationId));
      await new Promise((r) => setTimeout(r, 300)); // a second reply would arrive by now
      const replies = platform.replies.filter((r) => r.correlationId === correlationId);
      assertEquals(replies.length, 1);
      assertEquals(replies[0]!.json, {
        message_type: 0,
        message: "Handled task 80",
        complete: true,
      });
      assertEquals(seen, [correlationId]);
      assertEquals(contextToken, `ctx-${correlationId}`);
      // The REST call carried the message's context token.
      const call = fake.seen(/GET \/rest\/orgs\/201\/incidents\/2095/).at(-1)!;
      assertEquals(call.headers.get("x-co3contexttoken"), `ctx-${correlationId}`);
      assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);
    } finally {
      await core.stop();
    }
  },
});

Deno.test({
  name: "a clean stop after the replies: nothing is left in the outbox, and a restart sends none " +
    "again",
  ...integration,
  async fn() {
    const queue = "outboxclear";
    platform.listenForReplies(ORG, queue);
    const store = await Store.open(":memory:");
    try {
      const first = await startCore(broker, fake, [echoProcessor(queue)], { store });
      const ids = Array.from(
        { length: 60 },
        (_, i) => platform.sendAction(ORG, queue, taskAction({ id: 1000 + i })),
      );
      await platform.waitFor((r) => ids.every((id) => r.some((x) => x.correlationId === id)));
      await first.stop();
      assertEquals(await store.count(["actions", "outbox"]), 0);
      const second = await startCore(broker, fake, [echoProcessor(queue)], { store });
      await new Promise((r) => setTimeout(r, 500));
      await second.stop();
      const replies = platform.replies.filter((r) => ids.includes(r.correlationId));
      assertEquals(replies.length, ids.length, "no reply was sent again after the restart");
    } finally {
      store.close();
    }
  },
});

Deno.test({
  name: "a clean stop in the middle of a burst drains: every reply and ACK it sent is confirmed, " +
    "and the restart answers the rest, none twice",
  ...integration,
  async fn() {
    const queue = "cleanstop";
    platform.listenForReplies(ORG, queue);
    const store = await Store.open(":memory:");
    try {
      const first = await startCore(broker, fake, [echoProcessor(queue)], { store });
      const ids = Array.from(
        { length: 1500 },
        (_, i) => platform.sendAction(ORG, queue, taskAction({ id: 20_000 + i })),
      );
      await platform.waitFor((r) => r.filter((x) => ids.includes(x.correlationId)).length >= 300);
      await first.stop();
      const stats = first.listener.stats();
      assertEquals(await store.count(["actions", "outbox"]), 0, "nothing left to send again");
      assertEquals(stats.replied, stats.acked, "every acknowledged message's reply was confirmed");
      const second = await startCore(broker, fake, [echoProcessor(queue)], { store });
      await platform.waitFor(
        (r) => ids.every((id) => r.some((x) => x.correlationId === id)),
        60_000,
      );
      await new Promise((r) => setTimeout(r, 300));
      await second.stop();
      const counts = new Map<string, number>();
      for (const r of platform.replies) {
        if (ids.includes(r.correlationId)) {
          counts.set(r.correlationId, (counts.get(r.correlationId) ?? 0) + 1);
        }
      }
      const twice = [...counts].filter(([, n]) => n > 1);
      assertEquals(twice, [], "no reply twice");
      assertEquals(counts.size, ids.length);
    } finally {
      store.close();
    }
  },
});

Deno.test({
  name: "a debounced message is acknowledged at once and kept in the store: stopped before it " +
    "was due, the next run handles it and replies once",
  ...integration,
  async fn() {
    const queue = "scheduled";
    platform.listenForReplies(ORG, queue);
    const store = await Store.open(":memory:");
    const seen: string[] = [];
    const debounced = (): Processor => ({
      ...echoProcessor(queue, seen),
      debounce: { ms: 1500, discard: false, key: (a) => String(a.task?.id) },
    });
    try {
      const first = await startCore(broker, fake, [debounced()], { store });
      const id = platform.sendAction(ORG, queue, taskAction({ id: 77_001 }));
      await waitUntilTrue(async () => (await store.count(SCHEDULED_PREFIX)) === 1);
      // Acknowledged: the broker holds nothing for it, no prefetch slot is taken.
      await waitUntilTrue(async () => (await platform.queueSize(`actions.${ORG}.${queue}`)) === 0);
      await first.stop();
      assertEquals(seen, [], "not handled before it was due");
      assertEquals(platform.replies.filter((r) => r.correlationId === id), []);
      const second = await startCore(broker, fake, [debounced()], { store });
      await platform.waitFor((r) => r.some((x) => x.correlationId === id), 10_000);
      await new Promise((r) => setTimeout(r, 300));
      await second.stop();
      assertEquals(seen, [id]);
      assertEquals(platform.replies.filter((r) => r.correlationId === id).length, 1);
      assertEquals(await store.count(SCHEDULED_PREFIX), 0);
      assertEquals(await store.count(["actions", "outbox"]), 0);
    } finally {
      store.close();
    }
  },
});

async function waitUntilTrue(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name: "poison messages (a 100 KB reply, a 60 KB and a 2 MB non-JSON body, a reply of the " +
    "wrong shape, a 70 KB header) each get one reply (where one can be stored) and one ack; " +
    "nothing comes back after a restart",
  ...integration,
  async fn() {
    const queue = "poison";
    platform.listenForReplies(ORG, queue);
    const processor: Processor = {
      name: "poisoner",
      queue,
      handle: (action) => {
        const kind = (action.properties as { kind?: string } | undefined)?.kind;
        if (kind === "long") return Promise.resolve("x".repeat(100 * 1024));
        if (kind === "shape") {
          return Promise.resolve(
            { message_type: 7, message: "hi", complete: false, extra: 1 } as never,
          );
        }
        return Promise.resolve("fine");
      },
    };
    const action = (kind: string) => ({
      action_id: 1,
      object_type: 0,
      incident: { id: 2095 },
      properties: { kind },
    });
    const store = await Store.open(":memory:");
    try {
      const core = await startCore(broker, fake, [processor], { store });
      const ids = {
        long: platform.sendAction(ORG, queue, action("long")),
        body60k: platform.sendAction(ORG, queue, "y".repeat(60 * 1024)),
        body2m: platform.sendAction(ORG, queue, "z".repeat(2 * 1024 * 1024)),
        shape: platform.sendAction(ORG, queue, action("shape")),
        good: platform.sendAction(ORG, queue, action("good")),
      };
      // A header the store cannot hold even in a bare record: acknowledged, nowhere to reply.
      const huge = platform.sendAction(ORG, queue, action("good"), {
        correlationId: "c".repeat(70_000),
      });
      const all = Object.values(ids);
      await platform.waitFor((r) => all.every((id) => r.some((x) => x.correlationId === id)));
      await new Promise((r) => setTimeout(r, 500)); // a second reply would arrive by now
      const replies = (id: string) => platform.replies.filter((r) => r.correlationId === id);
      for (const id of all) assertEquals(replies(id).length, 1, id);
      const reply = (id: string) => replies(id)[0]!.json!;
      assertEquals(reply(ids.long).message_type, 0);
      assert(reply(ids.long).message.length <= 16_000, "the long reply was not cut");
      assertStringIncludes(reply(ids.long).message, "[... cut: the reply was 102400 characters");
      assertStringIncludes(reply(ids.body60k).message, "not JSON");
      assertStringIncludes(reply(ids.body2m).message, "2048 KB, over the limit of 1024 KB");
      assertEquals(reply(ids.shape).message_type, 1);
      assertStringIncludes(reply(ids.shape).message, "poisoner returned an invalid reply");
      assertStringIncludes(reply(ids.shape).message, '"extra"');
      assertEquals(reply(ids.good), { message_type: 0, message: "fine", complete: true });
      assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);
      assertEquals(replies(huge).length, 0);

      // The bad bodies are dead letters with their bodies (the 2 MB one cut, and said so).
      const dead = new Map(
        (await Array.fromAsync(store.list<DeadLetter>(DEAD_LETTER_PREFIX))).map((
          e,
        ) => [e.value.headers["correlation-id"], { id: String(e.key.at(-1)), letter: e.value }]),
      );
      const d60 = dead.get(ids.body60k)!;
      const body60 = await deadLetterBody(store, d60.id, d60.letter);
      assertEquals(new TextDecoder().decode(body60), "y".repeat(60 * 1024));
      const d2m = dead.get(ids.body2m)!;
      assertEquals(d2m.letter.truncated, true);
      assertEquals(d2m.letter.bodySize, 2 * 1024 * 1024);
      assert((await deadLetterBody(store, d2m.id, d2m.letter)).byteLength < 512 * 1024);
      await core.stop();

      // Acked for good: a new consumer on the same store gets nothing and sends nothing.
      const again = await startCore(broker, fake, [processor], { store });
      await new Promise((r) => setTimeout(r, 800));
      await again.stop();
      for (const id of all) assertEquals(replies(id).length, 1, `after restart: ${id}`);
      assertEquals(replies(huge).length, 0);
    } finally {
      store.close();
    }
  },
});

Deno.test({
  name: "malformed bodies each get an error reply and an ack, and the next message is served",
  ...integration,
  async fn() {
    const queue = "malformed";
    platform.listenForReplies(ORG, queue);
    const core = await startCore(broker, fake, [echoProcessor(queue)]);
    try {
      const bad = {
        notJson: platform.sendAction(ORG, queue, "{not json"),
        notUtf8: platform.sendAction(
          ORG,
          queue,
          new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
        ),
        array: platform.sendAction(ORG, queue, [1, 2, 3]),
        noTask: platform.sendAction(ORG, queue, { ...taskAction(), task: null }),
      };
      const good = platform.sendAction(ORG, queue, taskAction({ id: 81 }));
      const ids = [...Object.values(bad), good];
      await platform.waitFor((r) => ids.every((id) => r.some((x) => x.correlationId === id)));
      const reply = (id: string) => platform.replies.find((r) => r.correlationId === id)!.json!;
      assertStringIncludes(reply(bad.notJson).message, "not JSON");
      assertStringIncludes(reply(bad.notUtf8).message, "not valid UTF-8");
      assertStringIncludes(reply(bad.array).message, "JSON array");
      assertStringIncludes(reply(bad.noTask).message, 'no "task"');
      for (const id of Object.values(bad)) assertEquals(reply(id).message_type, 1);
      assertEquals(reply(good), { message_type: 0, message: "Handled task 81", complete: true });
      assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);
      // Every bad message is kept as a dead letter, raw body included.
      const dead = await Array.fromAsync(
        core.store.list<{ problem: string; bodyBase64: string }>(["actions", "dead"]),
      );
      assertEquals(dead.length, 4);
      assert(dead.some((d) => atob(d.value.bodyBase64) === "{not json"));
    } finally {
      await core.stop();
    }
  },
});

Deno.test({
  name: "an untrusted CA and a wrong host name both refuse to connect, naming the reason",
  ...integration,
  async fn() {
    const pki = await testPki();
    const rogueTrust = await Deno.readTextFile(`${pki.dir}/rogue-ca.pem`);
    const untrusted = new StompLink({
      target: { hostname: "127.0.0.1", port: broker.sslPort, tls: { caCerts: [rogueTrust] } },
      login: broker.user,
      passcode: broker.password,
    });
    const e1 = await assertRejects(() => untrusted.start(), TlsError);
    assertStringIncludes(e1.message, "127.0.0.1");
    assertStringIncludes(e1.message, "not signed by a trusted CA");
    const wrongHostBroker = await startBroker({ keystore: "wrongHost" });
    try {
      const wrongHost = new StompLink({
        target: {
          hostname: "127.0.0.1",
          port: wrongHostBroker.sslPort,
          tls: { caCerts: [pki.caCert] },
        },
        login: wrongHostBroker.user,
        passcode: wrongHostBroker.password,
      });
      const e2 = await assertRejects(() => wrongHost.start(), TlsError);
      assertStringIncludes(e2.message, "does not name this host");
    } finally {
      await wrongHostBroker.dispose();
    }
  },
});

for (const transactions of [false, true]) {
  Deno.test({
    name: `broker stopped and restarted mid-stream: every message is handled once and replied to${
      transactions
        ? " (transactions: exactly one reply each)"
        : " (the ledger answers redeliveries: no reply lost)"
    }`,
    ...integration,
    async fn() {
      const queue = `restart-${transactions}`;
      const restartBroker = await startBroker();
      const platformR = await PlatformClient.connect(restartBroker);
      platformR.listenForReplies(ORG, queue);
      const seen: string[] = [];
      const processor = echoProcessor(queue, seen);
      const handle = processor.handle;
      let handlerRuns = 0;
      processor.handle = async (action, ctx) => {
        handlerRuns++;
        await new Promise((r) => setTimeout(r, 5));
        return handle(action, ctx);
      };
      const core = await startCore(restartBroker, fake, [processor], { transactions });
      const total = 150;
      try {
        const ids: string[] = [];
        for (let i = 0; i < total; i++) {
          ids.push(platformR.sendAction(ORG, queue, taskAction({ id: 1000 + i })));
        }
        await platformR.waitFor((r) => r.length >= 30);
        await restartBroker.stop();
        await new Promise((r) => setTimeout(r, 500));
        await restartBroker.restart();
        await platformR.waitFor(
          (r) => ids.every((id) => r.some((x) => x.correlationId === id)),
          60_000,
        );
        // Each side effect happened exactly once.
        assertEquals(seen.length, total, `side effects: ${seen.length}`);
        // ...and no handled message ran its handler again after coming back (the ledger).
        assertEquals(handlerRuns, total, `handler runs: ${handlerRuns}`);
        assertEquals(new Set(seen).size, total);
        // With transactions each reply arrives exactly once; otherwise a reply whose ACK was
        // lost in the restart is sent again with the redelivery's, so it may arrive twice,
        // never zero times.
        await new Promise((r) => setTimeout(r, 300));
        for (const id of ids) {
          const count = platformR.replies.filter((r) => r.correlationId === id).length;
          if (transactions) assertEquals(count, 1, id);
          else assert(count === 1 || count === 2, `${count} replies for ${id}`);
        }
        assert(core.listener.stats().reconnects >= 1);
        assertEquals(await platformR.queueSize(`actions.${ORG}.${queue}`), 0);
      } finally {
        await core.stop();
        await platformR.close();
        await restartBroker.dispose();
      }
    },
  });
}

// After the last test of this file (a hook, not a test: it asserts nothing): stop the shared broker and fakes.
Deno.test.afterAll(async () => {
  await platform.close();
  await fake.stop();
  await broker.dispose();
});
