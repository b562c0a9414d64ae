/**
 * The one sandbox for code that users bring: enrichment plugins and custom action
 * processors. Each runs with only the permissions its INI section grants (`allow_net`
 * hosts, `allow_read` paths; no env, run, ffi, sys, write), and Deno.exit turned into an
 * error. Calls into it can be aborted (timeouts, shutdown); a sandbox that stops answering
 * (a busy loop) is stopped, failing what it was running, and the owner starts a new one.
 * REST calls and the effect ledger are answered by the host, so credentials never enter
 * the sandbox.
 *
 * Isolation: where the agent may start Deno itself (`--allow-run` for `Deno.execPath()`,
 * as the agent's flags grant), each sandbox is a child process of its own, with the
 * section's permissions as Deno flags, a V8 heap limit and a watch on its resident memory
 * (`max_memory_mb`, ./memory_watch.ts): a heap blow-up, a crash or a busy loop ends that
 * process only, never the agent. Otherwise (the compiled binary, or run permission withheld)
 * it is a Worker in the agent's process: the same permissions, but a heap blow-up there ends
 * the agent, and Deno (2.9) cannot stop a Worker stuck in a synchronous loop
 * (denoland/deno#35657); the agent says so once at start.
 *
 * The guest's code (./_guest.ts) is serialized from self-contained functions into the
 * entry module, so the host works the same from source, from the bundled single file and
 * from the compiled binary.
 */
import { log, type Logger } from "../log/log.ts";
import { buildContext, describeProcessor, toReply } from "../sdk/sdk.ts";
import { fetchRelay, guestMain, processPort, workerPort } from "./_guest.ts";
import { FetchRelay } from "./fetch_relay.ts";
import { readLines } from "../text/lines.ts";
import { remoteImports } from "./imports.ts";
import { watchMemory } from "./memory_watch.ts";

/** What to run: a module file, or a self-contained function (built-in plugins). */
export type ModuleSource = { kind: "file"; path: string } | {
  kind: "function";
  fn: (...args: never[]) => unknown;
};

/** Options for {@linkcode Sandbox.start}. */
export interface SandboxOptions {
  name: string;
  source: ModuleSource;
  /** "plugin": the module exports getData; "processor": it default-exports a definition. */
  kind: "plugin" | "processor";
  /** Hosts it may reach ("host" or "host:port"). */
  allowNet: string[];
  /** Paths it may read (a file source's own module is always readable). */
  allowRead: string[];
  logger: Logger;
  /** Memory it may use, MB: its V8 heap limit and its resident memory (default 512). */
  maxMemoryMb?: number | undefined;
  /** How long loading the module may take (default 30 s). */
  loadTimeoutMs?: number;
  /** Stops loading (the start rejects with the reason). */
  signal?: AbortSignal;
  /** How long an aborted sandbox may take to answer a ping before it counts as stuck. */
  pingTimeoutMs?: number;
}

/** Answers a sandbox's request for something only the host has (REST, the store). */
export type RpcHandler = (method: string, args: unknown[]) => Promise<unknown>;

/** Options for one call. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  rpc?: RpcHandler;
  onStatus?: (text: string) => void;
  /** Where the call's log lines go (default: the sandbox's logger). */
  logger?: Logger;
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  options: CallOptions;
}

type FromGuest =
  | { op: "loaded"; description?: unknown }
  | { op: "load-failed"; error: string }
  | { op: "result"; id: number; ok: true; value: unknown }
  | { op: "result"; id: number; ok: false; error: string }
  | { op: "log"; id?: number; level: string; message: string }
  | { op: "status"; id: number; text: string }
  | { op: "rpc"; rid: number; id: number; method: string; args: unknown[] }
  | { op: "uncaught"; error: string }
  | { op: "pong" };

/** How the host reaches one guest. */
interface Channel {
  /** "process" or "worker" (see module doc). */
  readonly isolation: Isolation;
  post(message: unknown): void;
  /** Ends the guest at once. */
  kill(): void;
}

