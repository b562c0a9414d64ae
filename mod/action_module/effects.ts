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
 *   so the reply and the ACK never leave before them.
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
import type { Store } from "../store/store.ts";

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
  /** The message's records: read once, then kept up to date with this run's own. */
  #recorded: Promise<Map<string, unknown>> | undefined;
  readonly #writes: Promise<void>[] = [];
  #failure: { error: unknown } | undefined;

  constructor(store: Store, messageId: string) {
    this.#store = store;
    this.#messageId = messageId;
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
    const recorded = await (this.#recorded ??= this.#read());
    return recorded.has(name) ? { found: true, result: recorded.get(name) } : { found: false };
  }

  /**
   * Records that effect `name` ran, with its (JSON) result. Returns at once; the record is
   * stored behind, and {@linkcode stored} waits for it.
   */
  record(name: string, result: unknown): void {
    this.#throwIfFailed();
    const value = result ?? null;
    // (A failed read has failed its lookup already; nothing to keep up to date then.)
    void this.#recorded?.then((recorded) => recorded.set(name, value), () => {});
    const ttl = { ttlMs: EFFECT_TTL_MS };
    // Before the run's first record, as a call of its own (a record the store refuses for
    // its size must not take the mark with it): the store commits in call order, so no
    // record is ever stored without it. Usually both go in the same group commit.
    if (this.#writes.length === 0) {
      this.#track(this.#store.commit({ set: [[effectMark(this.#messageId), true, ttl]] }));
    }
    const key = [...effectPrefix(this.#messageId), name];
    this.#track(
      this.#store.commit({ set: [[key, { result: value } satisfies EffectRecord, ttl]] })
        .then(() => faultPoint("after-effect")),
    );
  }

  #track(write: Promise<void>): void {
    this.#writes.push(write.catch((error) => {
      this.#failure ??= { error };
    }));
  }

  /** Resolves once every record of this run is stored; rejects if the store refused one. */
  async stored(): Promise<void> {
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
    if (!(await this.#store.get(effectMark(this.#messageId)))) return recorded;
    for await (const { key, value } of this.#store.list<EffectRecord>(prefix)) {
      const name = key[prefix.length];
      if (key.length === prefix.length + 1 && typeof name === "string") {
        recorded.set(name, value.result);
      }
    }
    return recorded;
  }
}
