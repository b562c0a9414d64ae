import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { startBroker } from "./support/activemq.ts";
import { FakeResilient } from "./support/fake_resilient.ts";
import { PlatformClient, taskAction } from "./support/stomp_client.ts";
import { startCore } from "./support/agent_core.ts";
import type { Processor } from "../mod/action_module/types.ts";
import { KeyedQueue } from "../mod/async/keyed_queue.ts";

const ORG = 201;
const integration = { sanitizeOps: false, sanitizeResources: false };
const broker = await startBroker();
const fake = await new FakeResilient({ orgId: ORG }).start();
fake.rules.set(11, "Owner is changed");
fake.rules.set(12, "DueDate change");
const platform = await PlatformClient.connect(broker);
let seq = 0;

async function serve(
  processor: Omit<Processor, "queue">,
  fn: (queue: string) => Promise<void>,
): Promise<void> {
  const queue = `dispatch${++seq}`;
  platform.listenForReplies(ORG, queue);
  const core = await startCore(broker, fake, [{ ...processor, queue } as Processor]);
  try {
    await fn(queue);
  } finally {
    await core.stop();
  }
}

const reply = async (id: string) => {
  await platform.waitFor((r) => r.some((x) => x.correlationId === id));
  return platform.replies.find((r) => r.correlationId === id)!.json!;
};

Deno.test({
  name:
    "debounce: a burst for one object is handled once; discard=false gives every message the final reply",
  ...integration,
  async fn(t) {
    for (const discard of [true, false]) {
      await t.step(`discard=${discard}`, async () => {
        const handled: number[] = [];
        await serve({
          name: "debounced",
          debounce: { ms: 200, discard, key: (a) => String(a.task?.id) },
          handle: (action) => {
            handled.push(action.task!.due_date!);
            return Promise.resolve(`handled due ${action.task!.due_date}`);
          },
        }, async (queue) => {
          const ids = [1, 2, 3].map((n) =>
            platform.sendAction(ORG, queue, taskAction({ id: 7, due_date: n }))
          );
          const other = platform.sendAction(ORG, queue, taskAction({ id: 8, due_date: 9 }));
          const replies = await Promise.all([...ids, other].map(reply));
          assertEquals(handled.sort(), [3, 9]);
          assertEquals(replies[2]!.message, "handled due 3");
          for (const earlier of replies.slice(0, 2)) {
            if (discard) assertStringIncludes(earlier.message, "Superseded");
            else assertEquals(earlier.message, "handled due 3");
          }
          assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);
        });
      });
    }
  },
});

Deno.test({
  name: "defer: the action is handled after the delay; meanwhile it is acknowledged and kept " +
    "in the store, holding no prefetch slot",
  ...integration,
  async fn() {
    let handledAt = 0;
    await serve({
      name: "deferred",
      deferMs: 400,
      handle: () => {
        handledAt = Date.now();
        return Promise.resolve("late but done");
      },
    }, async (queue) => {
      const sent = Date.now();
      const id = platform.sendAction(ORG, queue, taskAction());
      await new Promise((r) => setTimeout(r, 150));
      // Acknowledged (the store keeps it until it is due), not waiting at the broker.
      assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);
      assertEquals(handledAt, 0, "not handled before its time");
      assertEquals((await reply(id)).message, "late but done");
      assert(handledAt - sent >= 400, `handled after ${handledAt - sent} ms`);
    });
  },
});

Deno.test({
  name: "a handler that hangs times out with an error reply while other actions keep being served",
  ...integration,
  async fn() {
    await serve({
      name: "sometimes-hangs",
      timeoutMs: 300,
      handle: (action) =>
        action.task!.id === 1 ? new Promise(() => {}) : Promise.resolve(`ok ${action.task!.id}`),
    }, async (queue) => {
      const hang = platform.sendAction(ORG, queue, taskAction({ id: 1 }));
      const fine = [2, 3, 4].map((id) => platform.sendAction(ORG, queue, taskAction({ id })));
      for (const [i, id] of fine.entries()) assertEquals((await reply(id)).message, `ok ${i + 2}`);
      const timedOut = await reply(hang);
      assertEquals(timedOut.message_type, 1);
      assertStringIncludes(timedOut.message, "did not finish within");
    });
  },
});

