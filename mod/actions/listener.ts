/**
 * The action listener: receives Action Module messages, hands them to processors, and
 * acknowledges them the way the platform expects, without ever losing or repeating one.
 *
 * Per message: dedupe on `message-id` -> parse -> (debounce/defer) -> processor -> record the
 * reply in the store -> ACK the frame -> SEND the reply. Records are written in groups (one
 * store commit and one broker batch for whatever finished meanwhile).
 *
 * By default (the Action Module contract): the reply is recorded with an outbox entry in the
 * same store commit, ACK and SEND go out, and the outbox entry is removed when the broker
 * confirms the batch (a receipt on its last frame). Replies not confirmed when the link
 * dropped, or when the agent died, are sent again after the next connect: never lost, and in
 * that rare case possibly sent twice (harmless to the platform). A redelivered message that
 * is in the ledger is ACKed and not processed again.
 *
 * With `transactions`, ACK and reply go out in one STOMP transaction instead: the broker
 * applies both or neither, so each message gets exactly one reply; ActiveMQ syncs its
 * journal per commit, which costs throughput.
 */
import { Buffer } from "node:buffer";
import { log } from "../log/log.ts";
import type { ResilientApi } from "../resilient/types.ts";
import type { Store } from "../store/store.ts";
import type { Delivery, OutgoingFrame, StompTransport } from "../stomp/types.ts";
import { faultPoint } from "../ops/faults.ts";
import { KeyedQueue } from "./keyed_queue.ts";
import { Histogram, type HistogramSnapshot } from "../ops/prometheus.ts";
import { objectKey, parseDelivery, type ParseResult } from "./message.ts";
import { errorReply, fitReply, infoReply, runProcessor } from "./run.ts";
import type { ActionMessage, Processor, Reply } from "./types.ts";

type Timer = ReturnType<typeof setTimeout>;
const logger = log("actions");
const DONE_TTL_MS = 7 * 24 * 3600_000;

/** Options for {@linkcode ActionListener}. */
export interface ListenerOptions {
  transport: StompTransport;
  store: Store;
  orgId: number;
  rest: ResilientApi | undefined;
  /** Actions handled at once per queue (unless a processor sets its own `workers`). */
  workers: number;
  /** The broker's prefetch (unacked messages sent to us); defaults to `workers`. */
  prefetch?: number | undefined;
  /** Write every received message to its own file here (`--record DIR`). */
  recordDir?: string | undefined;
  /** How long handled message ids are remembered for dedupe. */
  doneTtlMs?: number;
  /** Log a one-line summary this often (0 = never). */
  healthIntervalMs?: number;
  /** ACK and reply in one STOMP transaction (exactly one reply; slower). */
  transactions?: boolean | undefined;
  /** Bodies larger than this are refused unread (error reply, dead letter); default 1 MiB. */
  maxBodyBytes?: number | undefined;
  signal: AbortSignal;
}

/** Counters, for the health line and `agent doctor`. */
export interface ListenerStats {
  received: number;
  processed: number;
  acked: number;
  replied: number;
  errors: number;
  badInput: number;
  duplicates: number;
  inFlight: number;
  reconnects: number;
}

/** The ledger record of a handled message. */
interface DoneRecord {
  reply: Reply;
  replyTo: string | undefined;
  correlationId: string | undefined;
  at: number;
}

/** A message kept because it could not be processed. */
export interface DeadLetter {
  queue: string;
  /** The frame's headers (each value cut at 1,000 characters). */
  headers: Record<string, string>;
  /** The body's first bytes (base64); the rest is in `parts` records (deadLetterBody). */
  bodyBase64: string;
  /** The body's size as received. */
  bodySize?: number;
  /** How many more records hold the body (`DEAD_BODY_PREFIX`, id, n). */
  parts?: number;
  /** Set when the body was longer than a dead letter keeps (DEAD_BODY_MAX bytes). */
  truncated?: boolean;
  problem: string;
  at: number;
}

interface Pending {
  delivery: Delivery;
  message: ActionMessage;
  /** performance.now() when it arrived. */
  receivedAt: number;
  /** Acknowledged and kept in the store until it is handled (debounce, defer). */
  scheduled?: boolean;
}

/** A debounced or deferred message, kept in the store and acknowledged until it is due. */
interface ScheduledRecord {
  queue: string;
  orderKey: string;
  /** The debounce group it belongs to (absent for `defer`). */
  debounceKey?: string;
  /** When it is handled (epoch ms); a later message of its group moves the group's. */
  due: number;
  headers: Record<string, string>;
  body: Uint8Array;
  /** Order within a group. */
  seq: number;
}

