/**
 * Runs tasks on at most N workers while keeping tasks with the same key in arrival order
 * (two messages for one task are handled one after the other; different tasks run at once).
 */
export class KeyedQueue {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #tails = new Map<string, Promise<void>>();
  #pending = 0;
  #idle = Promise.withResolvers<void>();

  constructor(workers: number) {
    this.#limit = Math.max(1, workers);
    this.#idle.resolve();
  }

  /** Tasks queued or running. */
  get size(): number {
    return this.#pending;
  }

  /**
   * Queues `task` behind earlier tasks with the same key. `beforeSlot` runs in key order
   * without holding a worker (waits such as defer). A task may hand its worker back before
   * it ends (`freeWorker`): its key stays taken until it ends (bookkeeping after the work).
   */
  push(
    key: string,
    task: (freeWorker: () => void) => Promise<void>,
    beforeSlot?: () => Promise<void>,
  ): Promise<void> {
    if (this.#pending++ === 0) this.#idle = Promise.withResolvers<void>();
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const run = previous.then(async () => {
      if (beforeSlot) await beforeSlot().catch(() => {});
      await this.#acquire();
      let holding = true;
      const freeWorker = () => {
        if (holding) this.#release();
        holding = false;
      };
      try {
        await task(freeWorker);
      } finally {
        freeWorker();
      }
    });
    const tail = run.catch(() => {});
    this.#tails.set(key, tail);
    return tail.finally(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
      if (--this.#pending === 0) this.#idle.resolve();
    });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    return this.#idle.promise;
  }

  #acquire(): Promise<void> {
    if (this.#running < this.#limit) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }
}
