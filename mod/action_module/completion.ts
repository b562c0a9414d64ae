/**
 * Completion and the reply outbox: how a handled message is recorded, acknowledged and
 * answered without ever being lost or repeated (see ./listener.ts for the whole flow).
 *
 * Completions are group-committed: those that arrive while a batch is being stored go
 * together in the next one, as one store commit and one broker batch. A message's reply goes
 * out just before its ACK on the one connection, so the broker never has the ACK without the
 * reply; a message whose ACK did not arrive (the link dropped, the agent died) comes back,
 * and the ledger record, which holds the reply, answers it again. So a reply needs an outbox
 * entry only when its message was acknowledged before it was answered (a debounced or
 * deferred one): that entry is stored with the ledger record and removed when the broker
 * confirms the reply (a receipt), in a later group commit; the next connect sends again the
 * ones not confirmed. A completion whose records only serve the ledger is answered when it
 * arrives (at the end of its tick, with the others of that tick), its records stored
 * meanwhile or in the next commit (see {@linkcode answersEarly}). With `transactions`, ACK
 * and reply share one STOMP transaction instead (exactly one reply).
 */
import type { Clock, TimerId } from "../async/clock.ts";
import { log } from "../log/log.ts";
import { faultPoint } from "../ops/faults.ts";
import type { Store, StoreSet } from "../store/store.ts";
import type { Delivery, OutgoingFrame, StompTransport } from "../stomp/types.ts";
import { errorReply } from "./run_processor.ts";
import type { Reply } from "./types.ts";

const logger = log("actions");

/** The ledger record of a handled message. */
export interface DoneRecord {
  reply: Reply;
  replyTo: string | undefined;
  correlationId: string | undefined;
  at: number;
}

/** A handled message waiting to be recorded and acknowledged. */
export interface Completion {
  id: string;
  done: DoneRecord;
  sets: StoreSet[];
  /** The processor's own writes among `sets` (ctx.setWithReply), kept if the rest is cut. */
  writes?: StoreSet[];
  /** Records that go in the same commit (a scheduled message's). */
  deletes?: Deno.KvKey[];
  /** Send the recorded reply with the ACK (false: ACK only). */
  withReply: boolean;
  /** The message was acknowledged when it was scheduled: only the reply goes out. */
  acked?: boolean;
  /**
   * Reply and ACK may leave before the records are stored (see {@linkcode answersEarly}):
   * set by the queue, not by callers.
   */
  early?: boolean;
  /** Answered already (an early one whose commit is retried): only its records remain. */
  answered?: boolean;
  /** Roughly what its records cost in a store commit (set by the queue). */
  bytes: number;
  /** Committed alone (after its batch could not be stored). */
  split?: boolean;
  /** How often its records were cut down because the store refused them. */
  shrunk?: number;
  resolve(): void;
  reject(error: unknown): void;
}

/** A completion as callers hand it to {@linkcode CompletionQueue.enqueue}. */
type NewCompletion = Omit<Completion, "resolve" | "reject" | "early" | "bytes">;

/** What a {@linkcode CompletionQueue} works with. */
export interface CompletionOptions {
  transport: StompTransport;
  store: Store;
  /** ACK and reply in one STOMP transaction (no outbox). */
  transactions: boolean;
  /** Deliveries of the messages being handled, by message id (shared with the listener). */
  deliveries: Map<string, Delivery>;
  /** Counters shared with the listener's stats. */
  stats: { acked: number; replied: number };
  clock: Clock;
}

/** Deno KV takes up to 1000 mutations per atomic commit; a dead letter adds a second. */
const MAX_BATCH = 400;
/** Deno KV takes up to 800 KiB of keys and values per atomic commit: batches stay below. */
const BATCH_BYTES = 640 * 1024;
/** Deno KV's limit of mutations in one atomic commit. */
const KV_MUTATIONS = 1000;
/** How long confirmed replies' outbox entries wait for a group commit to delete them. */
const OUTBOX_CLEAR_MS = 250;
/**
 * How long the records of completions answered early wait for company in a group commit:
 * their messages are answered and acknowledged already, so this costs no latency, and a
 * busy agent stores them in one commit (and one fsync) per window instead of one per tick.
 */
export const EARLY_RECORD_WAIT_MS = 10;

