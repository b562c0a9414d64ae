/**
 * The action listener: receives Action Module messages, hands them to processors, and
 * acknowledges them the way the platform expects, without ever losing or repeating one.
 *
 * Per message: dedupe on `message-id` -> parse -> (debounce/defer) -> processor -> record the
 * reply in the store -> SEND the reply -> ACK the frame. Records are written in groups (one
 * store commit and one broker batch for whatever finished meanwhile).
 *
 * By default (the Action Module contract): the reply is recorded in the ledger with the
 * message id, then SEND and ACK go out, the reply first on the one connection, so the broker
 * never has the ACK without the reply. A message whose ACK was lost (the link dropped, the
 * agent died) is redelivered, found in the ledger, and acknowledged with its recorded reply
 * sent again, not processed again: a reply is never lost, and in that rare case possibly sent
 * twice (harmless to the platform). A debounced or deferred message was acknowledged when it
 * was scheduled, so its reply is recorded with an outbox entry as well, removed when the
 * broker confirms it (a receipt); the next connect sends again those not confirmed. Where the
 * record only serves that ledger (no writes of the processor's, no dead letter), SEND and ACK
 * leave at once and the record follows, with those of the next few milliseconds in one commit
 * (see answersEarly in ./completion.ts).
 *
 * With `transactions`, ACK and reply go out in one STOMP transaction instead: the broker
 * applies both or neither, so each message gets exactly one reply; ActiveMQ syncs its
 * journal per commit, which costs throughput.
 *
 * The rooms: this file takes messages in (dedupe, parsing, worker pools per queue, stats);
 * ./completion.ts records, acknowledges and answers them (group commit, outbox);
 * ./schedule.ts holds debounced and deferred ones; ./recording.ts keeps dead letters and
 * `--record` files.
 */
import { type Clock, realClock } from "../async/clock.ts";
import { log } from "../log/log.ts";
import type { ResilientApi } from "../resilient/types.ts";
import type { Store, StoreSet } from "../store/store.ts";
import type { Delivery, StompTransport } from "../stomp/types.ts";
import { KeyedQueue } from "../async/keyed_queue.ts";
import { Histogram, type HistogramSnapshot } from "../ops/prometheus.ts";
import { actionQueue, messageIdOf, objectKey, parseDelivery, type ParseResult } from "./message.ts";
import { errorReply, fitReply, runProcessor } from "./run_processor.ts";
import type { ActionMessage, Processor, Reply } from "./types.ts";
import {
  CompletionQueue,
  doneKey,
  type DoneRecord,
  outboxKey,
  replyFrame,
  replyHeaders,
} from "./completion.ts";
import { type Pending, scheduledKey, Scheduler } from "./schedule.ts";
import { deadLetterOps, MessageRecorder } from "./recording.ts";

export {
  DEAD_BODY_PREFIX,
  DEAD_LETTER_PREFIX,
  type DeadLetter,
  deadLetterBody,
} from "./recording.ts";
export { SCHEDULED_PREFIX } from "./schedule.ts";
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
  /**
   * The broker's prefetch (unacked messages sent to us); defaults to
   * {@linkcode PREFETCH_PER_WORKER} times a queue's workers ({@linkcode
   * SANDBOXED_PREFETCH_PER_WORKER} for a sandboxed processor).
   */
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
  /** Time and timers (tests pass a clock they move by hand). */
  clock?: Clock;
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
const DEFAULT_MAX_BODY = 1024 * 1024;
/**
 * The default prefetch per worker: a worker busy, and one more message waiting for it.
 */
export const PREFETCH_PER_WORKER = 2;
/**
 * The default prefetch per worker of a sandboxed processor. Its messages are in flight from
 * the broker's dispatch to their ACK through the agent's queue, the sandbox (another process
 * to wake) and back; during a burst on a busy machine each hop waits for a CPU, so the broker
 * must have several messages per worker out to keep the workers busy: at twice the workers a
 * no-op processor did 2,200 messages a second, at six times 2,460, while a bare consumer's rate
 * did not change between the two (bench/listener.ts). The calendar, in the agent's own
 * process, did not gain from it.
 */
