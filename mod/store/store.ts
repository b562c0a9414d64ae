/**
 * The agent's one store, over Deno KV: exactly-once claims, records with an explicit
 * expiry (KV's own `expireIn` is lazy: expired keys stay readable for a while), atomic
 * batches, prefix listing, tokens and cursors. Several processes may share one file:
 * SQLite's `database is locked` is retried.
 *
 * Writes are group-committed: `set`, `delete` and `commit` calls made in one synchronous
 * stretch, or while a write is in flight, go together in the next atomic commit (each call
 * resolves once its writes are stored), so ten workers each recording an effect cost one
 * SQLite transaction, not ten.
 * A group the store refuses (too large for one commit) is retried call by call, so one
 * caller's oversized value fails that caller only. Reads likewise: `get` calls made in one
 * synchronous stretch, or while a read is in flight, go together in one read (up to 10 keys,
 * Deno KV's limit per read).
 */
import { log } from "../log/log.ts";

export type StoreKey = Deno.KvKey;

interface Envelope<T> {
  v: T;
  /** Expiry, epoch ms; absent = never. */
  exp?: number;
}

/** Options for writes. */
export interface WriteOptions {
  /** The record counts as absent after this many milliseconds. */
  ttlMs?: number | undefined;
}

/** One write of a {@linkcode Store.commit}: key, value and options. */
export type StoreSet = [StoreKey, unknown, WriteOptions?];

const LOCK_RETRIES = 50;
/** Deno KV takes up to 1000 mutations in one atomic commit. */
const MAX_GROUP_MUTATIONS = 1000;
/** Calls grouped into one commit at most (keeps a group well below KV's 800 KiB). */
const MAX_GROUP_CALLS = 64;

/** Keys Deno KV reads in one `getMany`. */
const MAX_GROUP_READS = 10;

/** One `get`, waiting for a group read. */
interface Read {
  key: StoreKey;
  resolve(entry: Envelope<unknown> | null): void;
  reject(error: unknown): void;
}

/** One call's writes, waiting for a group commit. */
interface Write {
  set: [StoreKey, Envelope<unknown>, { expireIn?: number }][];
  delete: StoreKey[];
  resolve(): void;
  reject(error: unknown): void;
}
const logger = log("store");

/** A key/value store with exactly-once claims (see module doc). */
export class Store {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;
  readonly #writes: Write[] = [];
  #writing = false;
  readonly #reads: Read[] = [];
  #reading = false;

  private constructor(kv: Deno.Kv, now: () => number) {
    this.#kv = kv;
    this.#now = now;
  }

