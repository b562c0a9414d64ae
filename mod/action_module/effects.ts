/**
 * A run's side-effect records (`ctx.effect`, and a sandboxed processor's effectGet/effectSet):
 * an effect that a previous attempt at the message recorded is not run again, its recorded
 * result is returned instead.
 *
 * Two store round trips per effect are saved on the way:
 * - what earlier attempts recorded is read once, at the run's first effect: a run's first
 *   record is stored after a mark on the message (`effectMark`), so one read of the mark
 *   (batched with other workers' reads) tells that a message has none, the usual case; only a
 *   message with a mark has its records listed;
 * - a record is written behind: the effect's result goes back to the handler while its record
 *   is being stored, and the run's outcome waits for every record ({@linkcode RunEffects.stored}),
 *   so the reply and the ACK never leave before them;
 * - a record goes to the store when the handler looks up its next effect, or at the end of the
 *   task it was made in (a timer of 0 ms), whichever comes first; a run that ends before that
 *   (the usual case for its last effect: the handler returns right after it) takes it along
 *   ({@linkcode RunEffects.takeLast}): it is stored in the commit of the message's own record,
 *   one commit instead of two in a row. A crash before that commit repeats the effect, as a
 *   crash before its own commit would; and once that commit is stored, the message is in the
 *   ledger and its effect records are not read again.
 *
 * Why that keeps "once": records are stored in the order they were made (the store commits
 * in call order), so the store never holds a later effect's record without an earlier one's
 * (unless the store refused the earlier one, which fails the run; the mark is stored apart,
 * so the later ones are still found). A crash before an effect's record is stored repeats
 * that effect on redelivery, which was always the one window (between an effect completing
 * and its record being stored); a later effect that ran meanwhile has no stored record either
 * and is repeated with it, so the two are never out of step. A record the store refuses fails
 * the run (an error reply), as before; an effect started before the refusal was known is not
 * undone.
 */
import { faultPoint } from "../ops/faults.ts";
import type { Store, StoreSet } from "../store/store.ts";

/** How long effect records are kept (a redelivery comes within minutes; 7 days is plenty). */
const EFFECT_TTL_MS = 7 * 24 * 3600_000;

interface EffectRecord {
  result: unknown;
}

const effectPrefix = (messageId: string) => ["actions", "effect", messageId];
/** Stored before a run's first record: "this message has records". */
const effectMark = (messageId: string) => ["actions", "effects_of", messageId];

/** One run's effects on one message (see module doc). */
export class RunEffects {
  readonly #store: Store;
  readonly #messageId: string;
  /** This message's mark key (see module doc). */
  readonly #mark: Deno.KvKey;
  /** The message's records: read once, then kept up to date with this run's own. */
  #recorded: Promise<Map<string, unknown>> | undefined;
  readonly #writes: Promise<void>[] = [];
  /** Records made and not yet sent to the store (see {@linkcode takeLast}). */
  readonly #pending: StoreSet[] = [];
  #marked = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failure: { error: unknown } | undefined;

  constructor(store: Store, messageId: string) {
    this.#store = store;
    this.#messageId = messageId;
    this.#mark = effectMark(messageId);
  }

  /** Runs `fn` unless a previous attempt recorded effect `name`; returns its result. */
  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const recorded = await this.lookup(name);
    if (recorded.found) return recorded.result as T;
    const result = await fn();
    this.record(name, result);
    return result;
  }

  /** The recorded result of effect `name`, if it ran (in this run or an earlier attempt). */
  async lookup(name: string): Promise<{ found: true; result: unknown } | { found: false }> {
    this.#throwIfFailed();
    // The next effect may start now: what was recorded before it goes to the store first.
    this.#issue();
    const recorded = await (this.#recorded ??= this.#read());
    return recorded.has(name) ? { found: true, result: recorded.get(name) } : { found: false };
  }

  /**
   * Records that effect `name` ran, with its (JSON) result. Returns at once; the record is
   * stored behind (see module doc), and {@linkcode stored} waits for it.
   */
  record(name: string, result: unknown): void {
    this.#throwIfFailed();
    const value = result ?? null;
    // (A failed read has failed its lookup already; nothing to keep up to date then.)
    void this.#recorded?.then((recorded) => recorded.set(name, value), () => {});
    const ttl = { ttlMs: EFFECT_TTL_MS };
    // The run's first record comes after the mark (see module doc).
    if (!this.#marked) {
      this.#marked = true;
      this.#pending.push([this.#mark, true, ttl]);
    }
    const key = [...effectPrefix(this.#messageId), name];
    this.#pending.push([key, { result: value } satisfies EffectRecord, ttl]);
    this.#timer ??= setTimeout(() => this.#issue(), 0);
  }

  /**
   * The records not yet on their way to the store, for the commit of the message's own
   * record (see module doc); later records go to the store as usual.
   */
  takeLast(): StoreSet[] {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#pending.splice(0);
  }

  /** Sends the pending records to the store. */
  #issue(): void {
    const records = this.takeLast();
    // Each a call of its own, the mark first (a record the store refuses for its size must not
    // take the mark or another record with it): the store commits in call order, so no record
    // is ever stored without the mark. Usually they all go in the same group commit.
    for (const set of records) {
      const write = this.#store.commit({ set: [set] });
      this.#track(set[0] === this.#mark ? write : write.then(() => faultPoint("after-effect")));
    }
  }

  #track(write: Promise<void>): void {
    this.#writes.push(write.catch((error) => {
      this.#failure ??= { error };
    }));
  }

  /** Records taken by {@linkcode takeLast} that will not go with a reply after all. */
  putBack(records: StoreSet[]): void {
    this.#pending.unshift(...records);
  }

  /** Resolves once every record of this run is stored; rejects if the store refused one. */
  async stored(): Promise<void> {
    this.#issue();
    await Promise.all(this.#writes);
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (!this.#failure) return;
    const error = this.#failure.error;
    throw new Error(
      `an effect's record could not be stored: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }

  async #read(): Promise<Map<string, unknown>> {
    const prefix = effectPrefix(this.#messageId);
    const recorded = new Map<string, unknown>();
    if (!(await this.#store.get(this.#mark))) return recorded;
    for await (const { key, value } of this.#store.list<EffectRecord>(prefix)) {
      const name = key[prefix.length];
      if (key.length === prefix.length + 1 && typeof name === "string") {
        recorded.set(name, value.result);
      }
    }
    return recorded;
  }
}