/** Where sandboxes run (see module doc). */
export type Isolation = "process" | "worker";

const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
const LOAD_ID = 0;
const DEFAULT_MEMORY_MB = 512;

let isolationCache: Isolation | undefined;

/** Why a sandbox ended without being asked to, for /metrics. */
export type SandboxFailure = "memory" | "stuck" | "crash";
const failures = new Map<string, { sandbox: string; cause: SandboxFailure; count: number }>();

/** Sandboxes that ended without being asked to, by name and cause, since the agent started. */
export function sandboxFailures(): { sandbox: string; cause: SandboxFailure; count: number }[] {
  return [...failures.values()].map((f) => ({ ...f }));
}

function countFailure(sandbox: string, cause: SandboxFailure): void {
  const key = `${sandbox}\u0000${cause}`;
  const entry = failures.get(key) ?? { sandbox, cause, count: 0 };
  entry.count++;
  failures.set(key, entry);
}

/** Where sandboxes run in this process (see module doc); said once in the log. */
export function sandboxIsolation(): Isolation {
  if (isolationCache) return isolationCache;
  let canSpawn = false;
  try {
    canSpawn = !Deno.build.standalone &&
      Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state === "granted";
  } catch {
    canSpawn = false;
  }
  isolationCache = canSpawn ? "process" : "worker";
  if (!canSpawn) {
    log("sandbox").warn(
      "User code (processors, plugins) runs in Workers inside the agent's process: a heap " +
        "blow-up in one would stop the agent. Run the agent with --allow-run={deno} so that " +
        "each sandbox is a process of its own",
      { deno: Deno.build.standalone ? "<the deno binary>" : Deno.execPath() },
    );
  }
  return isolationCache;
}

/** A started sandbox. */
export class Sandbox {
  readonly name: string;
  readonly #options: SandboxOptions;
  readonly #pending = new Map<number, PendingCall>();
  #channel!: Channel;
  #nextId = 1;
  #alive = true;
  #pong: (() => void) | undefined;
  #checking: Promise<void> | undefined;
  #endReason: string | undefined;
  #relay: FetchRelay | undefined;

  private constructor(options: SandboxOptions) {
    this.name = options.name;
    this.#options = options;
  }

