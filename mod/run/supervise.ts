/**
 * One restart loop for `agent run`'s services: run a service until the signal aborts, and
 * after a failure start it again after a growing delay (back to the first once it started).
 */
import { abortableSleep } from "../stomp/link.ts";

export async function supervise(options: {
  signal: AbortSignal;
  /** Delays between attempts; the last repeats. */
  delaysMs: readonly number[];
  /** Runs the service once; calls `started()` when it is up, resolves when it stops. */
  run: (started: () => void) => Promise<void>;
  /** Hears each failure and the wait before the next attempt (state, log). */
  onFailure: (error: unknown, waitMs: number) => void;
}): Promise<void> {
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      await options.run(() => (failures = 0));
    } catch (error) {
      if (options.signal.aborted) break;
      const waitMs = options.delaysMs[Math.min(failures++, options.delaysMs.length - 1)]!;
      options.onFailure(error, waitMs);
      await abortableSleep(waitMs, options.signal).catch(() => {});
    }
  }
}