/** Per-queue counters and the message-to-reply latency, for /metrics. */
export interface QueueCounters {
  received: number;
  /** Finished: recorded, acknowledged and replied to. */
  acked: number;
  /** Finished with an error reply. */
  failed: number;
}

/** Upper bounds (seconds) of the reply latency histogram. */
const LATENCY_BOUNDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

type SetOp = [Deno.KvKey, unknown, { ttlMs?: number }?];

/** A handled message waiting to be recorded and acknowledged. */
interface Completion {
  id: string;
  done: DoneRecord;
  sets: SetOp[];
  /** Records that go in the same commit (a scheduled message's). */
  deletes?: Deno.KvKey[];
  /** Send the recorded reply with the ACK (false: ACK only). */
  withReply: boolean;
  /** The message was acknowledged when it was scheduled: only the reply goes out. */
  acked?: boolean;
  /** Committed alone (after its batch could not be stored). */
  split?: boolean;
  /** How often its records were cut down because the store refused them. */
  shrunk?: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** Deno KV takes up to 1000 mutations per atomic commit; a dead letter adds a second. */
const MAX_BATCH = 400;
/** Deno KV takes up to 800 KiB of keys and values per atomic commit: batches stay below. */
const BATCH_BYTES = 640 * 1024;
/** A store value holds at most 64 KiB: a dead letter's body is kept in pieces of this size. */
const DEAD_BODY_PIECE = 48 * 1024;
/** How much of a dead letter's body its record holds itself (base64: 40 KB). */
const DEAD_BODY_HEAD = 30_000;
/** How much of a dead letter's body is kept (the rest is cut, and the record says so). */
const DEAD_BODY_MAX = 8 * DEAD_BODY_PIECE;
const DEFAULT_MAX_BODY = 1024 * 1024;
/** Deno KV's limit of mutations in one atomic commit. */
const KV_MUTATIONS = 1000;
/** How long confirmed replies' outbox entries wait for a group commit to delete them. */
const OUTBOX_CLEAR_MS = 250;

const doneKey = (id: string) => ["actions", "done", id];
/** Debounced and deferred messages, acknowledged, waiting for their time. */
export const SCHEDULED_PREFIX = ["actions", "scheduled"];
const scheduledKey = (id: string) => [...SCHEDULED_PREFIX, id];
/** A message larger than this is held unacknowledged instead (a store value's limit). */
const SCHEDULE_MAX_BYTES = 48 * 1024;
const outboxKey = (id: string) => ["actions", "outbox", id];
export const DEAD_LETTER_PREFIX = ["actions", "dead"];
/** Where the rest of a dead letter's body is (id, piece number). */
export const DEAD_BODY_PREFIX = ["actions", "dead_body"];

/** A dead letter's body as kept (whole unless `letter.truncated`). */
export async function deadLetterBody(
  store: Store,
  id: string,
  letter: DeadLetter,
): Promise<Uint8Array> {
  const pieces = [Buffer.from(letter.bodyBase64, "base64")];
  for (let n = 1; n <= (letter.parts ?? 0); n++) {
    const piece = await store.get<Uint8Array>([...DEAD_BODY_PREFIX, id, n]);
    if (piece) pieces.push(Buffer.from(piece));
  }
  return new Uint8Array(Buffer.concat(pieces));
}

/** See module doc. */
export class ActionListener {
  readonly #o: ListenerOptions;
  readonly #processors = new Map<string, Processor>();
  /** One worker pool per queue: a processor busy with slow work does not hold up the others. */
  readonly #queues = new Map<string, KeyedQueue>();
  /** Messages being handled here, with their latest delivery (a redelivery replaces it). */
  readonly #active = new Map<string, Delivery>();

