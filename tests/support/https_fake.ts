/**
 * Base for the SaaS fakes (Resilient REST, Graph, Jira, SecureChange): a real HTTPS server
 * on 127.0.0.1 with a certificate from the test CA, routes by method and path pattern, a
 * log of every request, and fault injection: status codes with Retry-After, delays,
 * malformed bodies, dropped connections.
 */
import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { type LeafName, testPki } from "./ca.ts";

/** A request as the fake saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: string;
}

export type RouteHandler = (
  request: Request,
  params: Record<string, string>,
  body: string,
  bytes: Uint8Array<ArrayBuffer>,
) => Response | Promise<Response> | unknown;

/** A fault to apply to the next matching requests. */
export interface Fault {
  /** Only requests whose "METHOD /path" matches. Default: every request. */
  match?: RegExp;
  /** How many requests it applies to (default 1). */
  times?: number;
  status?: number;
  retryAfter?: string;
  /** Wait this long before answering (a timeout when longer than the client's). */
  delayMs?: number;
  /** Answer with this raw text as a JSON content type (malformed bodies). */
  rawBody?: string;
}

export class HttpsFake {
  readonly requests: SeenRequest[] = [];
  readonly #routes: { method: string; pattern: URLPattern; handler: RouteHandler }[] = [];
  readonly #faults: (Fault & { left: number })[] = [];
  #server: Server | undefined;
  /** Every TCP connection accepted and not yet closed (see stop). */
  readonly #sockets = new Set<Socket>();
  #port = 0;
  /** Added to every answer (a SaaS API's round trip, for benchmarks). */
  latencyMs = 0;
  /** Keep bodies in `requests` up to this many characters (benchmarks send megabytes). */
  keepBodyChars = Infinity;

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** Adds a route; `path` is a URLPattern pathname such as "/rest/orgs/:org/users/:id". */
  route(method: string, path: string, handler: RouteHandler): this {
    this.#routes.push({ method, pattern: new URLPattern({ pathname: path }), handler });
    return this;
  }

  fault(fault: Fault): this {
    this.#faults.push({ ...fault, left: fault.times ?? 1 });
    return this;
  }

  /** Requests whose "METHOD /path" matches. */
  seen(match: RegExp): SeenRequest[] {
    return this.requests.filter((r) => match.test(`${r.method} ${r.path}`));
  }

  /**
   * Listens on 127.0.0.1 (a free port unless given). node:https rather than Deno.serve: like
   * the real services' front ends it sets TCP_NODELAY on each connection, which Deno.serve
   * does not, and without it a client's first request over a new TLS connection could wait
   * 40 ms for a delayed ACK (Nagle), a stall no real peer adds.
   */
  async start(
    options: { cert?: LeafName; port?: number } = {},
  ): Promise<this> {
    const pki = await testPki();
    const leaf = pki[options.cert ?? "server"];
    const server = createServer(
      { cert: leaf.cert, key: leaf.key, noDelay: true },
      (req, res) => void this.#serve(req, res),
    );
    server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    const ready = Promise.withResolvers<void>();
    server.once("error", ready.reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => ready.resolve());
    await ready.promise;
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  /**
   * Stops listening and ends every connection. `closeAllConnections` misses one now and then
   * under Deno's node:https (about one stop in twenty here), and `close` waits for it: the stop
   * took 180 s (a CI run's test sat there for 3 minutes). So the fake also ends each TCP socket
   * it accepted itself.
   */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  /** One exchange: node's request as a fetch Request to {@linkcode handle}, its answer back. */
  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const chunks: Uint8Array[] = [];
      for await (const chunk of req) chunks.push(chunk);
      const headers = new Headers();
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      }
      const method = req.method ?? "GET";
      const request = new Request(`${this.url}${req.url ?? "/"}`, {
        method,
        headers,
        ...(method === "GET" || method === "HEAD" ? {} : { body: Buffer.concat(chunks) }),
      });
      let response: Response;
      try {
        response = await this.handle(request);
      } catch (error) {
        response = Response.json({ error: String(error) }, { status: 500 });
      }
      const head: [string, string][] = [...response.headers].filter(([k]) => k !== "set-cookie");
      for (const cookie of response.headers.getSetCookie()) head.push(["set-cookie", cookie]);
      res.writeHead(response.status, head.flat());
      if (!response.body) return void res.end();
      // Back-pressure, and the body cancelled when the client goes away, are node's.
      await pipeline(Readable.fromWeb(response.body as NodeReadableStream), res);
    } catch {
      res.destroy(); // the client went away mid-answer
    }
  }

  protected async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const bytes = new Uint8Array(await request.arrayBuffer());
    const body = new TextDecoder().decode(bytes);
    this.requests.push({
      method: request.method,
      path: url.pathname,
      search: url.search,
      headers: new Headers(request.headers),
      body: body.length > this.keepBodyChars ? body.slice(0, this.keepBodyChars) : body,
    });
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    const line = `${request.method} ${url.pathname}`;
    const fault = this.#faults.find((f) => f.left > 0 && (!f.match || f.match.test(line)));
    if (fault) {
      fault.left--;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.rawBody !== undefined) {
        return new Response(fault.rawBody, {
          status: fault.status ?? 200,
          headers: { "content-type": "application/json" },
        });
      }
      if (fault.status) {
        const headers: HeadersInit = fault.retryAfter ? { "retry-after": fault.retryAfter } : {};
        return Response.json({ message: `injected ${fault.status}` }, {
          status: fault.status,
          headers,
        });
      }
    }
    for (const route of this.#routes) {
      if (route.method !== request.method) continue;
      const match = route.pattern.exec({ pathname: url.pathname });
      if (!match) continue;
      const params = Object.fromEntries(
        Object.entries(match.pathname.groups).map(([k, v]) => [k, decodeURIComponent(v ?? "")]),
      );
      const result = await route.handler(request, params, body, bytes);
      return result instanceof Response ? result : Response.json(result);
    }
    return Response.json({ message: `no route for ${line}` }, { status: 404 });
  }
}
