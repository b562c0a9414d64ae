/**
 * The action listener: receives Action Module messages, hands them to processors, and
 * acknowledges them the way the platform expects, without ever losing or repeating one.
 *
 * Per message: dedupe on `message-id` -> parse -> (debounce/defer) -> processor -> commit
 * the reply to the store (done ledger + outbox, atomically) -> ACK the frame -> SEND the
 * reply with a receipt; the outbox entry is removed when the broker confirms it. After a
 * crash, a redelivered message that was already handled is only ACKed again, and replies
 * still in the outbox are sent when the link is back.
 */
import { Buffer } from "node:buffer";
import { log } from "../log/log.ts";
import type { ResilientApi } from "../resilient/types.ts";
import type { Store } from "../store/store.ts";
import type { Delivery, StompTransport } from "../stomp/types.ts";
import { faultPoint } from "./_faults.ts";
import { KeyedQueue } from "./keyed_queue.ts";
import { objectKey, parseDelivery } from "./message.ts";
import { errorReply, infoReply, runProcessor } from "./run.ts";
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
  /** Actions handled at once. */
  workers: number;
  /** The broker's prefetch (unacked messages sent to us); defaults to `workers`. */
  prefetch?: number | undefined;
  /** Write every received message to its own file here (`--record DIR`). */
  recordDir?: string | undefined;
  /** How long handled message ids are remembered for dedupe. */
  doneTtlMs?: number;
  /** Log a one-line summary this often (0 = never). */
  healthIntervalMs?: number;
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

/** A reply waiting for the broker's receipt. */
interface OutboxEntry {
  destination: string;
  headers: Record<string, string>;
  body: string;
}

/** A message kept because it could not be processed. */
export interface DeadLetter {
  queue: string;
  headers: Record<string, string>;
  bodyBase64: string;
  problem: string;
  at: number;
}

interface Pending {
  delivery: Delivery;
  message: ActionMessage;
}

const doneKey = (id: string) => ["actions", "done", id];
const outboxKey = (id: string) => ["actions", "outbox", id];
export const DEAD_LETTER_PREFIX = ["actions", "dead"];

/** See module doc. */
export class ActionListener {
  readonly #o: ListenerOptions;
  readonly #processors = new Map<string, Processor>();
  readonly #queue: KeyedQueue;
  /** Messages being handled here, with their latest delivery (a redelivery replaces it). */
  readonly #active = new Map<string, Delivery>();
  readonly #sending = new Set<string>();
  readonly #debounced = new Map<string, { entries: Pending[]; timer: Timer | undefined }>();
  readonly #timers = new Set<Timer>();
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
  #recordSeq = 0;
  #healthTimer: Timer | undefined;

  constructor(options: ListenerOptions) {
    this.#o = options;
    this.#queue = new KeyedQueue(options.workers);
  }

  /** Adds a processor for its queue (before start). */
  register(processor: Processor): void {
    if (this.#processors.has(processor.queue)) {
      throw new Error(`Two processors want queue "${processor.queue}"`);
    }
    this.#processors.set(processor.queue, processor);
  }