  readonly #debounced = new Map<string, { entries: Pending[]; timer: Timer | undefined }>();
  /** Ids of messages acknowledged and kept in the store until they are due. */
  readonly #scheduledIds = new Set<string>();
  #scheduleSeq = 0;
  /** The scheduled messages of an earlier run, put back on their timers at start. */
  #restored: Promise<void> = Promise.resolve();
  readonly #timers = new Set<Timer>();
  readonly #completions: Completion[] = [];
  readonly #lookups: {
    id: string;
    resolve(r: DoneRecord | undefined): void;
    reject(e: unknown): void;
  }[] = [];
  #reading = false;
  #lookupGeneration = -1;
  #sinceConnect = 0;
  #committing = false;
  /**
   * Outbox entries of replies the broker confirmed, to delete with the next group commit
   * (one store commit per batch instead of two), or after a short idle wait.
   */
  readonly #sentOutbox = new Set<string>();
  #sentTimer: Timer | undefined;
  /** Replies sent (or about to be) on this connection whose receipt has not come yet. */
  readonly #unconfirmed = new Set<string>();
  readonly #stats: Omit<ListenerStats, "inFlight" | "reconnects"> = {
    received: 0,
    processed: 0,
    acked: 0,
    replied: 0,
    errors: 0,
    badInput: 0,
    duplicates: 0,
  };
  #stopping = false;
  readonly #counters = new Map<string, QueueCounters>();
  readonly #latency = new Histogram(LATENCY_BOUNDS);
  #recordSeq = 0;
  #healthTimer: Timer | undefined;

  constructor(options: ListenerOptions) {
    this.#o = options;
  }

  /** Adds a processor for its queue (before start). */
  register(processor: Processor): void {
    if (this.#processors.has(processor.queue)) {
      throw new Error(`Two processors want queue "${processor.queue}"`);
    }
    this.#processors.set(processor.queue, processor);
    this.#queues.set(processor.queue, new KeyedQueue(processor.workers ?? this.#o.workers));
  }

  /** Subscribes every processor's queue; the transport re-subscribes after reconnects. */
  start(): void {
    const { transport, orgId } = this.#o;
    this.#restored = this.#restoreScheduled();
    transport.onConnected(() => void this.#flushOutbox());
    transport.onDisconnected(() => this.#unconfirmed.clear());
    for (const processor of this.#processors.values()) {
      const destination = `actions.${orgId}.${processor.queue}`;
      transport.subscribe({
        destination,
        headers: {
          id: destination,
          ack: "client-individual",
          "activemq.prefetchSize": String(
            this.#o.prefetch || processor.workers || this.#o.workers,
          ),
        },
        onMessage: (delivery) => this.#onMessage(processor, delivery),
      });
    }
    const interval = this.#o.healthIntervalMs ?? 0;
    if (interval > 0) {
      this.#healthTimer = setInterval(() => {
        logger.info(
          "Health: {received} received, {acked} acked, {errors} errors, {reconnects} reconnects",
          {
            ...this.stats(),
          },
        );
      }, interval);
      Deno.unrefTimer(this.#healthTimer);
    }
  }

  stats(): ListenerStats {
    let inFlight = 0;
    for (const queue of this.#queues.values()) inFlight += queue.size;
    return { ...this.#stats, inFlight, reconnects: this.#o.transport.reconnects };
  }

  /**
   * Stops taking messages, lets in-flight work finish within `deadlineMs` (what does not
   * finish stays unacked and is redelivered), disconnects (the broker handles our last
   * COMMITs before the DISCONNECT).
   */
  async stop(deadlineMs = 10_000): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#healthTimer);
    for (const group of this.#debounced.values()) clearTimeout(group.timer);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#debounced.clear();
    let timer: Timer | undefined;
    await Promise.race([
      Promise.all([...this.#queues.values()].map((queue) => queue.idle())),
      new Promise((r) => (timer = setTimeout(r, deadlineMs))),
    ]);
    clearTimeout(timer);
    const receiptDeadline = Date.now() + 2_000;
    while (
      this.#unconfirmed.size > 0 && this.#o.transport.connected && Date.now() < receiptDeadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#clearSentOutbox();
    await this.#o.transport.stop();
  }

  #onMessage(processor: Processor, delivery: Delivery): void {
    if (this.#stopping) return; // not acked: the broker redelivers it
    this.#stats.received++;
    if (this.#o.recordDir) void this.#record(delivery);
    const maxBody = this.#o.maxBodyBytes ?? DEFAULT_MAX_BODY;
    const parsed = delivery.body.byteLength > maxBody
      ? tooLarge(delivery.headers, delivery.body.byteLength, maxBody)
      : parseDelivery(delivery.headers, delivery.body);
    const id = parsed.ok ? parsed.message.messageId : parsed.messageId;
    if (this.#active.has(id)) {
      // Redelivered (after a reconnect) while still being handled: ack the new delivery
      // when the work finishes.
      this.#active.set(id, delivery);
      return;
    }
    this.#active.set(id, delivery);
    const receivedAt = performance.now();
    this.#countersOf(processor.queue).received++;
    const key = parsed.ok
      ? processor.orderKey?.(parsed.message.data) ?? objectKey(parsed.message.data)
      : id;
    void this.#queueOf(processor).push(key, async () => {
      try {
        await this.#restored;
        if (this.#scheduledIds.has(id)) {
          // Redelivered after its ACK was lost: it is kept in the store already.
          this.#active.delete(id);
          this.#o.transport.ackAndSend([{ delivery }]);
          return;
        }
        const done = this.#mayBeHandled(delivery) ? await this.#lookupDone(id) : undefined;
        if (done) return await this.#acknowledgeDuplicate(id, done);
        if (!parsed.ok) {
          logger.warn("Bad action message {messageId}: {problem}", {
            messageId: id,
            problem: parsed.problem,
          });
          this.#stats.badInput++;
          await this.#finish(
            id,
            errorReply(`Cannot process this action: ${parsed.problem}`),
            {
              queue: processor.queue,
              problem: parsed.problem,
              delivery,
            },
          );
          return this.#finished(processor.queue, true, receivedAt);
        }
        const pending: Pending = { delivery, message: parsed.message, receivedAt };
        const debounceKey = processor.debounce?.key(parsed.message.data);
        if (debounceKey !== undefined || processor.deferMs) {
          return await this.#schedule(processor, key, debounceKey, pending);
        }
        await this.#process(processor, pending, []);
      } catch (error) {
        // Store trouble: leave the message unacked; the broker redelivers it.
        this.#active.delete(id);
        logger.error("Could not handle message {messageId}; leaving it for redelivery: {error}", {
          messageId: id,
          error,
        });
      }
    });
  }

  async #process(processor: Processor, pending: Pending, absorbed: Pending[]): Promise<void> {
    const { message } = pending;
    const outcome = await runProcessor(processor, message, {
      rest: this.#o.rest,
      store: this.#o.store,
      signal: this.#o.signal,
      sendStatus: (m, reply) => this.#sendStatus(m, reply),
    });
    this.#stats.processed++;
    if (outcome.reply.message_type === 1) this.#stats.errors++;
    if (outcome.badInput) this.#stats.badInput++;
    const dead = outcome.badInput
      ? { queue: processor.queue, problem: outcome.reply.message, delivery: pending.delivery }
      : undefined;
    // Together, so that they share one group commit.
    await Promise.all([
      this.#complete(pending, outcome.reply, dead),
      ...absorbed.map((other) => this.#complete(other, outcome.reply)),
    ]);
    const failed = outcome.reply.message_type === 1;
    for (const done of [pending, ...absorbed]) {
      this.#finished(processor.queue, failed, done.receivedAt);
    }
  }

  /** Per-queue counters and the reply latency histogram (seconds). */
  metrics(): { queues: Map<string, QueueCounters>; latency: HistogramSnapshot } {
    return {
      queues: new Map([...this.#counters].map(([q, c]) => [q, { ...c }])),
      latency: this.#latency.snapshot(),
    };
  }

  #countersOf(queue: string): QueueCounters {
    let counters = this.#counters.get(queue);
    if (!counters) this.#counters.set(queue, counters = { received: 0, acked: 0, failed: 0 });
    return counters;
  }

  #finished(queue: string, failed: boolean, receivedAt: number): void {
    const counters = this.#countersOf(queue);
    counters.acked++;
    if (failed) counters.failed++;
    this.#latency.observe((performance.now() - receivedAt) / 1000);
  }

  async #debounce(
    processor: Processor,
    orderKey: string,
    debounceKey: string,
    pending: Pending,
    delayMs?: number,
  ): Promise<void> {
    const { ms, discard } = processor.debounce!;
    const groupKey = `${processor.queue}\u0000${debounceKey}`;
    let group = this.#debounced.get(groupKey);
    if (!group) {
      group = { entries: [], timer: undefined };
      this.#debounced.set(groupKey, group);
    }
    clearTimeout(group.timer);
    if (discard) {
      const superseded = infoReply(
        "Superseded by a later change to the same object; only the latest was handled",
      );
      await Promise.all(
        group.entries.splice(0).map((earlier) => this.#complete(earlier, superseded)),
      );
    }
    group.entries.push(pending);
    const entries = group;
    group.timer = setTimeout(() => {
      this.#debounced.delete(groupKey);
      const last = entries.entries.at(-1)!;
      void this.#queueOf(processor).push(
        orderKey,
        () => this.#process(processor, last, entries.entries.slice(0, -1)),
      );
    }, delayMs ?? ms);
  }

  /**
   * Debounce and defer. Without transactions, the message is written to the store with its
   * due time and acknowledged at once, so it does not hold one of the broker's prefetch slots
   * while it waits (200 debounced tasks would otherwise trickle in at prefetch / window);
   * its reply goes through the outbox when it is handled, and a restart takes it up again.
   * With transactions (one reply per message, ACK and reply in one commit), or when it is too
   * large for a store value, it waits unacknowledged as before.
   */
  async #schedule(
    processor: Processor,
    orderKey: string,
    debounceKey: string | undefined,
    pending: Pending,
  ): Promise<void> {
    const ms = debounceKey !== undefined ? processor.debounce!.ms : processor.deferMs!;
    if (!this.#o.transactions && pending.delivery.body.byteLength <= SCHEDULE_MAX_BYTES) {
      const id = pending.message.messageId;
      const record: ScheduledRecord = {
        queue: processor.queue,
        orderKey,
        ...(debounceKey !== undefined ? { debounceKey } : {}),
        due: Date.now() + ms,
        headers: pending.delivery.headers,
        body: pending.delivery.body,
        seq: ++this.#scheduleSeq,
      };
      await this.#o.store.set(scheduledKey(id), record);
      this.#scheduledIds.add(id);
      this.#active.delete(id);
      if (this.#o.transport.ackAndSend([{ delivery: pending.delivery }])[0]) this.#stats.acked++;
      pending.scheduled = true;
    }
    if (debounceKey !== undefined) {
      return await this.#debounce(processor, orderKey, debounceKey, pending);
    }
    this.#later(ms, orderKey, processor, pending);
  }

  /** Scheduled messages an earlier run acknowledged but did not handle: on their timers again. */
  async #restoreScheduled(): Promise<void> {
    const groups = new Map<
      string,
      { processor: Processor; items: ScheduledRecord[]; ids: string[] }
    >();
    try {
      for await (const { key, value } of this.#o.store.list<ScheduledRecord>(SCHEDULED_PREFIX)) {
        const id = String(key.at(-1));
        const processor = this.#processors.get(value.queue);
        if (!processor) continue; // a queue not served by this run: left for one that does
        this.#scheduledIds.add(id);
        const groupKey = value.debounceKey !== undefined
          ? `${value.queue}\u0000${value.debounceKey}`
          : `\u0001${id}`;
        const group = groups.get(groupKey) ?? { processor, items: [], ids: [] };
        group.items.push(value);
        group.ids.push(id);
        groups.set(groupKey, group);
      }
    } catch (error) {
      logger.error("Could not read the scheduled messages: {error}", { error });
      return;
    }
    let count = 0;
    for (const { processor, items } of groups.values()) {
      items.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const delayMs = Math.max(0, Math.max(...items.map((i) => i.due)) - Date.now());
      for (const item of items) {
        const parsed = parseDelivery(item.headers, new Uint8Array(item.body));
        if (!parsed.ok) continue;
        count++;
        const pending: Pending = {
          delivery: { headers: item.headers, body: new Uint8Array(item.body), generation: -1 },
          message: parsed.message,
          receivedAt: performance.now(),
          scheduled: true,
        };
        if (item.debounceKey !== undefined) {
          await this.#debounce(processor, item.orderKey, item.debounceKey, pending, delayMs);
        } else this.#later(delayMs, item.orderKey, processor, pending);
      }
    }
    if (count) {
      logger.info("Took up {count} debounced or deferred message(s) left by the last run", {
        count,
      });
    }
  }

  #queueOf(processor: Processor): KeyedQueue {
    return this.#queues.get(processor.queue)!;
  }

  /** `defer`: handled after `ms`, in key order, unacknowledged until then. */
  #later(ms: number, key: string, processor: Processor, pending: Pending): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#queueOf(processor).push(key, () => this.#process(processor, pending, []));
    }, ms);
    this.#timers.add(timer);
  }

  /**
   * Whether a delivery may be one this agent (or another sharing the store) already handled.
   * The broker marks messages it dispatched before as `redelivered`; only after a broker
   * restart can a handled message come back unmarked, and then every consumer reconnects
   * and the unacknowledged messages come first. So the ledger is read for redelivered
   * messages and for the first prefetch windows after each connect; any other message is
   * new. Should that ever be wrong, the effect records still keep side effects from
   * repeating.
   */
  #mayBeHandled(delivery: Delivery): boolean {
    if (delivery.headers["redelivered"] === "true") return true;
    if (delivery.generation !== this.#lookupGeneration) {
      this.#lookupGeneration = delivery.generation;
      this.#sinceConnect = 0;
    }
    return this.#sinceConnect++ < 2 * (this.#o.prefetch || this.#o.workers);
  }

  /**
   * The ledger record of a message id. Lookups made while one read is in flight are read
   * together (one store round trip for up to 10), like the group commit below.
   */
  #lookupDone(id: string): Promise<DoneRecord | undefined> {
    const { promise, resolve, reject } = Promise.withResolvers<DoneRecord | undefined>();
    this.#lookups.push({ id, resolve, reject });
    if (!this.#reading) void this.#readLookups();
    return promise;
  }

  async #readLookups(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#lookups.length > 0) {
        const batch = this.#lookups.splice(0, 10);
        try {
          const records = await this.#o.store.getMany<DoneRecord>(batch.map((l) => doneKey(l.id)));
          batch.forEach((l, i) => l.resolve(records[i]));
        } catch (error) {
          for (const l of batch) l.reject(error);
        }
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Records the outcome, then ACKs and replies (see module doc). A `scheduled` message was
   * acknowledged when it was scheduled: its record leaves the store in the same commit, and
   * only its reply goes out (through the outbox).
   */
  #finish(
    id: string,
    outcome: Reply,
    dead?: { queue: string; problem: string; delivery: Delivery },
    scheduled?: Delivery,
  ): Promise<void> {
    const delivery = scheduled ?? this.#active.get(id) ?? dead?.delivery;
    if (!delivery) return Promise.resolve();
    const { headers } = delivery;
    const done: DoneRecord = {
      reply: fitReply(outcome, id),
      replyTo: headers["reply-to"],
      correlationId: headers["correlation-id"],
      at: Date.now(),
    };
    const sets: SetOp[] = [[doneKey(id), done, { ttlMs: this.#o.doneTtlMs ?? DONE_TTL_MS }]];
    const frame = replyFrame(done);
    if (frame && (scheduled || !this.#o.transactions)) sets.push([outboxKey(id), frame]);
    if (dead) sets.push(...deadLetterOps(id, dead.queue, dead.problem, dead.delivery));
    if (!scheduled) return this.#enqueueCompletion({ id, done, sets, withReply: true });
    return this.#enqueueCompletion({
      id,
      done,
      sets,
      deletes: [scheduledKey(id)],
      withReply: frame !== undefined,
      acked: true,
    }).then(() => void this.#scheduledIds.delete(id));
  }

  /** Records a handled message's outcome (see #finish). */
  #complete(
    pending: Pending,
    reply: Reply,
    dead?: { queue: string; problem: string; delivery: Delivery },
  ): Promise<void> {
    const id = pending.message.messageId;
    return this.#finish(id, reply, dead, pending.scheduled ? pending.delivery : undefined);
  }

  /**
   * Already in the ledger: ACK it without processing. With transactions the redelivery means
   * the reply's transaction did not commit, so the recorded reply goes with the ACK;
   * otherwise the reply was either confirmed or is still in the outbox (sent on connect).
   */
  #acknowledgeDuplicate(id: string, done: DoneRecord): Promise<void> {
    this.#stats.duplicates++;
    logger.info("Message {messageId} was already handled; acknowledging it without reprocessing", {
      messageId: id,
    });
    return this.#enqueueCompletion({
      id,
      done,
      sets: [],
      withReply: this.#o.transactions === true,
    });
  }

  /**
   * Group commit: completions that arrive while a batch is being committed go together in
   * the next one, as one store commit and one broker transaction. An idle agent commits
   * each at once; a busy one amortises the store and broker round trips.
   */
  #enqueueCompletion(completion: Omit<Completion, "resolve" | "reject">): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#completions.push({ ...completion, resolve, reject });
    if (!this.#committing) void this.#commitBatches();
    return promise;
  }

  async #commitBatches(): Promise<void> {
    this.#committing = true;
    try {
      while (this.#completions.length > 0) {
        const batch = this.#takeBatch();
        // Claimed before the commit so that an outbox flush does not send them as well.
        if (!this.#o.transactions) {
          for (const c of batch) if (c.withReply) this.#unconfirmed.add(c.id);
        }
        const sets = batch.flatMap((c) => c.sets);
        const own = batch.flatMap((c) => c.deletes ?? []);
        const sent = sets.length
          ? this.#takeSent(KV_MUTATIONS - sets.length - own.length).map(outboxKey)
          : [];
        const deletes = [...own, ...sent];
        try {
          if (sets.length || deletes.length) {
            await this.#o.store.commit({ set: sets, delete: deletes });
          }
        } catch (error) {
          for (const key of sent) this.#sentOutbox.add(String(key.at(-1)));
          if (error instanceof TypeError && !this.#o.transactions) {
            // The store refused what it was given (a value or a commit too large), which
            // would refuse it again after every redelivery: commit each alone, and one that
            // still does not fit as a bare error record.
            for (const c of batch) this.#unconfirmed.delete(c.id);
            const only = batch[0]!;
            if (batch.length > 1 || (only.shrunk ?? 0) < 2) {
              this.#completions.unshift(
                ...(batch.length > 1 ? batch : [shrunk(only, error)]).map((c) => ({
                  ...c,
                  split: true,
                })),
              );
              continue;
            }
          }
          // Not recorded, so not acknowledged: the broker redelivers these.
          for (const c of batch) {
            this.#unconfirmed.delete(c.id);
            this.#active.delete(c.id);
            c.reject(error);
          }
          continue;
        }
        for (const _ of batch) faultPoint("after-commit");
        this.#acknowledge(batch);
        for (const _ of batch) faultPoint("after-send");
        for (const c of batch) c.resolve();
      }
    } finally {
      this.#committing = false;
    }
  }

  /** The next completions that fit one store commit (at least one). */
  #takeBatch(): Completion[] {
    if (this.#completions[0]?.split) return this.#completions.splice(0, 1);
    let bytes = 0;
    let n = 0;
    while (n < this.#completions.length && n < MAX_BATCH) {
      const size = this.#completions[n]!.sets.reduce((sum, op) => sum + approxBytes(op[1]), 0);
      if (n > 0 && bytes + size > BATCH_BYTES) break;
      bytes += size;
      n++;
    }
    return this.#completions.splice(0, n);
  }

  /** ACKs (+ replies) as one batch. Not possible on a lost connection: redelivered. */
  #acknowledge(all: Completion[]): void {
    // Acknowledged when they were scheduled: only their replies go (the outbox has them).
    for (const c of all.filter((c) => c.acked && c.withReply)) {
      const frame = replyFrame(c.done);
      if (!frame || !this.#o.transport.connected) {
        this.#unconfirmed.delete(c.id); // sent from the outbox after the next connect
        continue;
      }
      try {
        this.#o.transport.publish(frame, () => this.#confirmed([c.id]));
      } catch {
        this.#unconfirmed.delete(c.id);
      }
    }
    const batch = all.filter((c) => !c.acked);
    const items = batch.map((c) => {
      const delivery = this.#active.get(c.id);
      this.#active.delete(c.id);
      return { id: c.id, delivery, reply: c.withReply ? replyFrame(c.done) : undefined };
    }).filter((item): item is typeof item & { delivery: Delivery } => item.delivery !== undefined);
    if (!items.length) return;
    const replied = items.filter((item) => item.reply).map((item) => item.id);
    const sent = this.#o.transport.ackAndSend(
      items,
      this.#o.transactions ? { transaction: true } : { onSent: () => this.#confirmed(replied) },
    );
    items.forEach((item, i) => {
      if (sent[i]) {
        this.#stats.acked++;
        if (item.reply && this.#o.transactions) this.#stats.replied++;
      } else {
        this.#unconfirmed.delete(item.id); // the outbox sends it after the next connect
        logger.info(
          "Link lost before message {messageId} was acknowledged; the broker will redeliver it",
          {
            messageId: item.id,
          },
        );
      }
    });
  }

  /** The broker has the replies: their outbox entries go. */
  #confirmed(ids: string[]): void {
    const done = ids.filter((id) => this.#unconfirmed.delete(id));
    this.#stats.replied += done.length;
    if (!done.length) return;
    for (const id of done) this.#sentOutbox.add(id);
    this.#sentTimer ??= setTimeout(() => {
      this.#sentTimer = undefined;
      void this.#clearSentOutbox();
    }, OUTBOX_CLEAR_MS);
  }

  #takeSent(max: number): string[] {
    const ids: string[] = [];
    for (const id of this.#sentOutbox) {
      if (ids.length >= max) break;
      ids.push(id);
    }
    for (const id of ids) this.#sentOutbox.delete(id);
    return ids;
  }

  /** Deletes the confirmed replies' outbox entries not yet deleted by a group commit. */
  async #clearSentOutbox(): Promise<void> {
    clearTimeout(this.#sentTimer);
    this.#sentTimer = undefined;
    while (this.#sentOutbox.size) {
      const ids = this.#takeSent(KV_MUTATIONS);
      try {
        await this.#o.store.commit({ delete: ids.map(outboxKey) });
      } catch (error) {
        // Harmless: after a restart these replies are sent once more.
        logger.warn("Could not clear {count} sent replies from the outbox: {error}", {
          count: ids.length,
          error,
        });
        return;
      }
    }
  }

  /** Sends replies left in the outbox (unconfirmed when the link dropped or the agent died). */
  async #flushOutbox(): Promise<void> {
    if (this.#o.transactions) return;
    try {
      for await (const { key, value } of this.#o.store.list<OutgoingFrame>(["actions", "outbox"])) {
        const id = String(key[2]);
        if (
          this.#unconfirmed.has(id) || this.#sentOutbox.has(id) || !this.#o.transport.connected
        ) continue;
        this.#unconfirmed.add(id);
        try {
          this.#o.transport.publish(value, () => this.#confirmed([id]));
        } catch {
          this.#unconfirmed.delete(id);
        }
      }
    } catch (error) {
      logger.error("Could not read the reply outbox: {error}", { error });
    }
  }

  #sendStatus(message: ActionMessage, reply: Reply): void {
    if (!message.replyTo || !this.#o.transport.connected) return;
    try {
      this.#o.transport.publish({
        destination: message.replyTo,
        headers: replyHeaders(message.correlationId),
        body: JSON.stringify(reply),
      });
    } catch {
      // Interim statuses are best effort.
    }
  }

  async #record(delivery: Delivery): Promise<void> {
    const dir = this.#o.recordDir!;
    const seq = String(++this.#recordSeq).padStart(6, "0");
    const text = new TextDecoder().decode(delivery.body);
    const record: Record<string, unknown> = { headers: delivery.headers, body: text };
    if (!isValidUtf8(delivery.body)) {
      record.bodyBase64 = Buffer.from(delivery.body).toString("base64");
    }
    try {
      await Deno.writeTextFile(
        `${dir}/${Date.now()}-${seq}.json`,
        JSON.stringify(record, null, 2) + "\n",
      );
    } catch (error) {
      logger.warn("Could not record message to {dir}: {error}", { dir, error });
    }
  }
}

