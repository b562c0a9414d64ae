/**
 * The host's end of a sandbox process's `fetch` (the guest's end, and why, is `fetchRelay`
 * in ./_guest.ts): requests arrive as messages, go out through the agent's own fetch, and
 * their responses go back a chunk per read. The host trusts nothing in a request: it
 * carries only what the sandbox's `allow_net` grants and what the agent itself may reach,
 * and answers anything else "refused", upon which the guest uses Deno's own fetch under the
 * sandbox's own permissions. A refusal never widens what a sandbox can reach; the check
 * only has to be sure of what it lets through (see {@linkcode relayMayReach}).
 */

/** A request from the guest (its fields unchecked: the guest is not trusted). */
type GuestMessage = Record<string, unknown>;

/**
 * Requests of one sandbox the agent holds open at once; past it, they are refused (and go
 * out through the sandbox's own fetch), so a plugin cannot make the agent hold thousands.
 */
export const MAX_OPEN_PER_SANDBOX = 64;

/** Distinct clients (`Deno.createHttpClient` options) the agent keeps for one sandbox. */
const MAX_CLIENTS_PER_SANDBOX = 16;

/** A relayed request the agent holds: its abort, and its body once the head came. */
interface OpenRequest {
  controller: AbortController;
  reader?: ReadableStreamDefaultReader<Uint8Array>;
}

/** Client options the relay can honour; a client with any other option is refused. */
const CLIENT_OPTIONS = new Set(["caCerts", "cert", "key", "http1", "http2"]);

/**
 * Whether `url` is an HTTP(S) URL that `allowNet` (a sandbox's `allow_net`: `host`,
 * `host:port`, `[v6]`, `[v6]:port`) certainly grants. Forms it does not know (wildcards,
 * names that are not in URL form) are not granted here; Deno decides them in the guest.
 */
export function relayMayReach(allowNet: readonly string[], url: URL): boolean {
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  const port = portOf(url);
  return allowNet.some((entry) => {
    const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry.toLowerCase());
    return m !== null && m[1] === url.hostname && (m[2] === undefined || Number(m[2]) === port);
  });
}

/** An HTTP(S) URL's port, the scheme's default when it names none. */
function portOf(url: URL): number {
  return Number(url.port || (url.protocol === "https:" ? 443 : 80));
}

/** A sandbox's relayed requests (one per sandbox process that may use the network). */
export class FetchRelay {
  readonly #allowNet: readonly string[];
  readonly #post: (message: unknown) => void;
  readonly #open = new Map<number, OpenRequest>();
  readonly #clients = new Map<string, Deno.HttpClient>();
  #closed = false;
  /** Requests relayed so far (not counting refused ones). */
  relayed = 0;

  constructor(allowNet: readonly string[], post: (message: unknown) => void) {
    this.#allowNet = allowNet;
    this.#post = post;
  }

  /** Handles a guest's message if it is the relay's; false otherwise. */
  handle(message: GuestMessage): boolean {
    const fid = message.fid;
    if (typeof message.op !== "string" || !message.op.startsWith("fetch")) return false;
    if (typeof fid !== "number") return true;
    if (message.op === "fetch") void this.#start(fid, message);
    else if (message.op === "fetch-read") void this.#read(fid);
    else if (message.op === "fetch-cancel") this.#cancel(fid);
    return true;
  }

