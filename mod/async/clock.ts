/**
 * Time as the action core sees it: the wall clock for due times and records, timers for
 * debounce, defer and short waits. Production uses {@linkcode realClock}; unit tests pass a
 * clock they move by hand (tests/support/fake_clock.ts), so a 5-second debounce is tested in
 * microseconds.
 */

/** A timer handle (what the clock's setTimeout returned). */
export type TimerId = ReturnType<typeof setTimeout>;

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId | undefined): void;
}

/** The real clock and timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
};