/** The ledger: handled message ids (dedupe) with their replies. */
export const doneKey = (id: string): Deno.KvKey => ["actions", "done", id];
/** Replies recorded and not yet confirmed by the broker. */
export const OUTBOX_PREFIX = ["actions", "outbox"];
export const outboxKey = (id: string): Deno.KvKey => [...OUTBOX_PREFIX, id];

/** See module doc. */
export class CompletionQueue {
  readonly #o: CompletionOptions;
  readonly #completions: Completion[] = [];
  #committing = false;
  /** The group commit loop running (or the last one). */
  #loop: Promise<void> = Promise.resolve();
  /** When the records of completions answered early are due to be stored. */
  #recordTimer: TimerId | undefined;
  /** Early completions to answer at the end of this tick (`#answerSoon`). */
  readonly #early: Completion[] = [];
  /**
   * Outbox entries of replies the broker confirmed, to delete with the next group commit
   * (one store commit per batch instead of two), or after a short idle wait.
   */
  readonly #sentOutbox = new Set<string>();
  #sentTimer: TimerId | undefined;
  /** Replies sent (or about to be) on this connection whose receipt has not come yet. */
  readonly #unconfirmed = new Set<string>();

  constructor(options: CompletionOptions) {
    this.#o = options;
  }

  /** Replies sent whose receipt has not come yet. */
  get unconfirmed(): number {
    return this.#unconfirmed.size;
  }

  /**
   * The connection is gone: what it did not confirm comes back, as a redelivery the ledger
   * answers, or (a reply whose message was acknowledged before) from the outbox.
   */
  disconnected(): void {
    this.#unconfirmed.clear();
  }

  /**
   * Group commit: completions that arrive while a batch is being committed go together in
   * the next one, as one store commit and one broker transaction. An idle agent commits
   * each at once; a busy one amortises the store and broker round trips. One answered early
   * resolves when answered; its record waits up to {@linkcode EARLY_RECORD_WAIT_MS} for
   * company (or goes with the next commit started for another).
   */
  enqueue(completion: NewCompletion): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const bytes = recordBytes(completion.sets);
    const early = !this.#o.transactions && answersEarly(completion, bytes);
    const queued: Completion = { ...completion, bytes, early, resolve, reject };
    this.#completions.push(queued);
    if (!early) this.#startCommits();
    else {
      this.#answerSoon(queued);
      if (!this.#committing) this.#recordsDueSoon();
    }
    return promise;
  }

  /** Stores what is waiting now; resolves once nothing is (a clean stop). */
  async drain(): Promise<void> {
    while (this.#completions.length > 0 || this.#committing) {
      this.#startCommits();
      await this.#loop;
    }
  }

  #startCommits(): void {
    this.#o.clock.clearTimeout(this.#recordTimer);
    this.#recordTimer = undefined;
    if (!this.#committing) this.#loop = this.#commitBatches();
  }

