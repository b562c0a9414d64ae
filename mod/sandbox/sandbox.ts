/**
 * The one sandbox for code that users bring: enrichment plugins and custom action
 * processors. Each runs in its own Worker with only the permissions its INI section grants
 * (`allow_net` hosts, `allow_read` paths; no env, run, ffi, sys, write), and Deno.exit
 * turned into an error. Calls into it can be aborted (timeouts, shutdown); a sandbox that
 * stops answering (a busy loop) is terminated, failing what it was running, and the owner
 * starts a new one. REST calls and the effect ledger are answered by the host, so
 * credentials never enter the sandbox.
 *
 * The Worker is made from a blob whose code is serialized from self-contained functions,
 * so the host works the same from source, from the bundled single file and from the
 * compiled binary.
 *
 * Deno (2.9) cannot stop a Worker that is stuck in a synchronous loop: terminate() leaves
 * its thread spinning until the process exits (denoland/deno#35657). Such a sandbox is cut
 * off (nothing it does reaches the agent any more) and reported, but keeps a CPU core busy
 * until the agent restarts.
 */
import type { Logger } from "../log/log.ts";
import { buildContext, describeProcessor, toReply } from "../sdk/sdk.ts";

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

type FromWorker =
  | { op: "loaded"; description?: unknown }
  | { op: "load-failed"; error: string }
  | { op: "result"; id: number; ok: true; value: unknown }
  | { op: "result"; id: number; ok: false; error: string }
  | { op: "log"; id?: number; level: string; message: string }
  | { op: "status"; id: number; text: string }
  | { op: "rpc"; rid: number; id: number; method: string; args: unknown[] }
  | { op: "pong" };

const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
const LOAD_ID = 0;

/** A started sandbox. */
export class Sandbox {
  readonly name: string;
  readonly #worker: Worker;
  readonly #options: SandboxOptions;
  readonly #pending = new Map<number, PendingCall>();
  #nextId = 1;
  #alive = true;
  #pong: (() => void) | undefined;
  #checking: Promise<void> | undefined;

  private constructor(worker: Worker, options: SandboxOptions) {
    this.name = options.name;
    this.#worker = worker;
    this.#options = options;
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#onMessage(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#options.logger.error("Uncaught error in the sandbox of {name}: {error}", {
        name: this.name,
        error: event.message,
      });
      this.#failAll(new Error(`uncaught error in its sandbox: ${event.message}`));
    };
  }

  /** Starts a Worker and loads the module; throws naming what went wrong. */
  static async start(options: SandboxOptions): Promise<{ sandbox: Sandbox; description: unknown }> {
    const read = [...options.allowRead];
    let load: Record<string, unknown>;
    if (options.source.kind === "file") {
      read.push(options.source.path);
      load = { url: new URL(`file://${options.source.path}`).href };
    } else {
      load = { source: `export const getData = ${options.source.fn.toString()};` };
    }
    let worker: Worker;
    try {
      worker = new Worker(hostUrl(), {
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
    } catch (error) {
      throw new Error(`cannot start: ${(error as Error).message}`, { cause: error });
    }
    const sandbox = new Sandbox(worker, options);
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
    worker.postMessage({ op: "load", kind: options.kind, ...load });
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

  /** False once terminated (stuck, broken, or stopped). */
  get alive(): boolean {
    return this.#alive;
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
    if (!this.#alive) return Promise.reject(new Error(`the sandbox of ${this.name} was stopped`));
    const id = this.#nextId++;
    const { signal } = options;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        this.#worker.postMessage({ op: "abort", id, reason: String(signal?.reason ?? "aborted") });
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
      this.#worker.postMessage({ op: "call", id, ...payload });
    });
  }

  /** Stops the Worker; calls in flight fail with `reason`. */
  terminate(reason: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#worker.terminate();
    this.#failAll(new Error(reason));
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
      this.#worker.postMessage({ op: "ping" });
    });
    this.#pong = undefined;
    if (answered || !this.#alive) return;
    this.#options.logger.error(
      "The sandbox of {name} stopped responding (a busy loop?) and was cut off; Deno cannot " +
        "stop its thread, which keeps a CPU core busy until the agent restarts",
      { name: this.name },
    );
    this.terminate(`${this.name} stopped responding (a busy loop?) and was stopped`);
  }

  #onMessage(data: FromWorker): void {
    if (!this.#alive) return;
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
        logger[level]("{message}", { message: data.message });
        return;
      }
      case "status":
        this.#pending.get(data.id)?.options.onStatus?.(data.text);
        return;
      case "rpc":
        void this.#answer(data);
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
      if (this.#alive) {
        this.#worker.postMessage({ op: "rpc-result", rid: data.rid, ok: true, value });
      }
    } catch (error) {
      if (!this.#alive) return;
      this.#worker.postMessage({
        op: "rpc-result",
        rid: data.rid,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
        status: (error as { status?: unknown }).status,
      });
    }
  }
}

