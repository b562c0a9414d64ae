/**
 * The SecureChange REST client: Basic auth, JSON, TLS verified (a CA bundle from config),
 * a timeout per request, GETs retried on 5xx/connection errors; a comment POST is sent once.
 */
import { httpClientFor, type ProxySettings } from "../net/http.ts";
import { abortableSleep } from "../async/delay.ts";
import { tlsErrorFrom } from "../tls/errors.ts";
import { type RawTicket, type SecureChangeApi, SecureChangeError } from "./types.ts";

export interface SecureChangeOptions {
  /** e.g. https://securechange.example.com */
  url: string;
  username: string;
  password: string;
  caCerts?: string[] | undefined;
  timeoutMs?: number;
  proxy?: ProxySettings | undefined;
}

const BASE = "/securechangeworkflow/api/securechange";
const RETRY_DELAYS_MS = [500, 1_500, 4_000];

export class SecureChangeClient implements SecureChangeApi {
  readonly #o: SecureChangeOptions;
  readonly #http: Deno.HttpClient | undefined;

  constructor(options: SecureChangeOptions) {
    this.#o = options;
    this.#http = httpClientFor(options.url, { caCerts: options.caCerts, proxy: options.proxy });
  }

  async getTicket(id: number, options: { signal?: AbortSignal } = {}): Promise<RawTicket> {
    const path = `${BASE}/tickets/${id}`;
    for (let attempt = 0;; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch("GET", path, undefined, options.signal);
      } catch (error) {
        const tls = tlsErrorFrom(new URL(this.#o.url).hostname, error);
        if (tls) throw tls;
        if (attempt >= RETRY_DELAYS_MS.length || options.signal?.aborted) {
          throw new Error(`SecureChange GET ${path} failed: ${(error as Error).message}`, {
            cause: error,
          });
        }
        await abortableSleep(RETRY_DELAYS_MS[attempt]!, options.signal);
        continue;
      }
      if (response.ok) {
        const text = await response.text();
        let json: { ticket?: RawTicket };
        try {
          json = JSON.parse(text);
        } catch {
          throw new SecureChangeError(
            "GET",
            path,
            response.status,
            `answered with a body that is not JSON: ${text.slice(0, 80)}`,
          );
        }
        if (!json.ticket || typeof json.ticket !== "object") {
          throw new SecureChangeError(
            "GET",
            path,
            response.status,
            'answered without a "ticket" object',
          );
        }
        return json.ticket;
      }
      const detail = (await response.text().catch(() => "")).slice(0, 200);
      if (response.status < 500 || attempt >= RETRY_DELAYS_MS.length) {
        throw new SecureChangeError("GET", path, response.status, detail);
      }
      await abortableSleep(RETRY_DELAYS_MS[attempt]!, options.signal);
    }
  }

  async addComment(
    ticket: { id: number; stepId: number; taskId: number },
    content: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const path =
      `${BASE}/tickets/${ticket.id}/steps/${ticket.stepId}/tasks/${ticket.taskId}/comments`;
    let response: Response;
    try {
      response = await this.#fetch("POST", path, { comment: { content } }, options.signal);
    } catch (error) {
      const tls = tlsErrorFrom(new URL(this.#o.url).hostname, error);
      if (tls) throw tls;
      throw new Error(`SecureChange POST ${path} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!response.ok) {
      throw new SecureChangeError(
        "POST",
        path,
        response.status,
        (await response.text().catch(() => "")).slice(0, 200),
      );
    }
    await response.body?.cancel();
  }

  /** One authenticated read (the workflow definitions), for `agent doctor`; not retried. */
  async probe(options: { signal?: AbortSignal } = {}): Promise<number> {
    const path = `${BASE}/workflow_definitions`;
    const response = await this.#fetch("GET", path, undefined, options.signal);
    const text = await response.text().catch(() => "");
    if (!response.ok) throw new SecureChangeError("GET", path, response.status, text.slice(0, 200));
    try {
      const json = JSON.parse(text) as { workflows?: { workflow?: unknown } };
      const list = json.workflows?.workflow;
      return Array.isArray(list) ? list.length : list ? 1 : 0;
    } catch {
      throw new SecureChangeError(
        "GET",
        path,
        response.status,
        "answered with a body that is not JSON",
      );
    }
  }

  #fetch(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#o.timeoutMs ?? 30_000);
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method,
      headers: {
        accept: "application/json",
        authorization: `Basic ${btoa(`${this.#o.username}:${this.#o.password}`)}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(this.#http ? { client: this.#http } : {}),
    };
    return fetch(this.#o.url.replace(/\/$/, "") + path, init);
  }
}