  #recordsDueSoon(): void {
    this.#recordTimer ??= this.#o.clock.setTimeout(() => {
      this.#recordTimer = undefined;
      this.#startCommits();
    }, EARLY_RECORD_WAIT_MS);
  }

  /**
   * An early completion: answered at the end of this tick (with the others of this tick, in
   * one write), not after a commit; its record goes in a later one.
   */
  #answerSoon(completion: Completion): void {
    this.#early.push(completion);
    if (this.#early.length > 1) return;
    queueMicrotask(() => {
      const due = this.#early.splice(0).filter((c) => !c.answered);
      this.#answerEarly(due);
    });
  }

  /**
   * Answers early those that can go now; one whose delivery cannot be acknowledged (the link
   * is down, or it came on an earlier connection) keeps its delivery and waits for its record
   * like any other, so that a redelivery meanwhile joins it instead of being handled again.
   */
  #answerEarly(completions: Completion[]): void {
    if (!completions.length) return;
    for (const c of completions) if (c.withReply) this.#unconfirmed.add(c.id);
    const sent = this.#acknowledge(completions, { early: true });
    let waiting = false;
    for (const c of completions) {
      if (sent.has(c.id)) {
        c.answered = true;
        c.resolve();
      } else {
        this.#unconfirmed.delete(c.id);
        waiting = true;
      }
    }
    if (waiting) this.#startCommits(); // answered once stored, so not kept waiting for company
  }

  /**
   * Sends a recorded reply alone (no ACK with it), confirmed by a receipt; not when it is
   * on its way already. Not connected: the next connect's outbox flush sends it.
   */
  #sendReply(id: string, frame: OutgoingFrame | undefined): void {
    if (!frame || !this.#o.transport.connected || this.#unconfirmed.has(id)) return;
    this.#unconfirmed.add(id);
    try {
      this.#o.transport.publish(frame, () => this.#confirmed([id], true));
    } catch {
      this.#unconfirmed.delete(id);
    }
  }

  async #commitBatches(): Promise<void> {
    this.#committing = true;
    try {
      for (let first = true; this.#completions.length > 0; first = false) {
        if (!first && this.#completions.every((c) => c.answered)) {
          // Only records of messages answered already: they wait for company.
          this.#recordsDueSoon();
          break;
        }
        const batch = this.#takeBatch();
        // Awaiting their receipts; claimed before the commit so that an outbox flush does not
        // send those with an outbox entry as well. Not those answered early already: their
        // receipts may have come, and nothing would release them again.
        if (!this.#o.transactions) {
          for (const c of batch) if (c.withReply && !c.answered) this.#unconfirmed.add(c.id);
        }
        const sets = batch.flatMap((c) => c.sets);
        const own = batch.flatMap((c) => c.deletes ?? []);
        const sent = sets.length
          ? this.#takeSent(KV_MUTATIONS - sets.length - own.length).map(outboxKey)
          : [];
        const deletes = [...own, ...sent];
        // Those whose records only serve the ledger are answered now, while their commit runs.
        this.#answerEarly(batch.filter((c) => c.early && !c.answered));
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
            for (const c of batch) if (!c.answered) this.#unconfirmed.delete(c.id);
            const only = batch[0]!;
            if (batch.length > 1 || (!only.answered && (only.shrunk ?? 0) < 2)) {
              this.#completions.unshift(
                ...(batch.length > 1 ? batch : [shrunk(only, error)]).map((c) => ({
                  ...c,
                  split: true,
                })),
              );
              continue;
            }
          }
          // Not recorded, so not acknowledged: the broker redelivers these. Those answered
          // already are done; without their records, only a redelivery after a lost
          // connection could bring them back, and it would be handled once more.
          for (const c of batch.filter((c) => c.answered)) {
            logger.warn(
              "Message {messageId} was answered, but its record could not be stored: {error}",
              { messageId: c.id, error },
            );
            c.resolve();
          }
          for (const c of batch.filter((c) => !c.answered)) {
            this.#unconfirmed.delete(c.id);
            this.#o.deliveries.delete(c.id);
            c.reject(error);
          }
          continue;
        }
        for (const _ of batch) faultPoint("after-commit");
        this.#acknowledge(batch.filter((c) => !c.answered));
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
      const size = this.#completions[n]!.bytes;
      if (n > 0 && bytes + size > BATCH_BYTES) break;
      bytes += size;
      n++;
    }
    return this.#completions.splice(0, n);
  }

  /**
   * ACKs (+ replies) as one batch; returns the ids that went. Not possible on a lost
   * connection (the broker redelivers those); on a new connection, a reply whose delivery came
   * on the old one goes alone. `early`: records not stored yet, so those that cannot go keep
   * their deliveries and are left to the caller.
   */
  #acknowledge(all: Completion[], options: { early?: boolean } = {}): Set<string> {
    const went = new Set<string>();
    // Acknowledged when they were scheduled: only their replies go (the outbox has them).
    for (const c of all.filter((c) => c.acked && c.withReply)) {
      this.#unconfirmed.delete(c.id); // claimed before the commit, so that no flush sent it
      this.#sendReply(c.id, replyFrame(c.done));
    }
    const batch = all.filter((c) => !c.acked);
    const items = batch.map((c) => {
      const delivery = this.#o.deliveries.get(c.id);
      this.#o.deliveries.delete(c.id);
      return { id: c.id, delivery, reply: c.withReply ? replyFrame(c.done) : undefined };
    }).filter((item): item is typeof item & { delivery: Delivery } => item.delivery !== undefined);
    if (!items.length) return went;
    const replied = items.filter((item) => item.reply).map((item) => item.id);
    const sent = this.#o.transport.ackAndSend(
      items,
      this.#o.transactions
        ? { transaction: true }
        : { onSent: () => this.#confirmed(replied, false) },
    );
    items.forEach((item, i) => {
      if (sent[i]) {
        went.add(item.id);
        this.#o.stats.acked++;
        if (item.reply && this.#o.transactions) this.#o.stats.replied++;
        return;
      }
      this.#unconfirmed.delete(item.id);
      if (options.early) {
        this.#o.deliveries.set(item.id, item.delivery);
        return;
      }
      // Its redelivery finds the record, and goes with the recorded reply.
      logger.info(
        "Link lost before message {messageId} was acknowledged; the broker will redeliver it",
        { messageId: item.id },
      );
    });
    return went;
  }

  /** The broker has the replies: their outbox entries (if they have any) go. */
  #confirmed(ids: string[], outbox: boolean): void {
    const done = ids.filter((id) => this.#unconfirmed.delete(id));
    this.#o.stats.replied += done.length;
    if (!done.length || !outbox) return;
    for (const id of done) this.#sentOutbox.add(id);
    this.#sentTimer ??= this.#o.clock.setTimeout(() => {
      this.#sentTimer = undefined;
      void this.clearSentOutbox();
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
  async clearSentOutbox(): Promise<void> {
    this.#o.clock.clearTimeout(this.#sentTimer);
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
  async flushOutbox(): Promise<void> {
    if (this.#o.transactions) return;
    try {
      for await (const { key, value } of this.#o.store.list<OutgoingFrame>(OUTBOX_PREFIX)) {
        const id = String(key[2]);
        if (!this.#sentOutbox.has(id)) this.#sendReply(id, value);
      }
    } catch (error) {
      logger.error("Could not read the reply outbox: {error}", { error });
    }
  }
}

/**
 * Whether a completion's reply and ACK may leave before its records are stored: when the
 * records only serve the ledger. The reply goes before the ACK on the one connection, so a
 * redelivery means the ACK was lost with the connection; the record (if stored by then)
 * makes it a duplicate answered with the recorded reply, and otherwise it is handled once
 * more: a second reply only after a crash or a lost connection, as with any redelivery.
 * Not so for what must not be lost: a processor's own writes (a redelivery after a crash is
 * what completes them), dead letters, a scheduled message's record, and records the store
 * might refuse (a message id or reply so large that the refusal would need another reply).
 */
function answersEarly(c: NewCompletion, bytes: number): boolean {
  if (c.acked || c.split || c.writes?.length || c.deletes?.length) return false;
  if (c.id.length > 512 || bytes >= EARLY_MAX_BYTES) return false;
  return c.sets.every(([key]) => key[1] === "done" || key[1] === "outbox"); // not a dead letter
}

/** Records up to this size go early (Deno KV takes values of 64 KiB). */
const EARLY_MAX_BYTES = 32 * 1024;

/**
 * A completion whose records the store refused even alone: recorded as a bare error reply
 * (no dead letter), so that the message is acknowledged and answered
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
  const sets: StoreSet[] = [[doneKey(c.id), done, c.sets[0]?.[2] ?? {}]];
  const frame = replyFrame(done);
  if (frame && c.acked) sets.push([outboxKey(c.id), frame]);
  // The processor's own state goes along once more (its effects happened); not the last time,
  // in case it is what the store refuses.
  if (level === 1) sets.push(...(c.writes ?? []));
  return {
    ...c,
    done,
    sets,
    bytes: recordBytes(sets),
    withReply: frame !== undefined,
    shrunk: level,
  };
}

/** Roughly what records cost in a store commit. */
function recordBytes(sets: StoreSet[]): number {
  return sets.reduce((sum, [, value]) => sum + approxBytes(value), 0);
}

/** Roughly what a value costs in a store commit (strings may take two bytes a character). */
function approxBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength + 64;
  return 2 * JSON.stringify(value).length + 64;
}

export function replyFrame(done: DoneRecord): OutgoingFrame | undefined {
  if (!done.replyTo) return undefined;
  return {
    destination: done.replyTo,
    headers: replyHeaders(done.correlationId),
    body: JSON.stringify(done.reply),
  };
}

/** Replies are persistent so that a broker restart does not lose them. */
export function replyHeaders(correlationId: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { persistent: "true" };
  if (correlationId) headers["correlation-id"] = correlationId;
  return headers;
}