  /** Starts a guest and loads the module; throws naming what went wrong. */
  static async start(options: SandboxOptions): Promise<{ sandbox: Sandbox; description: unknown }> {
    const read = [...options.allowRead];
    let load: Record<string, unknown>;
    if (options.source.kind === "file") {
      const remote = await remoteImports(options.source.path);
      if (remote.length) {
        throw new Error(
          `it imports code from elsewhere (${remote.join(", ")}), which user code may not ` +
            `fetch: bundle it into one file first (deno bundle --platform deno -o ` +
            `${options.name}.js ${options.source.path}) and put the bundle in its place`,
        );
      }
      read.push(options.source.path);
      load = { url: new URL(`file://${options.source.path}`).href };
    } else {
      load = { source: `export const getData = ${options.source.fn.toString()};` };
    }
    const sandbox = new Sandbox(options);
    const handlers = {
      onMessage: (message: FromGuest) => sandbox.#onMessage(message),
      onEnd: (reason: string, cause: SandboxFailure) => {
        if (!sandbox.#alive) return;
        countFailure(sandbox.name, cause);
        options.logger.error("The sandbox of {name} ended: {reason}", {
          name: sandbox.name,
          reason,
        });
        sandbox.terminate(reason);
      },
    };
    try {
      sandbox.#channel = sandboxIsolation() === "process"
        ? spawnProcess(options, read, handlers)
        : startWorker(options, read, handlers);
    } catch (error) {
      throw new Error(`cannot start: ${(error as Error).message}`, { cause: error });
    }
    const loaded = new Promise<unknown>((resolve, reject) =>
      sandbox.#pending.set(LOAD_ID, { resolve, reject, options: {} })
    );
    const timeoutMs = options.loadTimeoutMs ?? 30_000;
    const timer = setTimeout(
      () => sandbox.terminate(`its module did not load within ${timeoutMs / 1000} s`),
      timeoutMs,
    );
    const onAbort = () => {
      const reason = options.signal?.reason;
      sandbox.terminate(reason instanceof Error ? reason.message : String(reason ?? "aborted"));
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    // A process of its own fetches through the host, which has TLS warm and connections
    // pooled (see fetchRelay in ./_guest.ts); a Worker shares the agent's process already.
    const relayNetwork = sandbox.#channel.isolation === "process" && options.allowNet.length > 0;
    if (relayNetwork) {
      sandbox.#relay = new FetchRelay(options.allowNet, (message) => sandbox.#post(message));
    }
    sandbox.#post({ op: "load", kind: options.kind, relayNetwork, ...load });
    try {
      return { sandbox, description: await loaded };
    } catch (error) {
      sandbox.terminate("load failed");
      throw error;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** False once terminated (stuck, broken, out of memory, or stopped). */
  get alive(): boolean {
    return this.#alive;
  }

  /** Why it ended (undefined while alive). */
  get endReason(): string | undefined {
    return this.#endReason;
  }

  /** Requests its code made that went out through the host's fetch (see fetchRelay). */
  get fetchesRelayed(): number {
    return this.#relay?.relayed ?? 0;
  }

  /** Resolves when no responsiveness check is under way (then `alive` is its verdict). */
  async checked(): Promise<void> {
    await this.#checking;
  }

  /** Calls in flight. */
  get busy(): number {
    return this.#pending.size;
  }

  /**
   * Runs `payload` (a plugin's ticket, or a processor's action) in the sandbox. Rejects with
   * the sandbox's error, the signal's reason, or the reason it was terminated.
   */
  call(payload: Record<string, unknown>, options: CallOptions = {}): Promise<unknown> {
    if (!this.#alive) {
      return Promise.reject(
        new Error(`the sandbox of ${this.name} was stopped: ${this.#endReason ?? "stopped"}`),
      );
    }
    const id = this.#nextId++;
    const { signal } = options;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        this.#post({ op: "abort", id, reason: String(signal?.reason ?? "aborted") });
        reject(
          signal!.reason instanceof Error ? signal!.reason : new Error(String(signal!.reason)),
        );
        this.#checking ??= this.#checkResponsive().finally(() => (this.#checking = undefined));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (value) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(value);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
        options,
      });
      this.#post({ op: "call", id, ...payload });
    });
  }

  /** Stops the guest; calls in flight fail with `reason`. */
  terminate(reason: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#endReason = reason;
    this.#channel?.kill();
    this.#relay?.close();
    this.#failAll(new Error(reason));
  }

