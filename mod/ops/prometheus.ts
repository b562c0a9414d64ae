/** Prometheus text exposition format (version 0.0.4): counters, gauges and histograms. */

/** One metric family. */
export type Family =
  | {
    name: string;
    help: string;
    type: "counter" | "gauge";
    samples: { labels?: Record<string, string>; value: number }[];
  }
  | { name: string; help: string; type: "histogram"; histogram: HistogramSnapshot };

export interface HistogramSnapshot {
  /** Upper bounds, ascending (without +Inf). */
  bounds: number[];
  /** Observations <= each bound (cumulative), then the total count. */
  cumulative: number[];
  sum: number;
  count: number;
}

/** A fixed-bucket histogram. */
export class Histogram {
  readonly #bounds: number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: number[]) {
    this.#bounds = [...bounds].sort((a, b) => a - b);
    this.#counts = this.#bounds.map(() => 0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    const i = this.#bounds.findIndex((b) => value <= b);
    if (i >= 0) this.#counts[i]!++;
  }

  snapshot(): HistogramSnapshot {
    let running = 0;
    return {
      bounds: this.#bounds,
      cumulative: this.#counts.map((c) => (running += c)),
      sum: this.#sum,
      count: this.#count,
    };
  }
}

/** A gauge with one unlabelled sample. */
export function gauge(name: string, help: string, value: number): Family {
  return { name, help, type: "gauge", samples: [{ value }] };
}

/** Renders metric families as the text format. */
export function render(families: Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === "histogram") {
      const h = f.histogram;
      h.bounds.forEach((b, i) => lines.push(`${f.name}_bucket{le="${b}"} ${h.cumulative[i]}`));
      lines.push(`${f.name}_bucket{le="+Inf"} ${h.count}`);
      lines.push(`${f.name}_sum ${round(h.sum)}`, `${f.name}_count ${h.count}`);
      continue;
    }
    for (const s of f.samples) lines.push(`${f.name}${labels(s.labels)} ${round(s.value)}`);
  }
  return lines.join("\n") + "\n";
}

function labels(values: Record<string, string> | undefined): string {
  const entries = Object.entries(values ?? {});
  if (!entries.length) return "";
  const escape = (v: string) =>
    v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
  return `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`;
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(6).replace(/0+$/, "");
}
