/** Shared shapes and helpers for the benchmarks. */

/** One benchmark's figures. */
export interface BenchResult {
  name: string;
  /** Figures by name, with units in the name (`median_ms`, `msgs_per_s`). */
  figures: Record<string, number>;
  /** Targets the issues set, and whether this run met them. */
  targets?: Record<string, { target: string; met: boolean }>;
  notes?: string[];
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