  #post(message: unknown): void {
    try {
      this.#channel.post(message);
    } catch (error) {
      this.terminate(`cannot reach its sandbox: ${(error as Error).message}`);
    }
  }

  #failAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of pending) call.reject(error);
  }

  /** After an abort: a sandbox that does not answer a ping is stuck, and is terminated. */
  async #checkResponsive(): Promise<void> {
    if (!this.#alive) return;
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#options.pingTimeoutMs ?? 1_000);
      this.#pong = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#post({ op: "ping" });
    });
    this.#pong = undefined;
    if (answered || !this.#alive) return;
    countFailure(this.name, "stuck");
    if (this.#channel.isolation === "process") {
      this.#options.logger.error(
        "The sandbox of {name} stopped responding (a busy loop?); its process was stopped",
        { name: this.name },
      );
    } else {
      this.#options.logger.error(
        "The sandbox of {name} stopped responding (a busy loop?) and was cut off; Deno cannot " +
          "stop its thread, which keeps a CPU core busy until the agent restarts",
        { name: this.name },
      );
    }
    this.terminate(`${this.name} stopped responding (a busy loop?) and was stopped`);
  }

  #onMessage(data: FromGuest): void {
    if (!this.#alive || this.#relay?.handle(data as Record<string, unknown>)) return;
    switch (data.op) {
      case "loaded":
      case "load-failed": {
        const load = this.#pending.get(LOAD_ID);
        this.#pending.delete(LOAD_ID);
        if (data.op === "loaded") load?.resolve(data.description);
        else load?.reject(this.#error(data.error));
        return;
      }
      case "result": {
        const call = this.#pending.get(data.id);
        this.#pending.delete(data.id);
        if (data.ok) call?.resolve(data.value);
        else call?.reject(this.#error(data.error));
        return;
      }
      case "log": {
        const level = LOG_LEVELS.find((l) => l === data.level) ?? "info";
        const logger =
          (data.id !== undefined ? this.#pending.get(data.id)?.options.logger : undefined) ??
            this.#options.logger;
        logger[level]("{message}", { message: String(data.message) });
        return;
      }
      case "status":
        this.#pending.get(data.id)?.options.onStatus?.(String(data.text));
        return;
      case "rpc":
        void this.#answer(data);
        return;
      case "uncaught":
        this.#options.logger.error("Uncaught error in the sandbox of {name}: {error}", {
          name: this.name,
          error: data.error,
        });
        this.#failAll(new Error(`uncaught error in its sandbox: ${data.error}`));
        return;
      case "pong":
        this.#pong?.();
        return;
    }
  }

  /** An error raised in the sandbox: the host's stack would only mislead. */
  #error(message: string): Error {
    const error = new Error(message);
    error.stack = `Error: ${message}\n    in the sandbox of ${this.name}`;
    return error;
  }

  async #answer(data: { rid: number; id: number; method: string; args: unknown[] }): Promise<void> {
    const rpc = this.#pending.get(data.id)?.options.rpc;
    try {
      if (!rpc) throw new Error(`${data.method} is not available here`);
      const value = await rpc(data.method, data.args);
      if (this.#alive) this.#post({ op: "rpc-result", rid: data.rid, ok: true, value });
    } catch (error) {
      if (!this.#alive) return;
      this.#post({
        op: "rpc-result",
        rid: data.rid,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
        status: (error as { status?: unknown }).status,
      });
    }
  }
}

interface ChannelHandlers {
  onMessage(message: FromGuest): void;
  /** The guest ended on its own (crash, memory): the sandbox is over. */
  onEnd(reason: string, cause: SandboxFailure): void;
}

/** The guest's entry module: the self-contained functions of ./_guest.ts and the SDK's. */
function guestSource(port: "worker" | "process"): string {
  return `const buildContext = ${buildContext.toString()};\n` +
    `const describeProcessor = ${describeProcessor.toString()};\n` +
    `const toReply = ${toReply.toString()};\n` +
    `const fetchRelay = ${fetchRelay.toString()};\n` +
    `(${guestMain.toString()})(${
      port === "worker" ? `(${workerPort.toString()})()` : `(${processPort.toString()})()`
    }, { buildContext, describeProcessor, toReply, fetchRelay });\n`;
}

let workerUrl: string | undefined;

