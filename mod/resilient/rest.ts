/**
 * The Resilient REST client: API-key Basic auth or session login (`/rest/session`,
 * JSESSIONID cookie + `X-sess-id`), org id from the org name, `X-Co3ContextToken` when
 * acting for a message, retries with backoff that never blindly re-send a POST, the 409
 * re-read/re-apply loop, request timeouts, and TLS verified like STOMP.
 */
import { httpClientFor, type ProxySettings } from "../net/http.ts";
import type { ResilientConfig } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { log } from "../log/log.ts";
import { secrets } from "../log/redact.ts";
import { abortableSleep } from "../async/delay.ts";
import { retryAfterMs } from "../async/retry.ts";
import { tlsErrorFrom } from "../tls/errors.ts";
import { type RequestOptions, type ResilientApi, RestError } from "./types.ts";
import { getPutWithRetry } from "../sdk/sdk.ts";

const logger = log("resilient");
const RETRY_DELAYS_MS = [500, 1_000, 2_000, 4_000];
const MAX_CONFLICT_RETRIES = 5;
const MAX_RETRY_AFTER_MS = 60_000;
const RULE_CACHE_MS = 10 * 60_000;

interface Org {
  id: number;
  name: string;
  enabled?: boolean;
}

interface SessionInfo {
  csrf_token?: string;
  orgs?: Org[];
}

/** How the client reaches the platform. */
export interface RestOptions {
  baseUrl: string;
  org: string;
  auth: ResilientConfig["auth"];
  caCerts?: string[] | undefined;
  /** The way out (`[resilient] proxy_*`; else HTTPS_PROXY, unless NO_PROXY). */
  proxy?: ProxySettings | undefined;
  timeoutMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

class Session {
  headers: Record<string, string> = {};
  orgs: Org[] = [];
}

/** Rule names by action id, shared by the clients made with withContext(). */
interface RuleCache {
  names: Map<number, string>;
  at: number;
}

interface Shared {
  http: Deno.HttpClient | undefined;
  session: Session;
  orgId: number;
  rules: RuleCache;
}

/** The real client (see module doc). */
export class RestClient implements ResilientApi {
  readonly #options: RestOptions;
  readonly #http: Deno.HttpClient | undefined;
  readonly #session: Session;
  readonly #contextToken: string | undefined;
  readonly #rules: RuleCache;
  #orgId: number;

  private constructor(
    options: RestOptions,
    shared: Shared,
    contextToken?: string,
  ) {
    this.#options = options;
    this.#http = shared.http;
    this.#session = shared.session;
    this.#orgId = shared.orgId;
    this.#rules = shared.rules;
    this.#contextToken = contextToken;
  }

  /** Builds the client from `[resilient]`, logs in and resolves the org id. */
  static async fromConfig(
    config: ResilientConfig,
    options: { signal?: AbortSignal } = {},
  ): Promise<RestClient> {
    const caCerts = await caCertsFor(config.tls);
    const port = config.port === 443 ? "" : `:${config.port}`;
    return await RestClient.connect({
      baseUrl: `https://${config.host}${port}`,
      org: config.org,
      auth: config.auth,
      caCerts,
      proxy: config.proxy,
      timeoutMs: config.timeoutSeconds * 1000,
    }, options);
  }

  /** Logs in and resolves the org id. */
  static async connect(
    options: RestOptions,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<RestClient> {
    const http = httpClientFor(options.baseUrl, { caCerts: options.caCerts, proxy: options.proxy });
    const client = new RestClient(options, {
      http,
      session: new Session(),
      orgId: 0,
      rules: { names: new Map(), at: 0 },
    });
    await client.#login(signal);
    return client;
  }

  get orgId(): number {
    return this.#orgId;
  }

  withContext(contextToken: string | undefined): ResilientApi {
    // Not added to the secret registry: one per message would grow it without bound; the
    // header and property names ("...Token") are redacted by name.
    return new RestClient(this.#options, {
      http: this.#http,
      session: this.#session,
      orgId: this.#orgId,
      rules: this.#rules,
    }, contextToken);
  }