Deno.test({
  name: "handlers are picked by the normalised rule name, with a catch-all",
  ...integration,
  async fn() {
    await serve({
      name: "rules",
      rules: {
        owner_is_changed: () => Promise.resolve("owner rule"),
        duedate_change: () => Promise.resolve("due date rule"),
      },
      handle: () => Promise.resolve("catch-all"),
    }, async (queue) => {
      const owner = platform.sendAction(ORG, queue, { ...taskAction(), action_id: 11 });
      const due = platform.sendAction(ORG, queue, { ...taskAction(), action_id: 12 });
      const other = platform.sendAction(ORG, queue, { ...taskAction(), action_id: null });
      assertEquals((await reply(owner)).message, "owner rule");
      assertEquals((await reply(due)).message, "due date rule");
      assertEquals((await reply(other)).message, "catch-all");
    });
  },
});

Deno.test({
  name: "messages about one task are handled in arrival order while different tasks run at once",
  ...integration,
  async fn() {
    const log: string[] = [];
    let running = 0;
    let peak = 0;
    await serve({
      name: "ordered",
      handle: async (action) => {
        running++;
        peak = Math.max(peak, running);
        log.push(`${action.task!.id}:${action.task!.due_date}`);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return "ok";
      },
    }, async (queue) => {
      const ids: string[] = [];
      for (let n = 0; n < 5; n++) {
        for (const task of [1, 2, 3, 4]) {
          ids.push(platform.sendAction(ORG, queue, taskAction({ id: task, due_date: n })));
        }
      }
      await Promise.all(ids.map(reply));
      for (const task of [1, 2, 3, 4]) {
        const order = log.filter((l) => l.startsWith(`${task}:`)).map((l) =>
          Number(l.split(":")[1])
        );
        assertEquals(order, [0, 1, 2, 3, 4]);
      }
      assert(peak >= 3, `only ${peak} ran at once`);
    });
  },
});

Deno.test("KeyedQueue never runs more than N tasks at once", async () => {
  const queue = new KeyedQueue(3);
  let running = 0;
  let peak = 0;
  const tasks = Array.from({ length: 20 }, (_, i) =>
    queue.push(`k${i}`, async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    }));
  await Promise.all(tasks);
  await queue.idle();
  assertEquals(peak, 3);
  assertEquals(queue.size, 0);
});

Deno.test("KeyedQueue: a task that hands its worker back keeps its key until it ends", async () => {
  const queue = new KeyedQueue(1);
  const order: string[] = [];
  const bookkeeping = Promise.withResolvers<void>();
  const first = queue.push("a", async (freeWorker) => {
    order.push("a1 work");
    freeWorker();
    freeWorker(); // twice is once
    await bookkeeping.promise;
    order.push("a1 done");
  });
  const sameKey = queue.push("a", () => Promise.resolve(void order.push("a2")));
  let release!: () => void;
  const other = queue.push("b", () => {
    order.push("b");
    return new Promise<void>((r) => (release = r));
  });
  const third = queue.push("c", () => Promise.resolve(void order.push("c")));
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(order, ["a1 work", "b"], "b got the worker; a2 waits for a1, c for the worker");
  release();
  await third;
  bookkeeping.resolve();
  await Promise.all([first, sameKey, other]);
  assertEquals(order, ["a1 work", "b", "c", "a1 done", "a2"]);
});

// After the last test of this file (a hook, not a test: it asserts nothing): stop the dispatch test's broker.
Deno.test.afterAll(async () => {
  await platform.close();
  await fake.stop();
  await broker.dispose();
});
