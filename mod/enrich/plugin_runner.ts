/**
 * Runs enrichment plugins, each in its own sandbox (mod/sandbox/sandbox.ts) with the
 * permissions its INI section grants and its own time limit. A plugin that throws, hangs,
 * exits or reaches for an undeclared host fails alone.
 */
import { log } from "../log/log.ts";
import { type ModuleSource, Sandbox, sandboxIsolation } from "../sandbox/sandbox.ts";
import type { TicketInfo } from "./plugin.ts";
import { type StartedPython, startPython } from "./python.ts";

/** What to run: a module file (user plugins) or a self-contained function (built-ins). */
export type PluginSource = ModuleSource;

/** One plugin to run. */
export interface PluginJob {
  name: string;
  /** A JavaScript/TypeScript module or a built-in, in a sandbox; or a Python integration. */
  source: PluginSource | { kind: "python"; path: string; interpreter: string };
  config: Record<string, string>;
  /** Hosts it may reach ("host" or "host:port"). */
  allowNet: string[];
  /** Paths it may read (besides its own module file). */
  allowRead: string[];
  timeoutMs: number;
  /** Memory its sandbox may use, MB. */
  maxMemoryMb?: number | undefined;
}

/** How a plugin ended. */
export type PluginOutcome =
  | { name: string; ok: true; text: string | null; ms: number }
  | { name: string; ok: false; error: string; ms: number };

/** A JavaScript plugin's sandbox with its job's grants, its module loaded. */
export async function startSandbox(
  job: PluginJob & { source: PluginSource },
  signal?: AbortSignal,
): Promise<Sandbox> {
  const { sandbox } = await Sandbox.start({
    name: job.name,
    source: job.source,
    kind: "plugin",
    allowNet: job.allowNet,
    allowRead: job.allowRead,
    maxMemoryMb: job.maxMemoryMb,
    logger: log("enrich", job.name),
    ...(signal ? { signal } : {}),
  });
  return sandbox;
}

/** Plugins started ahead of the ticket (see {@linkcode startPlugins}). */
export interface StartedPlugins {
  /** Runs them all on the ticket; each job's time limit counts from here. */
  run(
    ticketInfo: TicketInfo,
    options?: { maxMemoryMb?: number; checkEveryMs?: number },
  ): Promise<PluginOutcome[]>;
  /** Stops them without running (a run that turned out to have nothing to do). */
  close(): void;
}

/** One plugin on its way up: a sandbox loading its module, or a Python process importing it. */
type Preparing =
  | { kind: "sandbox"; ready: Promise<Sandbox>; cancel: AbortController }
  | { kind: "python"; started: StartedPython };

/**
 * Starts every job's sandbox (or Python process) at once, before the ticket is there: the
 * modules load while the ticket is fetched, so the plugins' start-up is not added to the
 * time the trigger takes.
 */
export function startPlugins(jobs: PluginJob[]): StartedPlugins {
  const preparing: Preparing[] = jobs.map((job) => {
    if (job.source.kind === "python") {
      return {
        kind: "python",
        started: startPython({
          name: job.name,
          path: job.source.path,
          python: job.source.interpreter,
          maxMemoryMb: job.maxMemoryMb,
        }, log("enrich", job.name)),
      };
    }
    const cancel = new AbortController();
    const ready = startSandbox({ ...job, source: job.source }, cancel.signal);
    ready.catch(() => {}); // reported when run
    return { kind: "sandbox", ready, cancel };
  });
  const close = () => {
    for (const p of preparing) {
      if (p.kind === "python") p.started.kill();
      else {
        p.cancel.abort(new Error("not needed"));
        p.ready.then((s) => s.terminate("not needed"), () => {});
      }
    }
  };
  return {
    close,
    async run(ticketInfo, options = {}) {
      const limit = (options.maxMemoryMb ?? 1024) * 1024 * 1024;
      const stops = jobs.map(() => new AbortController());
      const running = jobs.map((job, i) =>
        runOne(job, preparing[i]!, ticketInfo, stops[i]!.signal)
      );
      const guard = sandboxIsolation() === "process" ? undefined : setInterval(() => {
        const rss = Deno.memoryUsage().rss;
        if (rss <= limit) return;
        const mb = Math.round(rss / 1024 / 1024);
        const reason = new Error(
          `stopped by the memory guard: the agent used ${mb} MB (max_memory_mb ${
            options.maxMemoryMb ?? 1024
          })`,
        );
        for (const stop of stops) stop.abort(reason);
      }, options.checkEveryMs ?? 50);
      try {
        return await Promise.all(running);
      } finally {
        clearInterval(guard);
      }
    },
  };
}

/**
 * Runs every job at once; resolves when all have finished, failed or timed out.
 *
 * Memory: a sandbox process is held to its job's `maxMemoryMb` (mod/sandbox). Workers (where
 * sandboxes cannot be processes) have no heap limit of their own and memory cannot be traced
 * to one, so there the host watches the agent's resident memory; past `maxMemoryMb` it stops
 * the plugins still running (their reason says so) instead of letting the process die, and
 * keeps the results already in.
 */
export async function runPlugins(
  jobs: PluginJob[],
  ticketInfo: TicketInfo,
  options: { maxMemoryMb?: number; checkEveryMs?: number } = {},
): Promise<PluginOutcome[]> {
  return await startPlugins(jobs).run(ticketInfo, options);
}

async function runOne(
  job: PluginJob,
  preparing: Preparing,
  ticketInfo: TicketInfo,
  stop: AbortSignal,
): Promise<PluginOutcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const timedOut = AbortSignal.timeout(job.timeoutMs);
  const signal = AbortSignal.any([stop, timedOut]);
  try {
    if (preparing.kind === "python") {
      const text = await preparing.started.answer(ticketInfo, signal);
      return { name: job.name, ok: true, text, ms: ms() };
    }
    const onAbort = () => preparing.cancel.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let sandbox: Sandbox;
    try {
      sandbox = await preparing.ready;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    const text = await sandbox.call({ ticketInfo, config: job.config }, { signal });
    return { name: job.name, ok: true, text: (text as string | null) ?? null, ms: ms() };
  } catch (error) {
    const message = timedOut.aborted
      ? `did not finish within ${job.timeoutMs / 1000} s`
      : (error as Error).message;
    return { name: job.name, ok: false, error: message, ms: ms() };
  } finally {
    // Also a sandbox that finished loading only after this run gave up on it.
    if (preparing.kind === "sandbox") {
      preparing.ready.then((s) => s.terminate("finished"), () => {});
    }
  }
}