export const SANDBOXED_PREFETCH_PER_WORKER = 6;

/** See module doc. */
export class ActionListener {
  readonly #o: ListenerOptions;
  readonly #processors = new Map<string, Processor>();
  /** One worker pool per queue: a processor busy with slow work does not hold up the others. */
  readonly #queues = new Map<string, KeyedQueue>();
  /** Messages being handled here, with their latest delivery (a redelivery replaces it). */
  readonly #active = new Map<string, Delivery>();

  readonly #clock: Clock;
  readonly #completions: CompletionQueue;
  readonly #scheduler: Scheduler;
  readonly #recorder: MessageRecorder | undefined;
  /** The scheduled messages of an earlier run, put back on their timers at start. */
  #restored: Promise<void> = Promise.resolve();
  #lookupGeneration = -1;
  /** Messages the broker may have handed us unacknowledged at once: every prefetch. */
  #window = 0;
  #sinceConnect = 0;
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
  #healthTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: ListenerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
    const transactions = options.transactions === true;
    this.#completions = new CompletionQueue({
      transport: options.transport,
      store: options.store,
      transactions,
      deliveries: this.#active,
      stats: this.#stats,
      clock: this.#clock,
    });
    this.#scheduler = new Scheduler({
      store: options.store,
      transport: options.transport,
      transactions,
      clock: this.#clock,
      processors: this.#processors,
      run: (processor, orderKey, pending, absorbed) =>
        void this.#queueOf(processor).push(
          orderKey,
          (freeWorker) => this.#process(processor, pending, absorbed, freeWorker),
        ),
      complete: (pending, reply) => this.#complete(pending, reply),
      acknowledge: (id, delivery) => {
        this.#active.delete(id);
        if (options.transport.ackAndSend([{ delivery }])[0]) this.#stats.acked++;
      },
    });
    this.#recorder = options.recordDir ? new MessageRecorder(options.recordDir) : undefined;
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
    this.#restored = this.#scheduler.restore();
    transport.onConnected(() => void this.#completions.flushOutbox());
    transport.onDisconnected(() => this.#completions.disconnected());
    for (const processor of this.#processors.values()) {
      this.#window += this.#prefetchOf(processor);
      const destination = actionQueue(orgId, processor.queue);
      transport.subscribe({
        destination,
        headers: {
          id: destination,
          ack: "client-individual",
          "activemq.prefetchSize": String(this.#prefetchOf(processor)),
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
    this.#scheduler.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...this.#queues.values()].map((queue) => queue.idle())),
      new Promise((r) => (timer = setTimeout(r, deadlineMs))),
    ]);
    clearTimeout(timer);
    await this.#completions.drain(); // records still waiting for company
    const receiptDeadline = Date.now() + 2_000;
    while (
      this.#completions.unconfirmed > 0 && this.#o.transport.connected &&
      Date.now() < receiptDeadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#completions.clearSentOutbox();
    await this.#o.transport.stop();
  }

  #onMessage(processor: Processor, delivery: Delivery): void {
    if (this.#stopping) return; // not acked: the broker redelivers it
    this.#stats.received++;
    void this.#recorder?.record(delivery);
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
    void this.#queueOf(processor).push(key, async (freeWorker) => {
      try {
        await this.#restored;
        if (this.#scheduler.has(id)) {
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
          return await this.#scheduler.schedule(processor, key, debounceKey, pending);
        }
        await this.#process(processor, pending, [], freeWorker);
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

  async #process(
    processor: Processor,
    pending: Pending,
    absorbed: Pending[],
    freeWorker: () => void,
  ): Promise<void> {
    const { message } = pending;
    const outcome = await runProcessor(processor, message, {
      rest: this.#o.rest,
      store: this.#o.store,
      signal: this.#o.signal,
      sendStatus: (m, reply) => this.#sendStatus(m, reply),
    });
    // The handler is done: its worker takes the next message while this one's record is
    // stored (the message's key stays taken until then, so per-object order holds).
    freeWorker();
    this.#stats.processed++;
    if (outcome.reply.message_type === 1) this.#stats.errors++;
    if (outcome.badInput) this.#stats.badInput++;
    const dead = outcome.badInput
      ? { queue: processor.queue, problem: outcome.reply.message, delivery: pending.delivery }
      : undefined;
    // Together, so that they share one group commit.
    await Promise.all([
      this.#complete(pending, outcome.reply, dead, outcome.writes),
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

  #prefetchOf(processor: Processor): number {
    const perWorker = processor.sandboxed ? SANDBOXED_PREFETCH_PER_WORKER : PREFETCH_PER_WORKER;
    return this.#o.prefetch || perWorker * (processor.workers ?? this.#o.workers);
  }

  #queueOf(processor: Processor): KeyedQueue {
    return this.#queues.get(processor.queue)!;
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
    return this.#sinceConnect++ < 2 * this.#window;
  }

  /** The ledger record of a message id (reads made meanwhile are grouped by the store). */
  #lookupDone(id: string): Promise<DoneRecord | undefined> {
    return this.#o.store.get<DoneRecord>(doneKey(id));
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
    writes: StoreSet[] = [],
  ): Promise<void> {
    const delivery = scheduled ?? this.#active.get(id) ?? dead?.delivery;
    if (!delivery) return Promise.resolve();
    const { headers } = delivery;
    const done: DoneRecord = {
      reply: fitReply(outcome, id),
      replyTo: headers["reply-to"],
      correlationId: headers["correlation-id"],
      at: this.#clock.now(),
    };
    const sets: StoreSet[] = [[doneKey(id), done, { ttlMs: this.#o.doneTtlMs ?? DONE_TTL_MS }]];
    const frame = replyFrame(done);
    if (frame && scheduled) sets.push([outboxKey(id), frame]);
    if (dead) sets.push(...deadLetterOps(id, dead.queue, dead.problem, dead.delivery));
    sets.push(...writes);
    if (!scheduled) {
      return this.#completions.enqueue({ id, done, sets, writes, withReply: true });
    }
    return this.#completions.enqueue({
      id,
      done,
      sets,
      writes,
      deletes: [scheduledKey(id)],
      withReply: frame !== undefined,
      acked: true,
    }).then(() => this.#scheduler.finished(id));
  }

  /** Records a handled message's outcome (see #finish). */
  #complete(
    pending: Pending,
    reply: Reply,
    dead?: { queue: string; problem: string; delivery: Delivery },
    writes?: StoreSet[],
  ): Promise<void> {
    const id = pending.message.messageId;
    return this.#finish(
      id,
      reply,
      dead,
      pending.scheduled ? pending.delivery : undefined,
      writes,
    );
  }

  /**
   * Already in the ledger: ACK it without processing, with the recorded reply. The redelivery
   * means its ACK did not reach the broker, nor perhaps its reply (sent just before, on the
   * same connection); with transactions, that the transaction did not commit.
   */
  #acknowledgeDuplicate(id: string, done: DoneRecord): Promise<void> {
    this.#stats.duplicates++;
    logger.info("Message {messageId} was already handled; acknowledging it without reprocessing", {
      messageId: id,
    });
    return this.#completions.enqueue({
      id,
      done,
      sets: [],
      withReply: true,
    });
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
}

/** A body over the size limit, refused before it is decoded or parsed. */
function tooLarge(headers: Record<string, string>, size: number, max: number): ParseResult {
  return {
    ok: false,
    problem: `the message body is ${Math.ceil(size / 1024)} KB, over the limit of ${
      Math.floor(max / 1024)
    } KB ([resilient] stomp_max_message_kb)`,
    headers,
    messageId: messageIdOf(headers),
  };
}
