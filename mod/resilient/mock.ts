/**
 * An in-memory Resilient REST API (like resilient-circuits' ResilientMock): register answers
 * by method and path pattern, run code against it, then look at the calls it received.
 * Used by `agent replay` when no platform is configured, by the demo, and by processor
 * authors' tests.
 */
import { type RequestOptions, type ResilientApi, RestError } from "./types.ts";

/** A call the mock received. */
export interface MockCall {
  method: string;
  /** The path as given (relative to the org unless it starts with /rest/). */
  path: string;
  body: unknown;
  contextToken: string | undefined;
}

export type MockAnswer = unknown | ((call: MockCall, params: Record<string, string>) => unknown);

interface Route {
  method: string;
  pattern: URLPattern;
  answer: MockAnswer;
}

/** Canned answers, e.g. `{"GET /users/4": {"id": 4, "email": "ann@example.com"}}`. */
export type MockFixtures = Record<string, unknown>;

export class ResilientMock implements ResilientApi {
  readonly calls: MockCall[];
  readonly #routes: Route[];
  readonly #contextToken: string | undefined;
  readonly orgId: number;

  constructor(
    options: { orgId?: number; fixtures?: MockFixtures } = {},
    shared?: { calls: MockCall[]; routes: Route[] },
    token?: string,
  ) {
    this.orgId = options.orgId ?? 201;
    this.calls = shared?.calls ?? [];
    this.#routes = shared?.routes ?? [];
    this.#contextToken = token;
    for (const [line, answer] of Object.entries(options.fixtures ?? {})) {
      const [method, path] = line.split(" ", 2);
      if (!method || !path) {
        throw new Error(`Mock fixture key "${line}" must look like "GET /users/4"`);
      }
      this.on(method, path, answer);
    }
  }

  /** Answers `method path` (a URLPattern pathname such as "/users/:id") with `answer`. */
  on(method: string, path: string, answer: MockAnswer): this {
    this.#routes.unshift({
      method: method.toUpperCase(),
      pattern: new URLPattern({ pathname: path }),
      answer,
    });
    return this;
  }

  withContext(contextToken: string | undefined): ResilientApi {
    return new ResilientMock(
      { orgId: this.orgId },
      { calls: this.calls, routes: this.#routes },
      contextToken,
    );
  }

  get<T>(path: string, _options?: RequestOptions): Promise<T> {
    return this.#call("GET", path, undefined);
  }
  post<T>(path: string, body: unknown, _options?: RequestOptions): Promise<T> {
    return this.#call("POST", path, body);
  }
  put<T>(path: string, body: unknown, _options?: RequestOptions): Promise<T> {
    return this.#call("PUT", path, body);
  }
  delete<T>(path: string, _options?: RequestOptions): Promise<T> {
    return this.#call("DELETE", path, undefined);
  }

  async getPut<T extends object>(path: string, change: (current: T) => T | void): Promise<T> {
    const current = await this.get<T>(path);
    return await this.put<T>(path, change(current) ?? current);
  }

  async ruleName(actionId: number): Promise<string | undefined> {
    const rules = await this.get<{ entities?: { id: number; name: string }[] }>("/actions").catch(
      () => undefined,
    );
    const name = rules?.entities?.find((r) => r.id === actionId)?.name;
    return name === undefined ? undefined : name;
  }

  /** Calls whose "METHOD path" matches. */
  seen(match: RegExp): MockCall[] {
    return this.calls.filter((c) => match.test(`${c.method} ${c.path}`));
  }

  #call<T>(method: string, path: string, body: unknown): Promise<T> {
    const call: MockCall = { method, path, body, contextToken: this.#contextToken };
    this.calls.push(call);
    const relative = path.replace(new RegExp(`^/rest/orgs/${this.orgId}`), "");
    for (const route of this.#routes) {
      if (route.method !== method) continue;
      const match = route.pattern.exec({ pathname: relative }) ??
        route.pattern.exec({ pathname: path });
      if (!match) continue;
      const params = Object.fromEntries(
        Object.entries(match.pathname.groups).map(([k, v]) => [k, v ?? ""]),
      );
      try {
        const answer = typeof route.answer === "function"
          ? route.answer(call, params)
          : structuredClone(route.answer);
        return Promise.resolve(answer as T);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return Promise.reject(new RestError(method, path, 404, "no mock answer registered"));
  }
}
