/**
 * The action listener: receives Action Module messages, hands them to processors, and
 * acknowledges them the way the platform expects, without ever losing or repeating one.
 *
 * Per message: dedupe on `message-id` -> parse -> (debounce/defer) -> processor -> record
 * the reply in the store (the done ledger) -> ACK the frame and SEND the reply in one STOMP
 * transaction. The broker applies both or neither, so after a crash or a dropped link a
 * message is either finished (acked, replied) or redelivered; a redelivered message that
 * is already in the ledger is not processed again: its recorded reply is sent with the ACK.
 * Each message thus gets exactly one reply, and its processor runs to completion once.
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
export const DEAD_LETTER_PREFIX = ["actions", "dead"];

/** See module doc. */
export class ActionListener {
  readonly #o: ListenerOptions;
  readonly #processors = new Map<string, Processor>();
  readonly #queue: KeyedQueue;
  /** Messages being handled here, with their latest delivery (a redelivery replaces it). */
  readonly #active = new Map<string, Delivery>();
  /** Transactions sent whose COMMIT the broker has not confirmed yet. */
  readonly #committing = new Set<string>();
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
    transport.onDisconnected(() => this.#committing.clear());
    for (const processor of this.#processors.values()) {
      const destination = `actions.${orgId}.${processor.queue}`;
      transport.subscribe({
        destination,
        headers: {
          id: destination,
          ack: "client-individual",
          "activemq.prefetchSize": String(prefetch),
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
    return { ...this.#stats, inFlight: this.#queue.size, reconnects: this.#o.transport.reconnects };
  }

  /**
   * Stops taking messages, lets in-flight work finish within `deadlineMs` (what does not
   * finish stays unacked and is redelivered), waits briefly for commit receipts, disconnects.
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
    const receiptDeadline = Math.min(deadline + 2_000, Date.now() + 2_000);
    while (this.#committing.size > 0 && Date.now() < receiptDeadline) {
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
    const key = parsed.ok
      ? processor.orderKey?.(parsed.message.data) ?? objectKey(parsed.message.data)
      : id;
    void this.#queue.push(key, async () => {
      try {
        const done = await this.#o.store.get<DoneRecord>(doneKey(id));
        if (done) return this.#acknowledgeDuplicate(id, done);
        if (!parsed.ok) {
          logger.warn("Bad action message {messageId}: {problem}", {
            messageId: id,
            problem: parsed.problem,
          });
          this.#stats.badInput++;
          return await this.#finish(
            id,
            errorReply(`Cannot process this action: ${parsed.problem}`),
            {
              queue: processor.queue,
              problem: parsed.problem,
              delivery,
            },
          );
        }
        const pending: Pending = { delivery, message: parsed.message };
        if (processor.debounce) {
          const debounceKey = processor.debounce.key(parsed.message.data);
          if (debounceKey !== undefined) {
            return await this.#debounce(processor, key, debounceKey, pending);
          }
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

  async #debounce(
    processor: Processor,
    orderKey: string,
    debounceKey: string,
    pending: Pending,
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
      void this.#queue.push(
        orderKey,
        () => this.#process(processor, last, entries.entries.slice(0, -1)),
      );
    }, ms);
  }

  #later(
    ms: number,
    key: string,
    processor: Processor,
    pending: Pending,
    absorbed: Pending[],
  ): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#queue.push(key, () => this.#process(processor, pending, absorbed));
    }, ms);
    this.#timers.add(timer);
  }

  /** Records the outcome, then ACKs and replies in one transaction (see module doc). */
  async #finish(
    id: string,
    reply: Reply,
    dead?: { queue: string; problem: string; delivery: Delivery },
  ): Promise<void> {
    const delivery = this.#active.get(id) ?? dead?.delivery;
    if (!delivery) return;
    const { headers } = delivery;
    const done: DoneRecord = {
      reply,
      replyTo: headers["reply-to"],
      correlationId: headers["correlation-id"],
      at: Date.now(),
    };
    const sets: [Deno.KvKey, unknown, { ttlMs?: number }?][] = [
      [doneKey(id), done, { ttlMs: this.#o.doneTtlMs ?? DONE_TTL_MS }],
    ];
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
    this.#complete(id, latest, done);
    faultPoint("after-send");
  }

  /** Already in the ledger: ACK this delivery together with the recorded reply. */
  #acknowledgeDuplicate(id: string, done: DoneRecord): void {
    const delivery = this.#active.get(id);
    this.#active.delete(id);
    this.#stats.duplicates++;
    logger.info("Message {messageId} was already handled; acknowledging it without reprocessing", {
      messageId: id,
    });
    if (delivery) this.#complete(id, delivery, done);
  }

  /** ACK (+ reply in the same transaction). Not possible on a lost connection: redelivered. */
  #complete(id: string, delivery: Delivery, done: DoneRecord): void {
    const { transport } = this.#o;
    if (!done.replyTo) {
      if (transport.ack(delivery)) this.#stats.acked++;
      return;
    }
    const frame = {
      destination: done.replyTo,
      headers: replyHeaders(done.correlationId),
      body: JSON.stringify(done.reply),
    };
    const sent = transport.ackAndSend(delivery, frame, () => {
      this.#committing.delete(id);
      this.#stats.replied++;
    });
    if (sent) {
      this.#stats.acked++;
      this.#committing.add(id);
    } else {
      logger.info(
        "Link lost before message {messageId} was acknowledged; the broker will redeliver it",
        {
          messageId: id,
        },
      );
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
