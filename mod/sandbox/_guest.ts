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
    fetchRelay: typeof fetchRelay;
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

  let relay: ((message: Record<string, unknown>) => boolean) | undefined;

  // deno-lint-ignore no-explicit-any
  port.listen(async (m: any) => {
    if (relay?.(m)) return;
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
      if (m.relayNetwork) relay = helpers.fetchRelay(post);
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

/**
 * A sandbox process's `fetch` through the host (installed by guestMain before the module
 * loads; returns the handler of the host's answers). Why: a process's first TLS connection
 * seeds the TLS library's random generator from CPU jitter, ~25 ms of CPU per process, and
 * every sandbox would handshake on its own; the host has both warm and pools connections.
 * The host relays only what the sandbox's `allow_net` grants (it checks itself, and refuses
 * what it cannot prove granted); a refused request goes out through Deno's own fetch here,
 * where the sandbox's permissions decide as before. So do what the relay does not carry:
 * non-HTTP URLs, request bodies over 8 MB and clients with a proxy or unusual options.
 * Redirects are followed here, each hop asked of the host anew, so each hop is checked.
 * `Deno.createHttpClient` gives a handle whose options go with each request; the host makes
 * the client. Bodies travel base64 in the JSON lines, responses a chunk per read.
 */
export function fetchRelay(
  post: (message: unknown) => void,
): (m: Record<string, unknown>) => boolean {
  type Answer = Record<string, unknown>;
  const nativeFetch = globalThis.fetch;
  const nativeClient = Deno.createHttpClient;
  const MAX_BODY = 8 * 1024 * 1024;
  const REDIRECTS = [301, 302, 303, 307, 308];
  const BODY_HEADERS = [
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-location",
  ];
  const clients = new WeakMap<
    object,
    { options: Deno.CreateHttpClientOptions; native?: Deno.HttpClient }
  >();
  const waiting = new Map<number, (answer: Answer) => void>();
  let nextId = 0;

  const ask = (message: Answer & { fid: number }, signal: AbortSignal) =>
    new Promise<Answer>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        if (!waiting.delete(message.fid)) return;
        post({ op: "fetch-cancel", fid: message.fid });
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      waiting.set(message.fid, (answer) => {
        signal.removeEventListener("abort", onAbort);
        resolve(answer);
      });
      post(message);
    });
  const failure = (answer: Answer) =>
    new TypeError(
      String(answer.error),
      answer.cause ? { cause: new Error(String(answer.cause)) } : undefined,
    );

  /** One request through the host: its response, or null when the host refused it. */
  const hop = async (
    url: string,
    method: string,
    headers: [string, string][],
    body: Uint8Array | undefined,
    client: Deno.CreateHttpClientOptions | undefined,
    signal: AbortSignal,
  ): Promise<Response | null> => {
    const fid = ++nextId;
    const head = await ask({
      op: "fetch",
      fid,
      url,
      method,
      headers,
      body: body?.toBase64(),
      client,
    }, signal);
    if (head.refused) return null;
    if (head.error !== undefined) throw failure(head);
    // An abort while nobody reads the body still ends the host's request; the listener goes
    // with the body (a signal used for many requests must not gather them).
    const cancel = () => {
      waiting.delete(fid);
      post({ op: "fetch-cancel", fid });
    };
    const settle = () => signal.removeEventListener("abort", cancel);
    const status = head.status as number;
    const empty = method === "HEAD" || [204, 205, 304].includes(status);
    if (empty) cancel(); // nothing to read: the host lets go of it
    else signal.addEventListener("abort", cancel, { once: true });
    const stream = empty ? null : new ReadableStream<Uint8Array>({
      async pull(controller) {
        const chunk: Answer = await ask({ op: "fetch-read", fid }, signal).catch((abort) => ({
          abort,
        }));
        if (chunk.data === undefined) settle();
        if (chunk.abort !== undefined) controller.error(chunk.abort);
        else if (chunk.error !== undefined) controller.error(failure(chunk));
        else if (chunk.done) controller.close();
        else controller.enqueue(Uint8Array.fromBase64(String(chunk.data)));
      },
      cancel() {
        settle();
        cancel();
      },
    }, { highWaterMark: 0 });
    const response = new Response(stream, {
      status,
      statusText: head.statusText as string,
      headers: head.headers as [string, string][],
    });
    Object.defineProperty(response, "url", { value: head.url });
    return response;
  };

  const relayedFetch = async function fetch(
    input: string | URL | Request,
    init?: RequestInit & { client?: Deno.HttpClient },
  ): Promise<Response> {
    const { client: given, ...requestInit } = init ?? {};
    const request = new Request(input, requestInit);
    const entry = given === undefined ? undefined : clients.get(given);
    let body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    let url = request.url;
    let method = request.method;
    let headers = [...request.headers];
    const viaDeno = () => {
      let client = given;
      if (entry) client = entry.native ??= nativeClient(entry.options);
      return nativeFetch(url, {
        method,
        headers,
        body: body ?? null,
        redirect: request.redirect,
        signal: request.signal,
        ...(client ? { client } : {}),
      } as RequestInit);
    };
    if (
      (given !== undefined && !entry) || !/^https?:$/.test(new URL(url).protocol) ||
      (body?.byteLength ?? 0) > MAX_BODY
    ) {
      return viaDeno();
    }
    for (let redirects = 0;; redirects++) {
      const response = await hop(url, method, headers, body, entry?.options, request.signal);
      if (response === null) return viaDeno();
      const location = response.headers.get("location");
      if (
        !REDIRECTS.includes(response.status) || location === null || request.redirect === "manual"
      ) {
        if (redirects) Object.defineProperty(response, "redirected", { value: true });
        return response;
      }
      await response.body?.cancel();
      if (request.redirect === "error") {
        throw new TypeError(`fetch of ${url} was redirected, and its redirect mode is "error"`);
      }
      if (redirects === 20) throw new TypeError(`fetch of ${request.url}: too many redirects`);
      const next = new URL(location, url);
      if (!/^https?:$/.test(next.protocol)) {
        throw new TypeError(`fetch of ${url} was redirected to a ${next.protocol} URL`);
      }
      if (
        (response.status === 303 && method !== "HEAD") ||
        ((response.status === 301 || response.status === 302) && method === "POST")
      ) {
        method = "GET";
        body = undefined;
        headers = headers.filter(([name]) => !BODY_HEADERS.includes(name));
      }
      if (new URL(url).origin !== next.origin) {
        headers = headers.filter(([name]) => name !== "authorization");
      }
      url = next.href;
    }
  };

  Object.defineProperty(globalThis, "fetch", {
    value: relayedFetch,
    writable: true,
    configurable: true,
  });
  Object.defineProperty(Deno, "createHttpClient", {
    value: (options: Deno.CreateHttpClientOptions) => {
      const handle = {
        close() {
          const entry = clients.get(handle);
          entry?.native?.close();
        },
        [Symbol.dispose]() {
          handle.close();
        },
      };
      clients.set(handle, { options: { ...options } });
      return handle;
    },
    writable: true,
    configurable: true,
  });
  // A fresh process runs the code of a request and its response for the first time in the
  // plugin's first call (a few ms each); run it once now, while the host waits for its ticket.
  void (async () => {
    const warm = new Request("https://warm.invalid/", { headers: [["accept", "*/*"]] });
    const response = new Response(
      new ReadableStream({
        pull(controller) {
          controller.enqueue(Uint8Array.fromBase64("e30="));
          controller.close();
        },
      }),
      { status: 200, headers: [...warm.headers, ["content-type", "application/json"]] },
    );
    await response.json();
    await new Response("").text();
  })().catch(() => {});
  return (m) => {
    if (typeof m.op !== "string" || !m.op.startsWith("fetch-")) return false;
    const resolve = waiting.get(m.fid as number);
    waiting.delete(m.fid as number);
    resolve?.(m);
    return true;
  };
}
