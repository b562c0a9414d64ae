/**
 * The plugin host: runs each plugin in its own Worker with only the permissions its INI
 * section grants (`allow_net` hosts, `allow_read` paths; nothing else), a time limit, and
 * Deno.exit turned into an error. A plugin that throws, hangs, exits or reaches for an
 * undeclared host fails alone. The Worker is made from a blob, so the host works the same
 * from source, from the bundled single file and from the compiled binary.
 */
import { log } from "../log/log.ts";
import type { TicketInfo } from "./plugin.ts";

/** What to run: a module file (user plugins) or a self-contained function (built-ins). */
export type PluginSource = { kind: "file"; path: string } | {
  kind: "function";
  fn: (...args: never[]) => unknown;
};

/** One plugin to run. */
export interface PluginJob {
  name: string;
  source: PluginSource;
  config: Record<string, string>;
  /** Hosts it may reach ("host" or "host:port"). */
  allowNet: string[];
  /** Paths it may read (besides its own module file). */
  allowRead: string[];
  timeoutMs: number;
}

/** How a plugin ended. */
export type PluginOutcome =
  | { name: string; ok: true; text: string | null; ms: number }
  | { name: string; ok: false; error: string; ms: number };

/** The Worker's code: self-contained, serialized into a blob module. */
function pluginHost(): void {
  // A plugin must not end the run for everyone.
  Object.defineProperty(Deno, "exit", {
    value: (code?: number) => {
      throw new Error(`called Deno.exit(${code ?? 0}); plugins return their result instead`);
    },
  });
  const scope = self as unknown as Worker;
  const post = (message: unknown) => scope.postMessage(message);
  scope.onmessage = async (event: MessageEvent) => {
    const { moduleUrl, source, ticketInfo, config } = event.data as {
      moduleUrl?: string;
      source?: string;
      ticketInfo: unknown;
      config: Record<string, string>;
    };
    const logger = Object.fromEntries(
      ["debug", "info", "warn", "error"].map((
        level,
      ) => [level, (message: unknown) => post({ kind: "log", level, message: String(message) })]),
    );
    try {
      const url = moduleUrl ??
        URL.createObjectURL(new Blob([source!], { type: "application/javascript" }));
      const mod = await import(url);
      const fn = mod.getData ?? mod.get_data ?? mod.default?.getData ?? mod.default;
      if (typeof fn !== "function") throw new Error("the module exports no getData function");
      const result = await fn(ticketInfo, logger, config);
      post({
        kind: "result",
        text: result === null || result === undefined || result === "" ? null : String(result),
      });
    } catch (error) {
      post({ kind: "error", error: error instanceof Error ? error.message : String(error) });
    }
  };
}

let hostUrl: string | undefined;
const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/**
 * Runs every job at once; resolves when all have finished, failed or timed out.
 *
 * Memory guard: Workers have no heap limit of their own and memory cannot be traced to one,
 * so while plugins run the host watches the process's resident memory; past `maxMemoryMb`
 * it stops the plugins still running (their reason says so) instead of letting the process
 * die, and keeps the results already in.
 */
export async function runPlugins(
  jobs: PluginJob[],
  ticketInfo: TicketInfo,
  options: { maxMemoryMb?: number; checkEveryMs?: number } = {},
): Promise<PluginOutcome[]> {
  hostUrl ??= URL.createObjectURL(
    new Blob([`(${pluginHost.toString()})();`], { type: "application/javascript" }),
  );
  const limit = (options.maxMemoryMb ?? 1024) * 1024 * 1024;
  const running = jobs.map((job) => runOne(job, ticketInfo, hostUrl!));
  const guard = setInterval(() => {
    const rss = Deno.memoryUsage().rss;
    if (rss <= limit) return;
    const mb = Math.round(rss / 1024 / 1024);
    for (const run of running) {
      run.stop(
        `stopped by the memory guard: the agent used ${mb} MB (max_memory_mb ${
          options.maxMemoryMb ?? 1024
        })`,
      );
    }
  }, options.checkEveryMs ?? 50);
  try {
    return await Promise.all(running.map((run) => run.outcome));
  } finally {
    clearInterval(guard);
  }
}

/** A started plugin: its outcome, and a way to stop it with a reason. */
interface RunningPlugin {
  outcome: Promise<PluginOutcome>;
  stop(reason: string): void;
}

function runOne(job: PluginJob, ticketInfo: TicketInfo, host: string): RunningPlugin {
  const logger = log("enrich", job.name);
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const read = [...job.allowRead];
  let message: Record<string, unknown>;
  if (job.source.kind === "file") {
    read.push(job.source.path);
    message = { moduleUrl: new URL(`file://${job.source.path}`).href };
  } else {
    message = { source: `export const getData = ${job.source.fn.toString()};` };
  }
  let worker: Worker;
  try {
    worker = new Worker(host, {
      type: "module",
      name: `plugin ${job.name}`,
      deno: {
        permissions: {
          net: job.allowNet.length ? job.allowNet : false,
          read: read.length ? read : false,
          write: false,
          env: false,
          run: false,
          ffi: false,
          sys: false,
          import: false,
        },
      },
    } as WorkerOptions);
  } catch (error) {
    const outcome: PluginOutcome = {
      name: job.name,
      ok: false,
      error: `cannot start: ${(error as Error).message}`,
      ms: ms(),
    };
    return { outcome: Promise.resolve(outcome), stop: () => {} };
  }
  let stop: (reason: string) => void = () => {};
  const outcome = new Promise<PluginOutcome>((resolve) => {
    let done = false;
    const finish = (outcome: PluginOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      worker.terminate();
      resolve(outcome);
    };
    stop = (reason) => finish({ name: job.name, ok: false, error: reason, ms: ms() });
    const timer = setTimeout(
      () =>
        finish({
          name: job.name,
          ok: false,
          error: `did not finish within ${job.timeoutMs / 1000} s`,
          ms: ms(),
        }),
      job.timeoutMs,
    );
    worker.onmessage = (event: MessageEvent) => {
      const data = event.data as {
        kind: string;
        level?: string;
        message?: string;
        text?: string | null;
        error?: string;
      };
      if (data.kind === "log") {
        const level = LOG_LEVELS.find((l) => l === data.level) ?? "info";
        logger[level]("{message}", { message: data.message });
      } else if (data.kind === "result") {
        finish({ name: job.name, ok: true, text: data.text ?? null, ms: ms() });
      } else {
        finish({ name: job.name, ok: false, error: data.error ?? "failed", ms: ms() });
      }
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      finish({ name: job.name, ok: false, error: event.message, ms: ms() });
    };
    worker.postMessage({ ...message, ticketInfo, config: job.config });
  });
  return { outcome, stop: (reason) => stop(reason) };
}