/**
 * A completion whose records the store refused even alone: recorded as a bare error reply
 * (no dead letter, no outbox copy), so that the message is acknowledged and answered
 * instead of coming back after every reconnect.
 */
function shrunk(c: Completion, error: Error): Completion {
  const level = (c.shrunk ?? 0) + 1;
  logger.error("Cannot store the outcome of message {messageId}: {error}; {instead}", {
    messageId: c.id,
    error: error.message,
    instead: level === 1 ? "replying with an error" : "acknowledging it without a reply",
  });
  const done: DoneRecord = {
    reply: errorReply(`The outcome of this action could not be recorded: ${error.message}`),
    // The headers themselves may be what does not fit: then there is no one to reply to.
    replyTo: level === 1 ? c.done.replyTo : undefined,
    correlationId: level === 1 ? c.done.correlationId : undefined,
    at: c.done.at,
  };
  const sets: SetOp[] = [[doneKey(c.id), done, c.sets[0]?.[2] ?? {}]];
  const frame = replyFrame(done);
  if (frame) sets.push([outboxKey(c.id), frame]);
  return { ...c, done, sets, withReply: frame !== undefined, shrunk: level };
}

/** A body over the size limit, refused before it is decoded or parsed. */
function tooLarge(headers: Record<string, string>, size: number, max: number): ParseResult {
  return {
    ok: false,
    problem: `the message body is ${Math.ceil(size / 1024)} KB, over the limit of ${
      Math.floor(max / 1024)
    } KB ([resilient] stomp_max_message_kb)`,
    headers,
    messageId: headers["message-id"] ?? headers["ack"] ?? `no-id-${crypto.randomUUID()}`,
  };
}

