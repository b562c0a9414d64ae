/**
 * Debounce and defer: a message handled later than it arrived. Without transactions the
 * message is written to the store with its due time and acknowledged at once, so it does
 * not hold one of the broker's prefetch slots while it waits (200 debounced tasks would
 * otherwise trickle in at prefetch / window); its reply goes through the outbox when it is
 * handled, and a restart takes it up again ({@linkcode Scheduler.restore}). With
 * transactions (one reply per message, ACK and reply in one commit), or when it is too
 * large for a store value, it waits unacknowledged.
 *
 * Debounce: messages of one group (`processor.debounce.key`) within the window are handled
 * once, as the last of them, after the window; with `discard` the earlier ones are answered
 * at once as superseded, otherwise they share the last one's reply. Defer: each message is
 * handled `deferMs` after it came, in its key's order.
 */
import type { Clock, TimerId } from "../async/clock.ts";
import { log } from "../log/log.ts";
import type { Store } from "../store/store.ts";
import type { Delivery, StompTransport } from "../stomp/types.ts";
import { parseDelivery } from "./message.ts";
import { infoReply } from "./run_processor.ts";
import type { ActionMessage, Processor, Reply } from "./types.ts";

const logger = log("actions");

/** A message being handled. */
export interface Pending {
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

/** Debounced and deferred messages, acknowledged, waiting for their time. */
export const SCHEDULED_PREFIX = ["actions", "scheduled"];
export const scheduledKey = (id: string): Deno.KvKey => [...SCHEDULED_PREFIX, id];
/** A message larger than this is held unacknowledged instead (a store value's limit). */
const SCHEDULE_MAX_BYTES = 48 * 1024;

/** The debounce group of a message: one per queue and debounce key. */
function debounceGroup(queue: string, debounceKey: string): string {
  return `${queue}\u0000${debounceKey}`;
}

/** What the scheduler needs from the listener. */
export interface SchedulerHost {
  store: Store;
  transport: StompTransport;
  transactions: boolean;
  clock: Clock;
  processors: ReadonlyMap<string, Processor>;
  /** Handles `pending` (answering `absorbed` with its reply) in `orderKey`'s order. */
  run(processor: Processor, orderKey: string, pending: Pending, absorbed: Pending[]): void;
  /** Records and answers a message with `reply` without running it. */
  complete(pending: Pending, reply: Reply): Promise<void>;
  /** Acknowledges a message now kept in the store. */
  acknowledge(id: string, delivery: Delivery): void;
}

/** See module doc. */
export class Scheduler {
  readonly #h: SchedulerHost;
  readonly #debounced = new Map<string, { entries: Pending[]; timer: TimerId | undefined }>();
  /** Ids of messages acknowledged and kept in the store until they are due. */
  readonly #scheduledIds = new Set<string>();
  #scheduleSeq = 0;
  readonly #timers = new Set<TimerId>();

  constructor(host: SchedulerHost) {
    this.#h = host;
  }

  /** Whether the message is kept in the store already (its redelivery needs only an ACK). */
  has(id: string): boolean {
    return this.#scheduledIds.has(id);
  }

  /** A scheduled message was handled and its record removed. */
  finished(id: string): void {
    this.#scheduledIds.delete(id);
  }