  /** The sandbox ended: every request of it is cancelled, its clients closed. */
  close(): void {
    this.#closed = true;
    for (const fid of [...this.#open.keys()]) this.#cancel(fid);
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #answer(message: Record<string, unknown>): void {
    if (!this.#closed) this.#post(message);
  }

  async #start(fid: number, m: GuestMessage): Promise<void> {
    const request = this.#admit(m);
    if (
      !request || this.#closed || this.#open.has(fid) || this.#open.size >= MAX_OPEN_PER_SANDBOX
    ) {
      return this.#answer({ op: "fetch-head", fid, refused: true });
    }
    const controller = new AbortController();
    const entry: OpenRequest = { controller };
    this.#open.set(fid, entry);
    this.relayed++;
    try {
      const response = await fetch(request.url, {
        ...request.init,
        redirect: "manual",
        signal: controller.signal,
      });
      if (!this.#open.has(fid)) {
        await response.body?.cancel();
        return;
      }
      if (response.body) entry.reader = response.body.getReader();
      else this.#open.delete(fid);
      this.#answer({
        op: "fetch-head",
        fid,
        status: response.status,
        statusText: response.statusText,
        headers: [...response.headers],
        url: response.url,
      });
    } catch (error) {
      this.#open.delete(fid);
      const e = error as Error & { cause?: unknown };
      this.#answer({
        op: "fetch-head",
        fid,
        error: e.message,
        ...(e.cause instanceof Error ? { cause: e.cause.message } : {}),
      });
    }
  }

  /** The request `m` asks for, when the relay may carry it. */
  #admit(m: GuestMessage): { url: URL; init: RequestInit } | undefined {
    let url: URL;
    try {
      url = new URL(String(m.url));
    } catch {
      return undefined;
    }
    if (!relayMayReach(this.#allowNet, url)) return undefined;
    const reach = `${url.hostname}:${portOf(url)}`;
    if (Deno.permissions.querySync({ name: "net", host: reach }).state !== "granted") {
      return undefined;
    }
    if (typeof m.method !== "string" || !Array.isArray(m.headers)) return undefined;
    const headers = m.headers as unknown[];
    if (
      !headers.every((h) =>
        Array.isArray(h) && h.length === 2 && h.every((v) => typeof v === "string")
      )
    ) {
      return undefined;
    }
    let client: Deno.HttpClient | undefined;
    if (m.client !== undefined && m.client !== null) {
      client = this.#client(m.client);
      if (!client) return undefined;
    }
    let body: Uint8Array | undefined;
    if (typeof m.body === "string") {
      try {
        body = Uint8Array.fromBase64(m.body);
      } catch {
        return undefined;
      }
    }
    return {
      url,
      init: {
        method: m.method,
        headers: headers as [string, string][],
        ...(body ? { body: body as Uint8Array<ArrayBuffer> } : {}),
        ...(client ? { client } : {}),
      },
    };
  }

  /** The client for a guest's `Deno.createHttpClient` options (one per distinct options). */
  #client(options: unknown): Deno.HttpClient | undefined {
    if (typeof options !== "object" || options === null) return undefined;
    const entries = Object.entries(options).filter(([, v]) => v !== undefined);
    if (!entries.every(([k]) => CLIENT_OPTIONS.has(k))) return undefined;
    const key = JSON.stringify(entries.sort(([a], [b]) => a < b ? -1 : 1));
    let client = this.#clients.get(key);
    if (!client) {
      if (this.#clients.size >= MAX_CLIENTS_PER_SANDBOX) return undefined;
      try {
        client = Deno.createHttpClient(Object.fromEntries(entries) as Deno.CreateHttpClientOptions);
      } catch {
        return undefined; // what Deno refuses, it refuses in the guest too, with its own words
      }
      this.#clients.set(key, client);
    }
    return client;
  }

  async #read(fid: number): Promise<void> {
    const entry = this.#open.get(fid);
    if (!entry?.reader) return this.#answer({ op: "fetch-chunk", fid, done: true });
    try {
      const { done, value } = await entry.reader.read();
      if (done) {
        this.#open.delete(fid);
        return this.#answer({ op: "fetch-chunk", fid, done: true });
      }
      this.#answer({ op: "fetch-chunk", fid, data: value.toBase64() });
    } catch (error) {
      this.#open.delete(fid);
      this.#answer({ op: "fetch-chunk", fid, error: (error as Error).message });
    }
  }

  #cancel(fid: number): void {
    const entry = this.#open.get(fid);
    if (!entry) return;
    this.#open.delete(fid);
    entry.controller.abort();
    entry.reader?.cancel().catch(() => {});
  }
}