  /** Subscribes every processor's queue; the transport re-subscribes after reconnects. */
  start(): void {
    const { transport, orgId } = this.#o;
    const prefetch = this.#o.prefetch || this.#o.workers;
    transport.onConnected(() => void this.#flushOutbox());
    transport.onDisconnected(() => this.#sending.clear());
    for (const processor of this.#processors.values()) {
      const destination = `actions.${orgId}.${processor.queue}`;
      transport.subscribe({
        destination,
        headers: { id: destination, ack: "client-individual", "activemq.prefetchSize": String(prefetch) },
        onMessage: (delivery) => this.#onMessage(processor, delivery),
      });
    }
    const interval = this.#o.healthIntervalMs ?? 0;
    if (interval > 0) {
      this.#healthTimer = setInterval(() => {
        logger.info("Health: {received} received, {acked} acked, {errors} errors, {reconnects} reconnects", {
          ...this.stats(),
        });
      }, interval);
      Deno.unrefTimer(this.#healthTimer);
    }
    if (transport.connected) void this.#flushOutbox();
  }

  stats(): ListenerStats {
    return { ...this.#stats, inFlight: this.#queue.size, reconnects: this.#o.transport.reconnects };
  }

  /**
   * Stops taking messages, lets in-flight work finish within `deadlineMs` (what does not
   * finish stays unacked and is redelivered), waits briefly for reply receipts, disconnects.
   */
  async stop(deadlineMs = 10_000): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#healthTimer);
    for (const group of this.#debounced.values()) clearTimeout(group.timer);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#debounced.clear();
    const deadline = Date.now() + deadlineMs;
    let timer: Timer | undefined;
    await Promise.race([
      this.#queue.idle(),
      new Promise((r) => (timer = setTimeout(r, deadlineMs))),
    ]);
    clearTimeout(timer);
    while (this.#sending.size > 0 && Date.now() < Math.min(deadline, Date.now() + 2_000)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#o.transport.stop();
  }

  #onMessage(processor: Processor, delivery: Delivery): void {
    if (this.#stopping) return; // not acked: the broker redelivers it
    this.#stats.received++;
    if (this.#o.recordDir) void this.#record(delivery);
    const parsed = parseDelivery(delivery.headers, delivery.body);
    const id = parsed.ok ? parsed.message.messageId : parsed.messageId;
    if (this.#active.has(id)) {
      // Redelivered (after a reconnect) while still being handled: ack the new delivery
      // when the work finishes.
      this.#active.set(id, delivery);
      return;
    }
    this.#active.set(id, delivery);
    const key = parsed.ok ? processor.orderKey?.(parsed.message.data) ?? objectKey(parsed.message.data) : id;
    void this.#queue.push(key, async () => {
      try {
        const done = await this.#o.store.get<{ reply: Reply }>(doneKey(id));
        if (done) return await this.#acknowledgeDuplicate(id);
        if (!parsed.ok) {
          logger.warn("Bad action message {messageId}: {problem}", { messageId: id, problem: parsed.problem });
          this.#stats.badInput++;
          return await this.#finish(id, errorReply(`Cannot process this action: ${parsed.problem}`), {
            queue: processor.queue,
            problem: parsed.problem,
            delivery,
          });
        }
        const pending: Pending = { delivery, message: parsed.message };
        if (processor.debounce) {
          const debounceKey = processor.debounce.key(parsed.message.data);
          if (debounceKey !== undefined) return await this.#debounce(processor, key, debounceKey, pending);
        }
        if (processor.deferMs) return this.#later(processor.deferMs, key, processor, pending, []);
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
    await this.#finish(message.messageId, outcome.reply, dead);
    for (const other of absorbed) await this.#finish(other.message.messageId, outcome.reply);
  }

  async #debounce(processor: Processor, orderKey: string, debounceKey: string, pending: Pending): Promise<void> {
    const { ms, discard } = processor.debounce!;
    const groupKey = `${processor.queue}\u0000${debounceKey}`;
    let group = this.#debounced.get(groupKey);
    if (!group) {
      group = { entries: [], timer: undefined };
      this.#debounced.set(groupKey, group);
    }
    clearTimeout(group.timer);
    if (discard) {
      for (const earlier of group.entries.splice(0)) {
        await this.#finish(
          earlier.message.messageId,
          infoReply("Superseded by a later change to the same object; only the latest was handled"),
        );
      }
    }
    group.entries.push(pending);
    const entries = group;
    group.timer = setTimeout(() => {
      this.#debounced.delete(groupKey);
      const last = entries.entries.at(-1)!;
      void this.#queue.push(orderKey, () => this.#process(processor, last, entries.entries.slice(0, -1)));
    }, ms);
  }

  #later(ms: number, key: string, processor: Processor, pending: Pending, absorbed: Pending[]): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#queue.push(key, () => this.#process(processor, pending, absorbed));
    }, ms);
    this.#timers.add(timer);
  }

  /** Records the outcome, ACKs, then sends the reply (see module doc for the order). */
  async #finish(
    id: string,
    reply: Reply,
    dead?: { queue: string; problem: string; delivery: Delivery },
  ): Promise<void> {
    const delivery = this.#active.get(id) ?? dead?.delivery;
    if (!delivery) return;
    const { headers } = delivery;
    const replyTo = headers["reply-to"];
    const correlationId = headers["correlation-id"];
    const sets: [Deno.KvKey, unknown, { ttlMs?: number }?][] = [
      [doneKey(id), { reply, at: Date.now(), correlationId }, { ttlMs: this.#o.doneTtlMs ?? DONE_TTL_MS }],
    ];
    const entry: OutboxEntry | undefined = replyTo
      ? { destination: replyTo, headers: replyHeaders(correlationId), body: JSON.stringify(reply) }
      : undefined;
    if (entry) sets.push([outboxKey(id), entry]);
    if (dead) {
      const letter: DeadLetter = {
        queue: dead.queue,
        headers,
        bodyBase64: Buffer.from(dead.delivery.body).toString("base64"),
        problem: dead.problem,
        at: Date.now(),
      };
      sets.push([[...DEAD_LETTER_PREFIX, id], letter]);
    }
    await this.#o.store.commit({ set: sets });
    faultPoint("after-commit");
    const latest = this.#active.get(id) ?? delivery;
    this.#active.delete(id);
    if (this.#o.transport.ack(latest)) this.#stats.acked++;
    faultPoint("after-ack");
    if (entry) this.#send(id, entry);
  }

  async #acknowledgeDuplicate(id: string): Promise<void> {
    const delivery = this.#active.get(id);
    this.#active.delete(id);
    this.#stats.duplicates++;
    logger.info("Message {messageId} was already handled; acknowledging it again without reprocessing", {
      messageId: id,
    });
    if (delivery && this.#o.transport.ack(delivery)) this.#stats.acked++;
    const entry = await this.#o.store.get<OutboxEntry>(outboxKey(id));
    if (entry) this.#send(id, entry);
  }

  #send(id: string, entry: OutboxEntry): void {
    const { transport, store } = this.#o;
    if (!transport.connected || this.#sending.has(id)) return;
    this.#sending.add(id);
    try {
      transport.publish(entry, () => {
        this.#sending.delete(id);
        this.#stats.replied++;
        store.delete(outboxKey(id)).catch((error) =>
          logger.warn("Could not clear sent reply {messageId} from the outbox: {error}", { messageId: id, error })
        );
      });
    } catch {
      this.#sending.delete(id); // disconnected meanwhile: flushed on reconnect
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

  async #flushOutbox(): Promise<void> {
    try {
      for await (const { key, value } of this.#o.store.list<OutboxEntry>(["actions", "outbox"])) {
        this.#send(String(key[2]), value);
      }
    } catch (error) {
      logger.error("Could not read the reply outbox: {error}", { error });
    }
  }

  async #record(delivery: Delivery): Promise<void> {
    const dir = this.#o.recordDir!;
    const seq = String(++this.#recordSeq).padStart(6, "0");
    const text = new TextDecoder().decode(delivery.body);
    const record: Record<string, unknown> = { headers: delivery.headers, body: text };
    if (!isValidUtf8(delivery.body)) record.bodyBase64 = Buffer.from(delivery.body).toString("base64");
    try {
      await Deno.writeTextFile(`${dir}/${Date.now()}-${seq}.json`, JSON.stringify(record, null, 2) + "\n");
    } catch (error) {
      logger.warn("Could not record message to {dir}: {error}", { dir, error });
    }
  }
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