  /**
   * Opens the store: a file path, ":memory:" (tests), or a KV Connect URL (a remote store
   * shared by agents on several hosts; the token comes from DENO_KV_ACCESS_TOKEN).
   */
  static async open(path: string, options: { now?: () => number } = {}): Promise<Store> {
    let kv: Deno.Kv;
    try {
      kv = await withLockRetry(() => Deno.openKv(path));
    } catch (error) {
      throw new Error(`Cannot open the store "${path}": ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (path !== ":memory:" && !/^https?:/.test(path)) {
      // It holds tokens: readable by the agent's user only.
      await Deno.chmod(path, 0o600).catch(() => {});
    }
    return new Store(kv, options.now ?? Date.now);
  }

  /**
   * Claims `key` exactly once: true for the one caller (in any process sharing the store)
   * that created it, false when it exists and has not expired.
   */
  async claim(
    key: StoreKey,
    value: unknown = true,
    options: WriteOptions & {
      /** Takes over a live claim whose holder this judges gone (a crashed run). */
      takeOver?: (holder: unknown) => Promise<boolean>;
    } = {},
  ): Promise<boolean> {
    for (;;) {
      const current = await this.#getEntry(key);
      const live = current.value !== null && !this.#expired(current.value);
      if (live && !(await options.takeOver?.(current.value!.v))) return false;
      const result = await withLockRetry(() =>
        this.#kv.atomic()
          .check({ key, versionstamp: current.versionstamp })
          .set(key, this.#wrap(value, options))
          .commit()
      );
      if (result.ok) return true;
      // Someone else wrote between our read and commit: look again.
    }
  }

  async get<T>(key: StoreKey): Promise<T | undefined> {
    const value = await this.#read(key) as Envelope<T> | null;
    if (value === null || this.#expired(value)) return undefined;
    return value.v;
  }

  set(key: StoreKey, value: unknown, options: WriteOptions = {}): Promise<void> {
    return this.#write([[key, this.#wrap(value, options), kvExpiry(options)]], []);
  }

  delete(key: StoreKey): Promise<void> {
    return this.#write([], [key]);
  }

  /** Live records under `prefix`, in key order (only those after the key `after`). */
  async *list<T>(
    prefix: StoreKey,
    options: { limit?: number; after?: StoreKey | undefined } = {},
  ): AsyncGenerator<{ key: StoreKey; value: T }> {
    let count = 0;
    const after = options.after;
    const iter = this.#kv.list<Envelope<T>>(
      after ? { prefix, start: after } : { prefix },
      { batchSize: 500 },
    );
    for await (const entry of iter) {
      if (this.#expired(entry.value)) continue;
      if (after && sameKey(entry.key, after)) continue;
      yield { key: entry.key, value: entry.value.v };
      if (options.limit !== undefined && ++count >= options.limit) return;
    }
  }

  async count(prefix: StoreKey): Promise<number> {
    let n = 0;
    for await (const _ of this.list(prefix)) n++;
    return n;
  }

  /** Several writes and deletes that happen together or not at all. */
  commit(
    ops: { set?: StoreSet[]; delete?: StoreKey[] },
  ): Promise<void> {
    return this.#write(
      (ops.set ?? []).map(([key, value, options = {}]) => [
        key,
        this.#wrap(value, options),
        kvExpiry(options),
      ]),
      ops.delete ?? [],
    );
  }

  /** Queues one key for the next group read (see module doc). */
  #read(key: StoreKey): Promise<Envelope<unknown> | null> {
    const { promise, resolve, reject } = Promise.withResolvers<Envelope<unknown> | null>();
    this.#reads.push({ key, resolve, reject });
    if (!this.#reading) {
      // Started once the caller's synchronous code is done: its reads go in one group.
      this.#reading = true;
      queueMicrotask(() => void this.#readGroups());
    }
    return promise;
  }

  async #readGroups(): Promise<void> {
    try {
      while (this.#reads.length) {
        const group = this.#reads.splice(0, MAX_GROUP_READS);
        try {
          const entries = await withLockRetry(() =>
            this.#kv.getMany<Envelope<unknown>[]>(group.map((r) => r.key))
          );
          group.forEach((r, i) => r.resolve(entries[i]!.value));
        } catch (error) {
          for (const r of group) r.reject(error);
        }
      }
    } finally {
      this.#reading = false;
    }
  }

  /** Queues one call's writes for the next group commit (see module doc). */
  #write(set: Write["set"], deletes: StoreKey[]): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#writes.push({ set, delete: deletes, resolve, reject });
    if (!this.#writing) {
      // Started once the caller's synchronous code is done: its writes go in one commit.
      this.#writing = true;
      queueMicrotask(() => void this.#commitGroups());
    }
    return promise;
  }

  async #commitGroups(): Promise<void> {
    try {
      while (this.#writes.length) {
        let mutations = 0;
        let n = 0;
        while (n < this.#writes.length && n < MAX_GROUP_CALLS) {
          const size = this.#writes[n]!.set.length + this.#writes[n]!.delete.length;
          if (n > 0 && mutations + size > MAX_GROUP_MUTATIONS) break;
          mutations += size;
          n++;
        }
        const group = this.#writes.splice(0, n);
        try {
          await this.#commitAll(group);
          for (const w of group) w.resolve();
        } catch (error) {
          if (group.length === 1 || !(error instanceof TypeError)) {
            for (const w of group) w.reject(error);
            continue;
          }
          // Refused as a whole (too large): each call on its own, so only the culprit fails.
          for (const w of group) {
            await this.#commitAll([w]).then(() => w.resolve(), (e) => w.reject(e));
          }
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  #commitAll(group: Write[]): Promise<void> {
    return withLockRetry(async () => {
      const tx = this.#kv.atomic();
      for (const w of group) {
        for (const [key, value, expiry] of w.set) tx.set(key, value, expiry);
        for (const key of w.delete) tx.delete(key);
      }
      const result = await tx.commit();
      if (!result.ok) throw new Error("store commit failed");
    });
  }

  close(): void {
    try {
      this.#kv.close();
    } catch {
      // already closed
    }
  }

  #wrap(value: unknown, options: WriteOptions): Envelope<unknown> {
    return options.ttlMs === undefined
      ? { v: value }
      : { v: value, exp: this.#now() + options.ttlMs };
  }

  #expired(envelope: Envelope<unknown>): boolean {
    return envelope.exp !== undefined && envelope.exp <= this.#now();
  }

  #getEntry<T>(key: StoreKey): Promise<Deno.KvEntryMaybe<Envelope<T>>> {
    return withLockRetry(() => this.#kv.get<Envelope<T>>(key));
  }
}

/** KV's lazy expiry still reclaims space eventually; keep records a bit past our own expiry. */
function kvExpiry(options: WriteOptions): { expireIn?: number } {
  return options.ttlMs === undefined ? {} : { expireIn: options.ttlMs + 60_000 };
}

async function withLockRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const locked = error instanceof Error &&
        /database is locked|SQLITE_BUSY/i.test(error.message);
      if (!locked || attempt >= LOCK_RETRIES) throw error;
      if (attempt === 5) logger.debug("Store is busy (another process holds the lock); retrying");
      await new Promise((r) =>
        setTimeout(r, Math.min(200, 5 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()))
      );
    }
  }
}

function sameKey(a: Deno.KvKey, b: Deno.KvKey): boolean {
  return a.length === b.length && a.every((part, i) => part === b[i]);
}