function startWorker(options: SandboxOptions, read: string[], handlers: ChannelHandlers): Channel {
  workerUrl ??= URL.createObjectURL(
    new Blob([guestSource("worker")], { type: "application/javascript" }),
  );
  const worker = new Worker(workerUrl, {
    type: "module",
    name: `sandbox ${options.name}`,
    deno: {
      permissions: {
        net: options.allowNet.length ? options.allowNet : false,
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
  worker.onmessage = (event: MessageEvent<FromGuest>) => handlers.onMessage(event.data);
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    handlers.onMessage({ op: "uncaught", error: event.message });
  };
  return {
    isolation: "worker",
    post: (message) => worker.postMessage(message),
    kill: () => worker.terminate(),
  };
}

let processUrl: string | undefined;

/**
 * A `deno run` of the guest with the section's permissions as flags: no config file, lock
 * file, remote or npm imports, no environment; a V8 heap limit, and its resident memory
 * held to the same limit (./memory_watch.ts). Its stderr is kept (the last lines) to say
 * why it ended.
 */
function spawnProcess(options: SandboxOptions, read: string[], handlers: ChannelHandlers): Channel {
  const memoryMb = options.maxMemoryMb ?? DEFAULT_MEMORY_MB;
  for (const grant of [...options.allowNet, ...read]) {
    // Deno's flags are comma-separated lists: a comma would grant something else.
    if (grant.includes(",")) throw new Error(`cannot grant "${grant}": it contains a comma`);
  }
  processUrl ??= `data:application/javascript;base64,${
    btoa(String.fromCodePoint(...new TextEncoder().encode(guestSource("process"))))
  }`;
  const env: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--no-config",
      "--no-lock",
      "--no-remote",
      "--no-npm",
      `--v8-flags=--max-old-space-size=${memoryMb}`,
      ...(options.allowNet.length ? [`--allow-net=${options.allowNet.join(",")}`] : []),
      ...(read.length ? [`--allow-read=${read.join(",")}`] : []),
      processUrl,
    ],
    clearEnv: true,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const input = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let stderrTail = "";
  let ended = false;
  let killedFor: string | undefined;

  const kill = () => {
    if (ended) return;
    ended = true;
    unwatch();
    input.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  };
  const outgrown = (rss: number) => {
    if (ended || !(rss > memoryMb * 1048576)) return;
    killedFor = `ran out of memory: its sandbox used ${
      Math.round(rss / 1048576)
    } MB (max_memory_mb ${memoryMb})`;
    kill();
    handlers.onEnd(killedFor, "memory");
  };
  let unwatch: () => void;
  try {
    unwatch = watchMemory(child.pid, memoryMb * 1048576, {
      onOver: outgrown,
      onLost() {
        if (ended) return;
        killedFor = "its memory could not be watched (the memory watcher cannot run)";
        kill();
        handlers.onEnd(killedFor, "crash");
      },
    });
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`cannot watch its memory: ${(error as Error).message}`, { cause: error });
  }

  readLines(child.stdout, (line) => {
    let message: FromGuest;
    try {
      message = JSON.parse(line);
    } catch {
      message = { op: "log", level: "info", message: line };
    }
    handlers.onMessage(message);
  }).catch(() => {}); // killed mid-line: what was read has been handled
  const stderrRead = readLines(child.stderr, (line) => {
    stderrTail = (stderrTail + line + "\n").slice(-4096);
  }).catch(() => {});
  void Promise.all([child.status, stderrRead]).then(([status]) => {
    if (ended) return;
    ended = true;
    unwatch();
    const outOfMemory = /out of memory|heap limit/i.test(stderrTail);
    const first = stderrTail.split("\n").find((l) => l.trim()) ?? "";
    handlers.onEnd(
      outOfMemory
        ? `ran out of memory: its sandbox reached the heap limit (max_memory_mb ${memoryMb})`
        : `its sandbox process ended (${
          status.signal ? `signal ${status.signal}` : `exit code ${status.code}`
        })${first ? `: ${first.slice(0, 300)}` : ""}`,
      outOfMemory ? "memory" : "crash",
    );
  });

  // Messages posted in one tick go out as one write: a busy processor's calls (up to its
  // workers at once) cost one pipe write instead of one each.
  let queued: string[] = [];
  const flush = () => {
    const text = queued.join("");
    queued = [];
    if (!ended) input.write(encoder.encode(text)).catch(() => {});
  };
  return {
    isolation: "process",
    post(message) {
      if (ended) throw new Error(killedFor ?? "its sandbox process has ended");
      if (queued.push(JSON.stringify(message) + "\n") === 1) queueMicrotask(flush);
    },
    kill,
  };
}