let url: string | undefined;

function hostUrl(): string {
  url ??= URL.createObjectURL(
    new Blob([
      `const buildContext = ${buildContext.toString()};\n` +
      `const describeProcessor = ${describeProcessor.toString()};\n` +
      `const toReply = ${toReply.toString()};\n` +
      `(${workerMain.toString()})({ buildContext, describeProcessor, toReply });\n`,
    ], { type: "application/javascript" }),
  );
  return url;
}

/** The Worker's code: self-contained, serialized into the blob module with its helpers. */
function workerMain(helpers: {
  buildContext: typeof buildContext;
  describeProcessor: typeof describeProcessor;
  toReply: typeof toReply;
}): void {
  // Sandboxed code must not end the agent.
  Object.defineProperty(Deno, "exit", {
    value: (code?: number) => {
      throw new Error(`called Deno.exit(${code ?? 0}); return a result or throw instead`);
    },
  });
  const scope = self as unknown as Worker;
  const post = (message: unknown) => scope.postMessage(message);
  const errorText = (error: unknown) => error instanceof Error ? error.message : String(error);
  type Loaded =
    | { kind: "plugin"; fn: (...args: unknown[]) => unknown }
    | {
      kind: "processor";
      def: {
        rules?: Record<string, (...args: unknown[]) => unknown>;
        handle?: (...args: unknown[]) => unknown;
      };
    };
  let loaded: Loaded | undefined;
  const calls = new Map<number, AbortController>();
  const rpcs = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  let nextRpc = 0;
  const rpc = (id: number, method: string, args: unknown[]) =>
    new Promise<unknown>((resolve, reject) => {
      const rid = ++nextRpc;
      rpcs.set(rid, { resolve, reject });
      post({ op: "rpc", rid, id, method, args });
    });

  // deno-lint-ignore no-explicit-any
  scope.onmessage = async (event: MessageEvent<any>) => {
    const m = event.data;
    if (m.op === "ping") return post({ op: "pong" });
    if (m.op === "abort") return calls.get(m.id)?.abort(new Error(m.reason));
    if (m.op === "rpc-result") {
      const pending = rpcs.get(m.rid);
      rpcs.delete(m.rid);
      if (m.ok) pending?.resolve(m.value);
      else pending?.reject(Object.assign(new Error(m.error), { status: m.status }));
      return;
    }
    if (m.op === "load") {
      try {
        const url = m.url ?? URL.createObjectURL(
          new Blob([m.source], { type: "application/javascript" }),
        );
        const mod = await import(url);
        if (m.kind === "plugin") {
          const fn = mod.getData ?? mod.get_data ?? mod.default?.getData ?? mod.default;
          if (typeof fn !== "function") throw new Error("the module exports no getData function");
          loaded = { kind: "plugin", fn };
          post({ op: "loaded" });
        } else {
          const described = helpers.describeProcessor(mod.default);
          if (described.problem !== undefined) throw new Error(described.problem);
          loaded = { kind: "processor", def: mod.default };
          post({ op: "loaded", description: described.description });
        }
      } catch (error) {
        post({ op: "load-failed", error: errorText(error) });
      }
      return;
    }
    if (m.op !== "call" || !loaded) return;
    const id = m.id as number;
    const controller = new AbortController();
    calls.set(id, controller);
    try {
      let value: unknown;
      if (loaded.kind === "plugin") {
        const log = Object.fromEntries(
          ["debug", "info", "warn", "error"].map((level) => [
            level,
            (text: unknown) => post({ op: "log", id, level, message: String(text) }),
          ]),
        );
        const result = await loaded.fn(m.ticketInfo, log, m.config);
        value = result === null || result === undefined || result === "" ? null : String(result);
      } else {
        const def = loaded.def;
        const handler = (m.rule !== null ? def.rules?.[m.rule] : undefined) ?? def.handle;
        if (!handler) throw new Error(`no handler for rule "${m.rule}"`);
        const ctx = helpers.buildContext({
          request: (method, path, body) => rpc(id, "request", [method, path, body]),
          status: (text) => post({ op: "status", id, text }),
          log: (level, text) => post({ op: "log", id, level, message: text }),
          effectGet: (name) => rpc(id, "effectGet", [name]) as Promise<{ found: boolean }>,
          effectSet: (name, result) => rpc(id, "effectSet", [name, result]).then(() => {}),
        }, {
          config: m.config,
          ruleName: m.ruleName ?? undefined,
          message: m.message,
          signal: controller.signal,
        });
        value = helpers.toReply(await handler(m.action, ctx));
      }
      post({ op: "result", id, ok: true, value });
    } catch (error) {
      post({ op: "result", id, ok: false, error: errorText(error) });
    } finally {
      calls.delete(id);
    }
  };
}
