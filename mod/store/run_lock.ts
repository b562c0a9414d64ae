/**
 * Which agent runs are alive, for taking over what a crashed run had reserved. Each run
 * holds an OS lock (flock) on a file of its own beside the store for as long as it lives;
 * the kernel drops the lock when the process dies, however it dies. Another run on the
 * same host can then tell a dead holder from a live one at once, instead of waiting for
 * the reservation to expire. Only for a store file: a remote store (KV Connect) or an
 * in-memory one has no folder to share, and reservations there simply expire.
 */
import { dirname, join } from "node:path";

/** Who holds a reservation. */
export interface RunRef {
  host: string;
  run: string;
}

export class RunLock {
  readonly ref: RunRef;
  readonly #dir: string;
  readonly #file: Deno.FsFile;

  private constructor(ref: RunRef, dir: string, file: Deno.FsFile) {
    this.ref = ref;
    this.#dir = dir;
    this.#file = file;
  }

  /** Takes this run's lock beside `storePath`; undefined where there is no such folder. */
  static async acquire(storePath: string): Promise<RunLock | undefined> {
    if (storePath === ":memory:" || /^https?:/.test(storePath)) return undefined;
    const dir = join(dirname(storePath), ".agent-runs");
    const ref = { host: Deno.hostname(), run: crypto.randomUUID() };
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = await Deno.open(join(dir, `${ref.run}.lock`), {
      create: true,
      write: true,
      mode: 0o600,
    });
    await file.lock(true);
    return new RunLock(ref, dir, file);
  }

  /**
   * Whether `holder` is a run on this host that is no longer alive (its lock file gone or
   * no longer locked). Runs on other hosts are never judged: their reservations expire.
   */
  async isDead(holder: RunRef | undefined): Promise<boolean> {
    if (!holder?.run || holder.host !== this.ref.host || holder.run === this.ref.run) return false;
    if (!/^[0-9a-f-]{36}$/.test(holder.run)) return false;
    const path = join(this.#dir, `${holder.run}.lock`);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { write: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return true;
      throw error;
    }
    try {
      if (!(await file.tryLock(true))) return false;
      await Deno.remove(path).catch(() => {});
      return true;
    } finally {
      file.close();
    }
  }

  /** Ends this run's lock (a clean stop). */
  async release(): Promise<void> {
    try {
      this.#file.close();
    } catch {
      // already closed
    }
    await Deno.remove(join(this.#dir, `${this.ref.run}.lock`)).catch(() => {});
  }
}
