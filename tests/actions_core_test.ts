/**
 * The action core's logic in microseconds: dedupe, debounce, defer, the outbox and restarts,
 * over an in-memory transport, a store in memory and a clock the test moves. The same
 * behaviours are proven against ActiveMQ in actions_listener_test.ts and calendar_test.ts.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./support/assert.ts";
import { MemoryTransport } from "./support/memory_transport.ts";
import { FakeClock, settle } from "./support/fake_clock.ts";
import { waitUntil } from "./support/wait.ts";
import { taskAction } from "./support/stomp_client.ts";
import { createActionCore } from "../mod/action_module/core.ts";
import {
  CompletionQueue,
  doneKey,
  EARLY_RECORD_WAIT_MS,
  OUTBOX_PREFIX,
} from "../mod/action_module/completion.ts";
import { infoReply } from "../mod/action_module/run_processor.ts";
import type { Delivery } from "../mod/stomp/types.ts";
import { SCHEDULED_PREFIX } from "../mod/action_module/schedule.ts";
import { RunEffects } from "../mod/action_module/effects.ts";
import type { ActionData, Processor } from "../mod/action_module/types.ts";
import { Store } from "../mod/store/store.ts";

const ORG = 201;
const QUEUE = "tasks";
const DESTINATION = `actions.${ORG}.${QUEUE}`;

/** A processor that records what it handled; debounced per task, or deferred. */
function recorder(options: { debounceMs?: number; deferMs?: number } = {}) {
  const handled: ActionData[] = [];
  const processor: Processor = {
    name: "recorder",
    queue: QUEUE,
    handle: (action) => {
      handled.push(action);
      return Promise.resolve(`task ${action.task?.id} due ${action.task?.due_date}`);
    },
    orderKey: (action) => `task:${action.task?.id}`,
  };
  if (options.debounceMs) {
    processor.debounce = {
      ms: options.debounceMs,
      key: (action) => String(action.task?.id),
      discard: true,
    };
  }
  if (options.deferMs) processor.deferMs = options.deferMs;
  return { processor, handled };
}

async function core(
  processor: Processor,
  options: { store?: Store; transport?: MemoryTransport; clock?: FakeClock } = {},
) {
  const transport = options.transport ?? new MemoryTransport();
  const clock = options.clock ?? new FakeClock();
  const store = options.store ?? await Store.open(":memory:");
  const action = createActionCore({
    transport,
    rest: undefined,
    orgId: ORG,
    store,
    processors: [processor],
    workers: 10,
    clock,
  });
  return { transport, clock, store, ...action };
}

