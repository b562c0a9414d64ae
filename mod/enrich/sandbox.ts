/**
 * Runs enrichment plugins, each in its own sandbox (mod/sandbox/sandbox.ts) with the
 * permissions its INI section grants and its own time limit. A plugin that throws, hangs,
 * exits or reaches for an undeclared host fails alone.
 */
import { log } from "../log/log.ts";
import { type ModuleSource, Sandbox, sandboxIsolation } from "../sandbox/sandbox.ts";
import type { TicketInfo } from "./plugin.ts";
import { runPython } from "./python.ts";

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
  const limit = (options.maxMemoryMb ?? 1024) * 1024 * 1024;
  const stops = jobs.map(() => new AbortController());
  const running = jobs.map((job, i) => runOne(job, ticketInfo, stops[i]!.signal));
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
}

async function runOne(
  job: PluginJob,
  ticketInfo: TicketInfo,
  stop: AbortSignal,
): Promise<PluginOutcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const timedOut = AbortSignal.timeout(job.timeoutMs);
  const signal = AbortSignal.any([stop, timedOut]);
  let sandbox: Sandbox | undefined;
  try {
    if (job.source.kind === "python") {
      const text = await runPython(
        {
          name: job.name,
          path: job.source.path,
          python: job.source.interpreter,
          timeoutMs: job.timeoutMs,
          maxMemoryMb: job.maxMemoryMb,
        },
        ticketInfo,
        log("enrich", job.name),
        signal,
      );
      return { name: job.name, ok: true, text, ms: ms() };
    }
    const starting = Sandbox.start({
      name: job.name,
      source: job.source,
      kind: "plugin",
      allowNet: job.allowNet,
      allowRead: job.allowRead,
      maxMemoryMb: job.maxMemoryMb,
      logger: log("enrich", job.name),
      signal,
    });
    sandbox = (await starting).sandbox;
    const text = await sandbox.call({ ticketInfo, config: job.config }, { signal });
    return { name: job.name, ok: true, text: (text as string | null) ?? null, ms: ms() };
  } catch (error) {
    const message = timedOut.aborted
      ? `did not finish within ${job.timeoutMs / 1000} s`
      : (error as Error).message;
    return { name: job.name, ok: false, error: message, ms: ms() };
  } finally {
    sandbox?.terminate("finished");
  }
}