  get<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.#request<T>("GET", path, undefined, options);
  }
  post<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.#request<T>("POST", path, body, options);
  }
  put<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return this.#request<T>("PUT", path, body, options);
  }
  delete<T>(path: string, options?: RequestOptions): Promise<T> {
    return this.#request<T>("DELETE", path, undefined, options);
  }

  getPut<T extends object>(
    path: string,
    change: (current: T) => T | void,
    options?: RequestOptions,
  ): Promise<T> {
    return getPutWithRetry(this, path, change, {
      ...(options ? { request: options } : {}),
      attempts: MAX_CONFLICT_RETRIES,
      onConflict: (attempt) =>
        logger.info("PUT {path} conflicted with another edit; re-reading (attempt {attempt})", {
          path,
          attempt,
        }),
    });
  }

  async ruleName(actionId: number, options?: RequestOptions): Promise<string | undefined> {
    const fresh = Date.now() - this.#rules.at < RULE_CACHE_MS;
    if (!fresh || !this.#rules.names.has(actionId)) {
      const result = await this.get<{ entities?: { id: number; name: string }[] }>(
        "/actions",
        options,
      );
      this.#rules.names.clear();
      for (const rule of result.entities ?? []) this.#rules.names.set(rule.id, rule.name);
      this.#rules.at = Date.now();
    }
    return this.#rules.names.get(actionId);
  }

  async #login(signal?: AbortSignal): Promise<void> {
    const { auth, org } = this.#options;
    let info: SessionInfo;
    if (auth.kind === "api_key") {
      this.#session.headers = { authorization: `Basic ${btoa(`${auth.id}:${auth.secret}`)}` };
      info = await this.#request<SessionInfo>("GET", "/rest/session", undefined, { signal }, {
        relogin: false,
      });
    } else {
      const response = await this.#fetch("POST", "/rest/session", {
        email: auth.email,
        password: auth.password,
      }, {
        signal,
        authHeaders: {},
      });
      if (!response.ok) {
        throw new RestError("POST", "/rest/session", response.status, await errorDetail(response));
      }
      info = await parseJson<SessionInfo>(response, "POST", "/rest/session");
      const cookie = (response.headers.getSetCookie?.() ?? [])
        .map((c) => c.split(";")[0]!)
        .find((c) => c.startsWith("JSESSIONID="));
      if (!info.csrf_token || !cookie) {
        throw new Error("POST /rest/session answered without csrf_token or JSESSIONID cookie");
      }
      secrets.add(info.csrf_token);
      secrets.add(cookie.slice("JSESSIONID=".length));
      this.#session.headers = { "x-sess-id": info.csrf_token, cookie };
    }
    this.#session.orgs = info.orgs ?? [];
    const match = this.#session.orgs.find((o) => o.name === org);
    if (!match) {
      const names = this.#session.orgs.map((o) => `"${o.name}"`).join(", ") || "none";
      throw new Error(`Org "${org}" is not one this account belongs to (it belongs to: ${names})`);
    }
    if (match.enabled === false) throw new Error(`Org "${org}" is disabled and not accessible`);
    this.#orgId = match.id;
  }

  async #request<T>(
    method: string,
    path: string,
    body: unknown,
    options: RequestOptions = {},
    { relogin = true } = {},
  ): Promise<T> {
    const url = path.startsWith("/rest/")
      ? path
      : `/rest/orgs/${this.#orgId}${path.startsWith("/") ? "" : "/"}${path}`;
    const idempotent = method !== "POST";
    for (let attempt = 0;; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch(method, url, body, {
          ...options,
          authHeaders: this.#session.headers,
        });
      } catch (error) {
        const tls = tlsErrorFrom(new URL(this.#options.baseUrl).hostname, error);
        if (tls) throw tls;
        if (options.signal?.aborted) throw error;
        // A POST whose connection was refused never reached the server; anything else
        // may have, so a POST is not re-sent blindly.
        const neverSent = error instanceof Deno.errors.ConnectionRefused ||
          /connection refused|Connection refused/i.test(String(error));
        if ((!idempotent && !neverSent) || attempt >= RETRY_DELAYS_MS.length) {
          throw new Error(`${method} ${url} failed: ${(error as Error).message}`, { cause: error });
        }
        await this.#wait(RETRY_DELAYS_MS[attempt]!, options.signal);
        continue;
      }
      if (response.ok) {
        if (response.status === 204) return undefined as T;
        return await parseJson<T>(response, method, url);
      }
      const detail = await errorDetail(response);
      if (
        response.status === 401 && relogin && this.#options.auth.kind === "password" &&
        attempt === 0
      ) {
        logger.info("Session expired; logging in again");
        await this.#login(options.signal);
        continue;
      }
      const retryable = response.status === 429 ||
        (idempotent && [502, 503, 504].includes(response.status));
      if (!retryable || attempt >= RETRY_DELAYS_MS.length) {
        throw new RestError(method, url, response.status, detail);
      }
      const retryAfter = retryAfterMs(response.headers.get("retry-after"));
      const delay = Math.min(retryAfter ?? RETRY_DELAYS_MS[attempt]!, MAX_RETRY_AFTER_MS);
      logger.info("{method} {path}: HTTP {status}, retrying in {delayMs} ms", {
        method,
        path: url,
        status: response.status,
        delayMs: delay,
      });
      await this.#wait(delay, options.signal);
    }
  }

  #fetch(
    method: string,
    url: string,
    body: unknown,
    options: RequestOptions & { authHeaders: Record<string, string> },
  ): Promise<Response> {
    const headers: Record<string, string> = {
      accept: "application/json",
      ...options.authHeaders,
      ...options.headers,
    };
    if (this.#contextToken) headers["x-co3contexttoken"] = this.#contextToken;
    if (body !== undefined) headers["content-type"] = "application/json";
    const timeout = AbortSignal.timeout(this.#options.timeoutMs ?? 30_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method,
      headers,
      signal,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(this.#http ? { client: this.#http } : {}),
    };
    return fetch(this.#options.baseUrl + url, init);
  }

  #wait(ms: number, signal?: AbortSignal): Promise<void> {
    return (this.#options.sleep ?? abortableSleep)(ms * (0.75 + Math.random() / 2), signal);
  }
}

async function parseJson<T>(response: Response, method: string, path: string): Promise<T> {
  const text = await response.text();
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new RestError(
      method,
      path,
      response.status,
      `answered with a body that is not JSON: ${text.slice(0, 80)}`,
      {
        cause: error,
      },
    );
  }
}

async function errorDetail(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const json = JSON.parse(text);
    return String(json.message ?? json.error ?? text).slice(0, 300);
  } catch {
    return text.slice(0, 300);
  }
}