Deno.test("debounce: 200 changes on 200 tasks are acknowledged at once and each task is answered once when its window ends; a second change in the window supersedes the first", async () => {
  const { processor, handled } = recorder({ debounceMs: 5_000 });
  const { transport, clock, store, stop } = await core(processor);
  try {
    const ids = Array.from(
      { length: 200 },
      (_, i) => transport.deliver(DESTINATION, taskAction({ id: 1_000 + i, due_date: 1 })),
    );
    await waitUntil("all stored and acknowledged", () => transport.acks.length === 200, 5_000, 1);
    await settle();
    // Within the window: a second change to the first ten tasks.
    await clock.advance(1_000);
    const later = Array.from(
      { length: 10 },
      (_, i) => transport.deliver(DESTINATION, taskAction({ id: 1_000 + i, due_date: 2 })),
    );
    await waitUntil("all acknowledged", () => transport.acks.length === 210, 5_000, 1);
    await settle();
    // All acknowledged while they wait: none holds a prefetch slot.
    assertEquals(handled.length, 0);
    assertEquals(await store.count(SCHEDULED_PREFIX), 200);
    // The superseded ones are answered at once.
    for (const id of ids.slice(0, 10)) {
      assertEquals(transport.repliesTo(id).length, 1);
      assert(/Superseded/.test(transport.repliesTo(id)[0]!.message));
    }

    await clock.advance(4_000); // the untouched tasks' windows end
    await waitUntil("190 handled", () => handled.length >= 190, 5_000, 1);
    await settle();
    assertEquals(handled.length, 190);
    await clock.advance(1_000); // the changed tasks' windows (moved by the second change)
    await waitUntil("200 handled", () => handled.length >= 200, 5_000, 1);
    await waitUntil("all answered", () => transport.sent.length >= 210, 5_000, 1);
    assertEquals(
      new Set(handled.map((a) => a.task!.id)).size,
      200,
      "each task handled once",
    );
    for (const a of handled.filter((a) => a.task!.id < 1_010)) assertEquals(a.task!.due_date, 2);
    for (const id of [...ids.slice(10), ...later]) {
      const replies = transport.repliesTo(id);
      assertEquals(replies.length, 1, `one reply to ${id}`);
      assertEquals(replies[0]!.message_type, 0);
    }
    await waitUntil(
      "records removed",
      async () => await store.count(SCHEDULED_PREFIX) === 0,
      5_000,
      1,
    );
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("defer: a message is acknowledged at once and handled after its delay, in order per object", async () => {
  const { processor, handled } = recorder({ deferMs: 30_000 });
  const { transport, clock, store, stop } = await core(processor);
  try {
    const first = transport.deliver(DESTINATION, taskAction({ id: 7, due_date: 1 }));
    await clock.advance(10);
    const second = transport.deliver(DESTINATION, taskAction({ id: 7, due_date: 2 }));
    await settle();
    assertEquals(transport.acks, [first, second]);
    await clock.advance(29_980);
    assertEquals(handled.length, 0, "not before its time");
    await clock.advance(20);
    assertEquals(handled.map((a) => a.task!.due_date), [1, 2]);
    assertEquals(transport.repliesTo(first).length, 1);
    assertEquals(transport.repliesTo(second).length, 1);
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("dedupe: a message redelivered after its ACK was lost with the link is acknowledged with its recorded reply, not run again; no outbox entry is kept for it", async () => {
  const { processor, handled } = recorder();
  const { transport, clock, store, stop } = await core(processor);
  try {
    const id = transport.deliver(DESTINATION, taskAction({ id: 9 }));
    await settle();
    assertEquals(handled.length, 1);
    await clock.advance(EARLY_RECORD_WAIT_MS);
    assert(await store.get(doneKey(id)), "recorded");
    assertEquals(await store.count(OUTBOX_PREFIX), 0, "its record is its ledger entry");
    transport.drop(); // the ACK (and maybe the reply before it) did not reach the broker
    transport.reconnect();
    await settle();
    assertEquals(transport.repliesTo(id).length, 1, "nothing sent again before the redelivery");
    transport.deliver(DESTINATION, taskAction({ id: 9 }), {
      "message-id": id,
      redelivered: "true",
    });
    await settle();
    assertEquals(handled.length, 1);
    assertEquals(transport.acks, [id, id]);
    assertEquals(transport.repliesTo(id).map((r) => r.message), [
      "task 9 due null",
      "task 9 due null",
    ]);
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("outbox: the reply of a message acknowledged when it was scheduled, whose receipt never came, is sent again after a reconnect; once confirmed its entry leaves the store", async () => {
  const { processor, handled } = recorder({ deferMs: 1_000 });
  const { transport, clock, store, stop } = await core(processor);
  try {
    transport.holdReceipts = true;
    const id = transport.deliver(DESTINATION, taskAction({ id: 11 }));
    await settle();
    assertEquals(transport.acks, [id], "acknowledged when scheduled");
    await clock.advance(1_000);
    assertEquals(handled.length, 1);
    assertEquals(transport.repliesTo(id).length, 1);
    assertEquals(await store.count(OUTBOX_PREFIX), 1, "kept until the broker confirms");
    transport.drop();
    transport.holdReceipts = false;
    transport.reconnect();
    await settle();
    assertEquals(transport.repliesTo(id).length, 2, "sent again from the outbox");
    await clock.advance(250); // confirmed entries are cleared with the next group commit
    assertEquals(await store.count(OUTBOX_PREFIX), 0);
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("restart: debounced messages kept in the store are handled by the next run when due, and answered once", async () => {
  const store = await Store.open(":memory:");
  try {
    const firstRun = recorder({ debounceMs: 5_000 });
    const clock = new FakeClock();
    const one = await core(firstRun.processor, { store, clock });
    const id = one.transport.deliver(DESTINATION, taskAction({ id: 21 }));
    await settle();
    assertEquals(one.transport.acks, [id]);
    await one.stop(100); // stopped before the window ended
    assertEquals(firstRun.handled.length, 0);
    assertEquals(await store.count(SCHEDULED_PREFIX), 1);

    const secondRun = recorder({ debounceMs: 5_000 });
    const two = await core(secondRun.processor, { store, clock });
    await settle();
    assertEquals(secondRun.handled.length, 0, "the window is kept across the restart");
    await clock.advance(5_000);
    assertEquals(secondRun.handled.length, 1);
    assertEquals(two.transport.repliesTo(id).length, 1);
    assertEquals(await store.count(SCHEDULED_PREFIX), 0);
    await two.stop(100);
  } finally {
    store.close();
  }
});

Deno.test("a clean stop waits for the broker's receipts of the last replies and ACKs, so the next run has nothing to answer again", async () => {
  const { processor } = recorder();
  const { transport, store, stop, listener } = await core(processor);
  try {
    transport.holdReceipts = true;
    for (let i = 0; i < 50; i++) transport.deliver(DESTINATION, taskAction({ id: 100 + i }));
    await settle();
    let stopped = false;
    const stopping = stop(1_000).then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(stopped, false, "waiting for the receipts");
    assertEquals(listener.stats().replied, 0);
    transport.confirm();
    await stopping;
    assertEquals(transport.acks.length, 50);
    assertEquals(listener.stats().replied, 50);
    assertEquals(await store.count(OUTBOX_PREFIX), 0);
  } finally {
    store.close();
  }
});

Deno.test("setWithReply: the handler's state is stored with its reply, and not at all when it fails", async () => {
  const processor: Processor = {
    name: "stateful",
    queue: QUEUE,
    handle: (action, ctx) => {
      ctx.setWithReply(["test", "state", action.task!.id], { due: action.task!.due_date });
      if (action.task!.due_date === 0) return Promise.reject(new Error("no due date"));
      return Promise.resolve("stored");
    },
  };
  const { transport, store, stop } = await core(processor);
  try {
    const good = transport.deliver(DESTINATION, taskAction({ id: 1, due_date: 5 }));
    const bad = transport.deliver(DESTINATION, taskAction({ id: 2, due_date: 0 }));
    await waitUntil("both answered", () => transport.sent.length === 2, 5_000, 1);
    assertEquals(transport.repliesTo(good)[0]!.message, "stored");
    assertEquals(transport.repliesTo(bad)[0]!.message_type, 1);
    assertEquals(await store.get(["test", "state", 1]), { due: 5 });
    assertEquals(await store.get(["test", "state", 2]), undefined);
  } finally {
    await stop(100);
    store.close();
  }
});

/** A store whose commits wait until the test opens the gate (or fail, when told to). */
async function gatedStore() {
  const store = await Store.open(":memory:");
  const commit = store.commit.bind(store);
  let gate = Promise.withResolvers<void>();
  let failNext = false;
  store.commit = async (ops) => {
    await gate.promise;
    if (failNext) {
      failNext = false;
      throw new Error("disk full");
    }
    return commit(ops);
  };
  return {
    store,
    open: () => gate.resolve(),
    close: () => (gate = Promise.withResolvers<void>()),
    failNext: () => (failNext = true),
  };
}

/** Answers "task <id>"; a task with due_date 1 also stores state with its reply (not early). */
function mixedProcessor(): Processor {
  return {
    name: "mixed",
    queue: QUEUE,
    handle: (action, ctx) => {
      if (action.task!.due_date === 1) ctx.setWithReply(["test", "state", action.task!.id], 1);
      return Promise.resolve(`task ${action.task!.id}`);
    },
  };
}

Deno.test("a reply whose record only serves the ledger leaves (reply, then ACK) while the record is stored; one with the processor's writes, and a dead letter, only after", async () => {
  const processor = mixedProcessor();
  const gated = await gatedStore();
  const { transport, store, stop } = await core(processor, { store: gated.store });
  try {
    const plain = transport.deliver(DESTINATION, taskAction({ id: 1, due_date: 0 }));
    const stateful = transport.deliver(DESTINATION, taskAction({ id: 2, due_date: 1 }));
    const broken = transport.deliver(DESTINATION, "{not json");
    await waitUntil("the plain one answered", () => transport.acks.includes(plain), 5_000, 1);
    await settle();
    assertEquals(transport.repliesTo(plain)[0]!.message, "task 1");
    assertEquals(transport.acks, [plain], "the others wait for their records");
    assertEquals(transport.repliesTo(stateful).length, 0);
    assertEquals(await store.get(["actions", "done", plain]), undefined, "not stored yet");
    gated.open();
    await waitUntil("all answered", () => transport.acks.length === 3, 5_000, 1);
    assertEquals(transport.repliesTo(stateful)[0]!.message, "task 2");
    assertEquals(transport.repliesTo(broken)[0]!.message_type, 1);
    assertEquals(transport.repliesTo(plain).length, 1, "answered once");
    assert(await store.get(["actions", "done", plain]), "its record followed");
    assertEquals(await store.get(["test", "state", 2]), 1);
  } finally {
    gated.open();
    await stop(100);
    store.close();
  }
});

Deno.test("a reply that left early and was lost with the link before its record was stored: nothing is sent again on the reconnect, and the redelivery is answered from the record", async () => {
  const { processor, handled } = recorder();
  const gated = await gatedStore();
  const { transport, clock, store, stop } = await core(processor, { store: gated.store });
  try {
    transport.holdReceipts = true;
    const id = transport.deliver(DESTINATION, taskAction({ id: 1 }));
    await waitUntil("answered early", () => transport.acks.includes(id), 5_000, 1);
    await clock.advance(EARLY_RECORD_WAIT_MS); // its record's commit starts (and waits)
    transport.drop(); // its receipt never comes
    transport.holdReceipts = false;
    transport.reconnect();
    gated.open();
    await waitUntil("recorded", async () => (await store.get(doneKey(id))) !== undefined);
    await settle();
    assertEquals(transport.repliesTo(id).length, 1);
    transport.deliver(DESTINATION, taskAction({ id: 1 }), {
      "message-id": id,
      redelivered: "true",
    });
    await waitUntil("sent again", () => transport.repliesTo(id).length === 2, 5_000, 1);
    assertEquals(handled.length, 1, "handled once");
    assertEquals(transport.acks, [id, id]);
  } finally {
    gated.open();
    await stop(100);
    store.close();
  }
});

Deno.test("records of messages answered early wait for company: twenty answered at once are stored in one commit after the wait, a message that must be stored first takes them along, and a clean stop stores those still waiting", async () => {
  const processor = mixedProcessor();
  const store = await Store.open(":memory:");
  const commits: number[] = [];
  const commit = store.commit.bind(store);
  store.commit = (ops) => {
    commits.push(ops.set?.length ?? 0);
    return commit(ops);
  };
  const { transport, clock, stop } = await core(processor, { store });
  try {
    const plain = Array.from(
      { length: 20 },
      (_, i) => transport.deliver(DESTINATION, taskAction({ id: i, due_date: 0 })),
    );
    await settle();
    assertEquals(transport.acks, plain, "answered at once");
    assertEquals(commits, [], "their records wait");
    await clock.advance(EARLY_RECORD_WAIT_MS);
    assertEquals(commits, [20], "stored together");

    const more = transport.deliver(DESTINATION, taskAction({ id: 100, due_date: 0 }));
    const stateful = transport.deliver(DESTINATION, taskAction({ id: 101, due_date: 1 }));
    await settle();
    assertEquals(commits, [20, 3], "the stateful one's commit took the waiting record along");
    assertEquals(transport.acks.slice(20), [more, stateful]);

    const last = transport.deliver(DESTINATION, taskAction({ id: 102, due_date: 0 }));
    await settle();
    assertEquals(commits.length, 2, "waiting");
    await stop(1_000);
    assertEquals(commits, [20, 3, 1], "stored by the clean stop");
    assert(await store.get(doneKey(last)));
  } finally {
    store.close();
  }
});

Deno.test("a message finished while the link is down is not answered early: its redelivery joins it, it is handled once, and answered once its record is stored", async () => {
  let runs = 0;
  const release = Promise.withResolvers<void>();
  const processor: Processor = {
    name: "slow",
    queue: QUEUE,
    handle: async () => {
      runs++;
      await release.promise;
      return "done";
    },
  };
  const gated = await gatedStore();
  const { transport, store, stop } = await core(processor, { store: gated.store });
  try {
    const id = transport.deliver(DESTINATION, taskAction({ id: 1 }));
    await waitUntil("handling", () => runs === 1, 5_000, 1);
    transport.drop();
    release.resolve();
    await settle();
    transport.reconnect();
    transport.deliver(DESTINATION, taskAction({ id: 1 }), {
      "message-id": id,
      redelivered: "true",
    });
    await settle();
    assertEquals(transport.acks, [], "nothing answered before the record");
    gated.open();
    await waitUntil("answered", () => transport.acks.includes(id), 5_000, 1);
    await settle();
    assertEquals(runs, 1, "handled once");
    assertEquals(transport.repliesTo(id).map((r) => r.message), ["done"]);
  } finally {
    gated.open();
    await stop(100);
    store.close();
  }
});

Deno.test("a message that came on a connection since lost, finished after the reconnect: its ACK cannot go, so neither does its reply; its redelivery is answered from the record", async () => {
  const release = Promise.withResolvers<void>();
  let runs = 0;
  const processor: Processor = {
    name: "stateful",
    queue: QUEUE,
    handle: async (action, ctx) => {
      runs++;
      await release.promise;
      ctx.setWithReply(["test", "state", action.task!.id], 1); // not answered early
      return "done";
    },
  };
  const { transport, store, stop } = await core(processor);
  try {
    const id = transport.deliver(DESTINATION, taskAction({ id: 1 }));
    await waitUntil("handling", () => runs === 1, 5_000, 1);
    transport.drop();
    transport.reconnect();
    await settle();
    release.resolve();
    await waitUntil("recorded", async () => (await store.get(doneKey(id))) !== undefined);
    await settle();
    assertEquals(transport.acks, [], "its ACK cannot go: the broker redelivers it");
    assertEquals(transport.repliesTo(id), [], "its reply goes with that ACK");
    transport.deliver(DESTINATION, taskAction({ id: 1 }), {
      "message-id": id,
      redelivered: "true",
    });
    await waitUntil("replied", () => transport.repliesTo(id).length === 1, 5_000, 1);
    assertEquals(transport.acks, [id]);
    assertEquals(runs, 1);
    assertEquals(transport.repliesTo(id)[0]!.message, "done");
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("when the record of a reply that left early cannot be stored, the message is not answered again and the next ones go on", async () => {
  const { processor } = recorder();
  const gated = await gatedStore();
  gated.open();
  const { transport, clock, store, stop } = await core(processor, { store: gated.store });
  try {
    gated.failNext();
    const first = transport.deliver(DESTINATION, taskAction({ id: 1, due_date: 1 }));
    await waitUntil("answered", () => transport.acks.includes(first), 5_000, 1);
    await clock.advance(EARLY_RECORD_WAIT_MS); // its record's commit fails
    const second = transport.deliver(DESTINATION, taskAction({ id: 2, due_date: 1 }));
    await waitUntil("the next answered", () => transport.acks.includes(second), 5_000, 1);
    await clock.advance(EARLY_RECORD_WAIT_MS);
    await settle();
    assertEquals(transport.acks, [first, second]);
    assertEquals(transport.repliesTo(first).length, 1);
    assertEquals(await store.get(["actions", "done", first]), undefined, "its record is lost");
    assert(await store.get(["actions", "done", second]));
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("ctx.effect: the handler goes on while an effect's record is stored, the reply and ACK wait for it, and a redelivery finds it instead of running the effect again", async () => {
  const ran: string[] = [];
  const processor: Processor = {
    name: "effects",
    queue: QUEUE,
    handle: async (action, ctx) => {
      const mail = await ctx.effect("mail", () => {
        ran.push(`mail ${action.task!.id}`);
        return Promise.resolve({ sent: `mail-${action.task!.id}` });
      });
      const note = await ctx.effect("note", () => {
        ran.push(`note ${action.task!.id}`);
        return Promise.resolve(7);
      });
      return `${mail.sent} note ${note}`;
    },
  };
  const gated = await gatedStore();
  const { transport, store, stop } = await core(processor, { store: gated.store });
  const id = "ID:effects-1";
  const record = (name: string) => store.get(["actions", "effect", id, name]);
  try {
    transport.deliver(DESTINATION, taskAction({ id: 1 }), { "message-id": id });
    await waitUntil("both effects ran", () => ran.length === 2, 5_000, 1);
    await settle();
    assertEquals(ran, ["mail 1", "note 1"], "the second ran while the first was being stored");
    assertEquals(await record("mail"), undefined, "not stored yet");
    assertEquals(transport.acks, [], "no ACK before the effects' records");
    assertEquals(transport.sent, [], "no reply before them either");
    gated.open();
    await waitUntil("answered", () => transport.acks.length === 1, 5_000, 1);
    assertEquals(transport.repliesTo(id)[0]!.message, "mail-1 note 7");
    assertEquals(await record("mail"), { result: { sent: "mail-1" } });
    // As if the agent had died after the effects and before its reply was recorded: the
    // message comes back and is handled again, without running what was recorded.
    await store.delete(["actions", "done", id]);
    transport.deliver(DESTINATION, taskAction({ id: 1 }), {
      "message-id": id,
      redelivered: "true",
    });
    await waitUntil("answered again", () => transport.acks.length === 2, 5_000, 1);
    assertEquals(ran.length, 2, "neither effect ran twice");
    assertEquals(transport.repliesTo(id).at(-1)!.message, "mail-1 note 7");
  } finally {
    gated.open();
    await stop(100);
    store.close();
  }
});

Deno.test("an effect whose record the store refuses fails the message with an error reply naming it", async () => {
  let runs = 0;
  const processor: Processor = {
    name: "effects",
    queue: QUEUE,
    handle: async (_action, ctx) => {
      await ctx.effect("mail", () => Promise.resolve(++runs));
      // The handler waits on something else: the record goes to the store on its own meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 20));
      return "done";
    },
  };
  const gated = await gatedStore();
  gated.open();
  const { transport, store, stop } = await core(processor, { store: gated.store });
  try {
    gated.failNext();
    const id = transport.deliver(DESTINATION, taskAction({ id: 1 }));
    await waitUntil("answered", () => transport.acks.includes(id), 5_000, 1);
    const reply = transport.repliesTo(id)[0]!;
    assertEquals(reply.message_type, 1);
    assertStringIncludes(reply.message, "an effect's record could not be stored: disk full");
    assertEquals(runs, 1);
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("a run's last effect record is stored in the commit of the message's own record, one commit instead of two in a row; an earlier one goes on its own once the handler waits on something else", async () => {
  const processor: Processor = {
    name: "effects",
    queue: QUEUE,
    handle: async (_action, ctx) => {
      await ctx.effect("first", () => Promise.resolve(1));
      await new Promise((resolve) => setTimeout(resolve, 20));
      await ctx.effect("last", () => Promise.resolve(2));
      return "done";
    },
  };
  const store = await Store.open(":memory:");
  const commits: string[][] = [];
  const commit = store.commit.bind(store);
  store.commit = (ops) => {
    commits.push((ops.set ?? []).map(([key]) => key.join("/")));
    return commit(ops);
  };
  const { transport, stop } = await core(processor, { store });
  const id = "ID:joined";
  try {
    transport.deliver(DESTINATION, taskAction({ id: 1 }), { "message-id": id });
    await waitUntil("answered", () => transport.acks.length === 1, 5_000, 1);
    assertEquals(transport.repliesTo(id)[0]!.message, "done");
    assertEquals(commits, [
      [`actions/effects_of/${id}`],
      [`actions/effect/${id}/first`],
      [`actions/done/${id}`, `actions/effect/${id}/last`],
    ]);
    // Its ACK lost with the connection: the redelivery is answered from the ledger, and if the
    // ledger record were gone, both effects are found.
    await store.delete(["actions", "done", id]);
    let ran = 0;
    processor.handle = async (_action, ctx) => {
      const first = await ctx.effect("first", () => Promise.resolve(ran++));
      const last = await ctx.effect("last", () => Promise.resolve(ran++));
      return `again ${first} ${last}`;
    };
    transport.deliver(DESTINATION, taskAction({ id: 1 }), {
      "message-id": id,
      redelivered: "true",
    });
    await waitUntil("answered again", () => transport.acks.length === 2, 5_000, 1);
    assertEquals(transport.repliesTo(id).at(-1)!.message, "again 1 2");
    assertEquals(ran, 0, "neither effect ran again");
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("an effect record too large for the store fails the run, and a later effect's record is still found on redelivery", async () => {
  const ran: string[] = [];
  const processor: Processor = {
    name: "effects",
    queue: QUEUE,
    handle: async (_action, ctx) => {
      await ctx.effect("big", () => {
        ran.push("big");
        return Promise.resolve("x".repeat(100_000));
      });
      await ctx.effect("small", () => Promise.resolve(ran.push("small")));
      return "done";
    },
  };
  const { transport, store, stop } = await core(processor);
  const id = "ID:effects-big";
  try {
    transport.deliver(DESTINATION, taskAction({ id: 1 }), { "message-id": id });
    await waitUntil("answered", () => transport.acks.length === 1, 5_000, 1);
    assertEquals(transport.repliesTo(id)[0]!.message_type, 1, "the refused record fails it");
    assertEquals(await store.get(["actions", "effect", id, "big"]), undefined);
    assertEquals(await store.get(["actions", "effect", id, "small"]), { result: 2 });
    // Its ACK lost with the connection: the message comes back.
    await store.delete(["actions", "done", id]);
    transport.deliver(DESTINATION, taskAction({ id: 1 }), {
      "message-id": id,
      redelivered: "true",
    });
    await waitUntil("answered again", () => transport.acks.length === 2, 5_000, 1);
    assertEquals(ran, ["big", "small", "big"], "the recorded one was found, the other ran again");
  } finally {
    await stop(100);
    store.close();
  }
});

Deno.test("effects: a record made after the message's records could not be read (a sandbox may send one) leaves no stray failure behind", async () => {
  const store = await Store.open(":memory:");
  try {
    store.get = () => Promise.reject(new Error("store unreadable"));
    const effects = new RunEffects(store, "ID:unreadable");
    await assertRejects(() => effects.lookup("mail"), Error, "store unreadable");
    effects.record("mail", 1);
    await effects.stored();
    await settle();
    assertEquals(await store.count(["actions", "effect", "ID:unreadable"]), 1);
  } finally {
    store.close();
  }
});

Deno.test("a message whose record is being stored has handed back its worker: other tasks go on, the same task waits for it", async () => {
  const handled: number[] = [];
  const processor: Processor = {
    name: "stateful",
    queue: QUEUE,
    workers: 1,
    orderKey: (action) => `task:${action.task!.id}`,
    handle: (action, ctx) => {
      handled.push(action.task!.id);
      ctx.setWithReply(["test", "state", action.task!.id], action.task!.due_date);
      return Promise.resolve("ok");
    },
  };
  const gated = await gatedStore();
  const { transport, store, stop } = await core(processor, { store: gated.store });
  try {
    transport.deliver(DESTINATION, taskAction({ id: 1, due_date: 1 }));
    transport.deliver(DESTINATION, taskAction({ id: 2, due_date: 1 }));
    transport.deliver(DESTINATION, taskAction({ id: 1, due_date: 2 }));
    await waitUntil("task 2 handled", () => handled.includes(2), 5_000, 1);
    await settle();
    assertEquals(handled, [1, 2], "one worker, yet task 2 ran while task 1's record waits");
    assertEquals(transport.acks, [], "none answered before its record");
    gated.open();
    await waitUntil("all answered", () => transport.acks.length === 3, 5_000, 1);
    assertEquals(handled, [1, 2, 1]);
    assertEquals(await store.get(["test", "state", 1]), 2, "task 1's second change last");
  } finally {
    gated.open();
    await stop(100);
    store.close();
  }
});

Deno.test("the broker's prefetch is twice a queue's workers, six times for a sandboxed processor, unless stomp_prefetch_limit says otherwise", async () => {
  const few: Processor = { ...recorder().processor, queue: "few", workers: 3 };
  const sandboxed: Processor = { ...recorder().processor, queue: "custom", sandboxed: true };
  const transport = new MemoryTransport();
  const store = await Store.open(":memory:");
  const defaults = createActionCore({
    transport,
    rest: undefined,
    orgId: ORG,
    store,
    processors: [recorder().processor, few, sandboxed],
    workers: 10,
  });
  const prefetchOf = (queue: string) =>
    transport.subscriptionHeaders(`actions.${ORG}.${queue}`)?.["activemq.prefetchSize"];
  assertEquals(prefetchOf(QUEUE), "20");
  assertEquals(prefetchOf("few"), "6");
  assertEquals(prefetchOf("custom"), "60");
  await defaults.stop(100);
  const limited = new MemoryTransport();
  const set = createActionCore({
    transport: limited,
    rest: undefined,
    orgId: ORG,
    store,
    processors: [recorder().processor],
    workers: 10,
    prefetch: 7,
  });
  assertEquals(
    limited.subscriptionHeaders(`actions.${ORG}.${QUEUE}`)?.["activemq.prefetchSize"],
    "7",
  );
  await set.stop(100);
  store.close();
});

Deno.test("replies answered early while another batch is stored are not waited for again once their own records are stored (a clean stop would wait for receipts that came already)", async () => {
  const gated = await gatedStore();
  const transport = new MemoryTransport();
  const deliveries = new Map<string, Delivery>();
  const clock = new FakeClock();
  const queue = new CompletionQueue({
    transport,
    store: gated.store,
    transactions: false,
    deliveries,
    stats: { acked: 0, replied: 0 },
    clock,
  });
  const complete = (id: string) => {
    deliveries.set(id, {
      headers: { "message-id": id, ack: id, subscription: DESTINATION },
      body: new Uint8Array(),
      generation: 1,
    });
    const done = { reply: infoReply("ok"), replyTo: "/queue/acks", correlationId: id, at: 0 };
    return queue.enqueue({ id, done, sets: [[doneKey(id), done]], withReply: true });
  };
  try {
    const first = complete("ID:1");
    await settle();
    await clock.advance(EARLY_RECORD_WAIT_MS); // its batch waits for the store
    const second = complete("ID:2"); // answered at the end of its tick, stored in the next batch
    await settle();
    assertEquals(transport.acks, ["ID:1", "ID:2"]);
    assertEquals(queue.unconfirmed, 0, "both receipts came");
    await Promise.all([first, second]); // answered: not waiting for their records
    gated.open();
    await queue.drain();
    assertEquals(queue.unconfirmed, 0);
    assert(await gated.store.get(doneKey("ID:1")));
    assert(await gated.store.get(doneKey("ID:2")));
  } finally {
    gated.open();
    gated.store.close();
  }
});
