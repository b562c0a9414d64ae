/**
 * Base for the SaaS fakes (Resilient REST, Graph, Jira, SecureChange): a real HTTPS server
 * on 127.0.0.1 with a certificate from the test CA, routes by method and path pattern, a
 * log of every request, and fault injection: status codes with Retry-After, delays,
 * malformed bodies, dropped connections.
 */
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
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
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

  async start(
    options: { cert?: LeafName; port?: number } = {},
  ): Promise<this> {
    const pki = await testPki();
    const leaf = pki[options.cert ?? "server"];
    const ready = Promise.withResolvers<void>();
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      cert: leaf.cert,
      key: leaf.key,
      onListen: () => ready.resolve(),
      onError: (error) => Response.json({ error: String(error) }, { status: 500 }),
    }, (request) => this.handle(request));
    await ready.promise;
    this.#port = this.#server.addr.port;
    return this;
  }

  async stop(): Promise<void> {
    await this.#server?.shutdown();
    this.#server = undefined;
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