  /** Stops every timer (a stop: what is kept in the store waits for the next run). */
  stop(): void {
    for (const group of this.#debounced.values()) this.#h.clock.clearTimeout(group.timer);
    for (const timer of this.#timers) this.#h.clock.clearTimeout(timer);
    this.#debounced.clear();
    this.#timers.clear();
  }

  /**
   * Schedules a debounced or deferred message. Without transactions, the message is written
   * to the store with its due time and acknowledged at once, so it does not hold one of the
   * broker's prefetch slots while it waits (200 debounced tasks would otherwise trickle in at
   * prefetch / window); its reply goes through the outbox when it is handled, and a restart
   * takes it up again. With transactions (one reply per message, ACK and reply in one
   * commit), or when it is too large for a store value, it waits unacknowledged.
   */
  async schedule(
    processor: Processor,
    orderKey: string,
    debounceKey: string | undefined,
    pending: Pending,
  ): Promise<void> {
    const ms = debounceKey !== undefined ? processor.debounce!.ms : processor.deferMs!;
    if (!this.#h.transactions && pending.delivery.body.byteLength <= SCHEDULE_MAX_BYTES) {
      const id = pending.message.messageId;
      const record: ScheduledRecord = {
        queue: processor.queue,
        orderKey,
        ...(debounceKey !== undefined ? { debounceKey } : {}),
        due: this.#h.clock.now() + ms,
        headers: pending.delivery.headers,
        body: pending.delivery.body,
        seq: ++this.#scheduleSeq,
      };
      await this.#h.store.set(scheduledKey(id), record);
      this.#scheduledIds.add(id);
      this.#h.acknowledge(id, pending.delivery);
      pending.scheduled = true;
    }
    if (debounceKey !== undefined) {
      return await this.#debounce(processor, orderKey, debounceKey, pending);
    }
    this.#later(ms, orderKey, processor, pending);
  }

  async #debounce(
    processor: Processor,
    orderKey: string,
    debounceKey: string,
    pending: Pending,
    delayMs?: number,
  ): Promise<void> {
    const { ms, discard } = processor.debounce!;
    const groupKey = debounceGroup(processor.queue, debounceKey);
    let group = this.#debounced.get(groupKey);
    if (!group) {
      group = { entries: [], timer: undefined };
      this.#debounced.set(groupKey, group);
    }
    this.#h.clock.clearTimeout(group.timer);
    if (discard) {
      const superseded = infoReply(
        "Superseded by a later change to the same object; only the latest was handled",
      );
      await Promise.all(
        group.entries.splice(0).map((earlier) => this.#h.complete(earlier, superseded)),
      );
    }
    group.entries.push(pending);
    const entries = group;
    group.timer = this.#h.clock.setTimeout(() => {
      this.#debounced.delete(groupKey);
      const last = entries.entries.at(-1)!;
      this.#h.run(processor, orderKey, last, entries.entries.slice(0, -1));
    }, delayMs ?? ms);
  }

  /** Scheduled messages an earlier run acknowledged but did not handle: on their timers again. */
  async restore(): Promise<void> {
    const groups = new Map<string, { processor: Processor; items: ScheduledRecord[] }>();
    try {
      for await (const { key, value } of this.#h.store.list<ScheduledRecord>(SCHEDULED_PREFIX)) {
        const id = String(key.at(-1));
        const processor = this.#h.processors.get(value.queue);
        if (!processor) continue; // a queue not served by this run: left for one that does
        this.#scheduledIds.add(id);
        const groupKey = value.debounceKey !== undefined
          ? debounceGroup(value.queue, value.debounceKey)
          : `\u0001${id}`;
        const group = groups.get(groupKey) ?? { processor, items: [] };
        group.items.push(value);
        groups.set(groupKey, group);
      }
    } catch (error) {
      logger.error("Could not read the scheduled messages: {error}", { error });
      return;
    }
    let count = 0;
    for (const { processor, items } of groups.values()) {
      items.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const delayMs = Math.max(0, Math.max(...items.map((i) => i.due)) - this.#h.clock.now());
      for (const item of items) {
        const body = new Uint8Array(item.body);
        const parsed = parseDelivery(item.headers, body);
        if (!parsed.ok) continue;
        count++;
        const pending: Pending = {
          delivery: { headers: item.headers, body, generation: -1 },
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

  /** `defer`: handled after `ms`, in key order. */
  #later(ms: number, key: string, processor: Processor, pending: Pending): void {
    const timer = this.#h.clock.setTimeout(() => {
      this.#timers.delete(timer);
      this.#h.run(processor, key, pending, []);
    }, ms);
    this.#timers.add(timer);
  }
}
