/**
 * One restart loop for the services (`agent run`'s, and `agent calendar` / `agent actions`): run a service until the signal aborts, and
 * after a failure start it again after a growing delay (back to the first once it started).
 */
import { abortableSleep } from "./delay.ts";

/** The delays between a service's attempts to start (the platform unreachable, say). */
export const SERVICE_BACKOFF_MS: readonly number[] = [1_000, 2_000, 5_000, 15_000, 30_000, 60_000];

export async function supervise(options: {
  signal: AbortSignal;
  /** Delays between attempts; the last repeats. */
  delaysMs: readonly number[];
  /** Runs the service once; calls `started()` when it is up, resolves when it stops. */
  run: (started: () => void) => Promise<void>;
  /** Hears each failure and the wait before the next attempt (state, log). */
  onFailure: (error: unknown, waitMs: number) => void;
  /** A failure that ends the loop instead (rethrown); default none. */
  stop?: (error: unknown) => boolean;
}): Promise<void> {
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      await options.run(() => (failures = 0));
    } catch (error) {
      if (options.signal.aborted) break;
      if (options.stop?.(error)) throw error;
      const waitMs = options.delaysMs[Math.min(failures++, options.delaysMs.length - 1)]!;
      options.onFailure(error, waitMs);
      await abortableSleep(waitMs, options.signal).catch(() => {});
    }
  }
}

/**
 * Runs every step in turn, each even when one before it failed: a failure in one step does
 * not keep the others from their turn. The first failure is thrown afterwards (an abort at
 * once).
 */
export async function everyStep(
  steps: (() => Promise<unknown>)[],
  signal?: AbortSignal,
): Promise<void> {
  let failed: { error: unknown } | undefined;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      if (signal?.aborted) throw error;
      failed ??= { error };
    }
  }
  if (failed) throw failed.error;
}
