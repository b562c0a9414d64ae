/**
 * The code that runs inside a sandbox, next to the user's module: it loads the module, runs
 * calls, and relays logs, statuses and host requests. Every function here is
 * self-contained: it is serialized into the sandbox's entry module (a blob for a Worker, a
 * `data:` URL for a child process), so it may use nothing from the surrounding file.
 */
import type { buildContext, describeProcessor, toReply } from "../sdk/sdk.ts";

/** How the guest talks to the host: postMessage in a Worker, JSON lines over stdio in a process. */
export interface GuestPort {
  post(message: unknown): void;
  listen(handler: (message: Record<string, unknown>) => void): void;
}

/** The port of a Worker. */
export function workerPort(): GuestPort {
  const scope = self as unknown as Worker;
  return {
    post: (message) => scope.postMessage(message),
    listen: (handler) => {
      scope.onmessage = (event: MessageEvent) => handler(event.data);
    },
  };
}

/**
 * The port of a child process: one JSON message per line on stdin and stdout. What the
 * user's code prints (console, Deno.stdout, Deno.stderr) becomes log messages, so it can
 * never be taken for protocol; an uncaught error is reported instead of ending the process;
 * the process ends when the host closes stdin (or dies).
 */
export function processPort(): GuestPort {
  const exit = Deno.exit;
  const stdout = Deno.stdout;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const post = (message: unknown) => {
    let bytes = encoder.encode(JSON.stringify(message) + "\n");
    while (bytes.byteLength) bytes = bytes.subarray(stdout.writeSync(bytes));
  };
  const text = (args: unknown[]) =>
    args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");
  const levels: [keyof Console, string][] = [
    ["log", "info"],
    ["info", "info"],
    ["debug", "debug"],
    ["trace", "debug"],
    ["warn", "warn"],
    ["error", "error"],
  ];
  for (const [method, level] of levels) {
    (console as unknown as Record<string, unknown>)[method] = (...args: unknown[]) =>
      post({ op: "log", level, message: text(args) });
  }
  const printer = (level: string) => ({
    writeSync(bytes: Uint8Array) {
      post({ op: "log", level, message: decoder.decode(bytes).replace(/\n$/, "") });
      return bytes.byteLength;
    },
    write(bytes: Uint8Array) {
      return Promise.resolve(this.writeSync(bytes));
    },
    isTerminal: () => false,
    writable: new WritableStream<Uint8Array>({
      write: (bytes) => post({ op: "log", level, message: decoder.decode(bytes) }),
    }),
  });
  Object.defineProperty(Deno, "stdout", { value: printer("info") });
  Object.defineProperty(Deno, "stderr", { value: printer("warn") });
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    const reason = (event as PromiseRejectionEvent).reason;
    post({ op: "uncaught", error: reason instanceof Error ? reason.message : String(reason) });
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    post({ op: "uncaught", error: (event as ErrorEvent).message });
  });
  return {
    post,
    listen(handler) {
      // Plain reads rather than a decoding stream: each message is one wake-up, not a chain
      // of stream hops (a call's round trip is mostly these).
      const stdin = Deno.stdin;
      void (async () => {
        const bytes = new Uint8Array(64 * 1024);
        const input = new TextDecoder();
        let buffer = "";
        for (let n = await stdin.read(bytes); n !== null; n = await stdin.read(bytes)) {
          buffer += input.decode(bytes.subarray(0, n), { stream: true });
          for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
            const line = buffer.slice(0, end);
            buffer = buffer.slice(end + 1);
            if (line) handler(JSON.parse(line));
          }
        }
        exit(0);
      })();
    },
  };
}

/** The guest: loads the module and answers the host (see module doc). */
export function guestMain(
  port: GuestPort,
  helpers: {
    buildContext: typeof buildContext;
    describeProcessor: typeof describeProcessor;
    toReply: typeof toReply;
  },
): void {
  // Sandboxed code must not end the agent (or its own sandbox) behind the host's back.
  Object.defineProperty(Deno, "exit", {
    value: (code?: number) => {
      throw new Error(`called Deno.exit(${code ?? 0}); return a result or throw instead`);
    },
  });
  const post = (message: unknown) => port.post(message);
  const errorText = (error: unknown) => error instanceof Error ? error.message : String(error);
  type Loaded =
    | { kind: "plugin"; fn: (...args: unknown[]) => unknown }
    | {
      kind: "processor";
      def: {
        rules?: Record<string, (...args: unknown[]) => unknown>;
        handle?: (...args: unknown[]) => unknown;
        selftest?: (...args: unknown[]) => unknown;
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

  // A new process pays twice on its first HTTPS request: the TLS library seeds its random
  // generator from CPU jitter (about 25 ms of CPU, once per process) and fetch's code runs
  // for the first time. Both happen here, while the module loads and the host waits for its
  // ticket, instead of inside the plugin's first call. Needs no permission.
  const warmNetwork = async () => {
    try {
      await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, [
        "deriveBits",
      ]);
      await (await fetch("data:,")).arrayBuffer();
    } catch {
      // Only a head start: the first request does the same if this did not.
    }
  };

  // deno-lint-ignore no-explicit-any
  port.listen(async (m: any) => {
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
      if (m.warmNetwork) void warmNetwork();
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
        const handler = m.selftest
          ? def.selftest
          : (m.rule !== null ? def.rules?.[m.rule] : undefined) ?? def.handle;
        if (!handler) {
          throw new Error(m.selftest ? "it has no selftest" : `no handler for rule "${m.rule}"`);
        }
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
        // A selftest's answer goes back as it is (the host reads it); a handler's as a reply.
        value = m.selftest ? (await handler(ctx)) ?? null : helpers.toReply(
          await handler(m.action, ctx),
        );
      }
      post({ op: "result", id, ok: true, value });
    } catch (error) {
      post({ op: "result", id, ok: false, error: errorText(error) });
    } finally {
      calls.delete(id);
    }
  });
}