/** The store writes of a dead letter: the record, and its body in pieces that fit the store. */
function deadLetterOps(
  id: string,
  queue: string,
  problem: string,
  delivery: Delivery,
): SetOp[] {
  const body = delivery.body.subarray(0, DEAD_BODY_MAX);
  // The record carries the start (base64 grows it by a third); raw pieces carry the rest.
  const head = body.subarray(0, DEAD_BODY_HEAD);
  const pieces: Uint8Array[] = [];
  for (let at = head.byteLength; at < body.byteLength; at += DEAD_BODY_PIECE) {
    pieces.push(body.slice(at, at + DEAD_BODY_PIECE));
  }
  const headers = Object.fromEntries(
    Object.entries(delivery.headers).map(([k, v]) => [k.slice(0, 200), v.slice(0, 1000)]),
  );
  const letter: DeadLetter = {
    queue,
    headers,
    bodyBase64: Buffer.from(head).toString("base64"),
    bodySize: delivery.body.byteLength,
    parts: pieces.length,
    truncated: delivery.body.byteLength > DEAD_BODY_MAX,
    problem: problem.slice(0, 2000),
    at: Date.now(),
  };
  return [
    [[...DEAD_LETTER_PREFIX, id], letter],
    ...pieces.map((piece, i): SetOp => [[...DEAD_BODY_PREFIX, id, i + 1], piece]),
  ];
}

/** Roughly what a value costs in a store commit (strings may take two bytes a character). */
function approxBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength + 64;
  return 2 * JSON.stringify(value).length + 64;
}

function replyFrame(done: DoneRecord): OutgoingFrame | undefined {
  if (!done.replyTo) return undefined;
  return {
    destination: done.replyTo,
    headers: replyHeaders(done.correlationId),
    body: JSON.stringify(done.reply),
  };
}

/** Replies are persistent so that a broker restart does not lose them. */
function replyHeaders(correlationId: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { persistent: "true" };
  if (correlationId) headers["correlation-id"] = correlationId;
  return headers;
}

function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
