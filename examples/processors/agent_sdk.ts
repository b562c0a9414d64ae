// agent_sdk.ts: the agent's processor SDK, written by agent 0.1.0 ("agent actions new").
// Do not edit: it is rewritten on upgrade.
/**
 * The agent's processor SDK: what an author of a custom action processor uses, in one
 * file without imports, so that `agent actions new` can copy it next to the processor
 * (`agent_sdk.ts`) and it works the same from source, from the bundle and from the
 * compiled binary.
 *
 * ```ts
 * import { defineProcessor } from "./agent_sdk.ts";
 *
 * export default defineProcessor({
 *   queue: "example",
 *   requiredActionFields: ["note_text"],
 *   rules: {
 *     add_note: async (action, ctx) => {
 *       await ctx.rest.post(`/incidents/${action.incident.id}/comments`, {
 *         text: { format: "text", content: String(action.properties?.note_text ?? "") },
 *       });
 *       return "Note added";
 *     },
 *   },
 * });
 * ```
 *
 * Testing: {@linkcode testAction} runs a handler on a message against
 * {@linkcode ResilientMock}, an in-memory REST API (answers registered by method and path
 * pattern, like resilient-circuits' ResilientMock), and returns the reply and the calls made.
 */

// ---------------------------------------------------------------------------------------
// The Action Module's message shapes

/** TaskDTO (the fields most processors read; the platform sends more). */
export interface TaskDTO {
  id: number;
  inc_id: number;
  inc_name?: string | null;
  name: string;
  description?: string | null;
  instr_text?: string | null;
  status?: "O" | "C" | string;
  due_date?: number | null;
  init_date?: number | null;
  closed_date?: number | null;
  owner_id?: number | null;
  owner_fname?: string | null;
  owner_lname?: string | null;
  [field: string]: unknown;
}

/** IncidentDTO (always present in an action message). */
export interface IncidentDTO {
  id: number;
  name?: string | null;
  [field: string]: unknown;
}

/** ActionDataDTO: the body of an action message. */
export interface ActionData {
  action_id: number | null;
  object_type: number;
  operation_type?: "created" | "modified" | "deleted" | string;
  incident: IncidentDTO;
  task?: TaskDTO | null;
  artifact?: Record<string, unknown> | null;
  note?: Record<string, unknown> | null;
  milestone?: Record<string, unknown> | null;
  attachment?: Record<string, unknown> | null;
  row?: Record<string, unknown> | null;
  type_info?: Record<string, unknown>;
  /** A menu-item rule's activity fields (its dialog's inputs), by API name. */
  properties?: Record<string, unknown> | null;
  user?: { id?: number; fname?: string; lname?: string; email?: string } | null;
  [field: string]: unknown;
}

/** ActionAcknowledgementDTO: what goes back on the reply-to queue. */
export interface Reply {
  /** 0 = info, 1 = error. */
  message_type: 0 | 1;
  message: string;
  complete: boolean;
}

/** What a handler may return: a string (info reply), a full Reply, or nothing ("OK"). */
export type HandlerResult = string | Reply | undefined | void;

// ---------------------------------------------------------------------------------------
// The REST API

/** Options for one request. */
export interface RequestOptions {
  signal?: AbortSignal | undefined;
  /** Extra headers. */
  headers?: Record<string, string> | undefined;
}

/** REST access to one org. Paths not starting with "/rest/" are under /rest/orgs/{org_id}. */
export interface ResilientApi {
  readonly orgId: number;
  get<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
  post<T = unknown>(path: string, body: unknown, options?: RequestOptions): Promise<T>;
  put<T = unknown>(path: string, body: unknown, options?: RequestOptions): Promise<T>;
  delete<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
  /** GET, apply `change`, PUT; on 409 Conflict re-read and re-apply (bounded). */
  getPut<T extends object>(
    path: string,
    change: (current: T) => T | void,
    options?: RequestOptions,
  ): Promise<T>;
  /** The same API, sending `X-Co3ContextToken` (so the platform does not re-fire rules). */
  withContext(contextToken: string | undefined): ResilientApi;
  /** Rule (action) display name for an action_id, from /rest/orgs/{org}/actions, cached. */
  ruleName(actionId: number, options?: RequestOptions): Promise<string | undefined>;
}

/** Sends one request by method name (how a handler's REST call reaches a ResilientApi). */
export function requestVia(
  api: ResilientApi,
  method: string,
  path: string,
  body: unknown,
  options?: RequestOptions,
): Promise<unknown> {
  switch (method) {
    case "GET":
      return api.get(path, options);
    case "POST":
      return api.post(path, body, options);
    case "PUT":
      return api.put(path, body, options);
    case "DELETE":
      return api.delete(path, options);
    default:
      return Promise.reject(new Error(`unknown REST method ${method}`));
  }
}

/**
 * The 409 loop behind `getPut`: GET, apply `change`, PUT; on 409 Conflict re-read and
 * re-apply, up to `attempts` times. `onConflict` hears of each retry.
 */
export async function getPutWithRetry<T extends object>(
  api: Pick<ResilientApi, "get" | "put">,
  path: string,
  change: (current: T) => T | void,
  options: { request?: RequestOptions; attempts?: number; onConflict?(attempt: number): void } = {},
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const current = await api.get<T>(path, options.request);
    try {
      return await api.put<T>(path, change(current) ?? current, options.request);
    } catch (error) {
      if (!(error instanceof RestError && error.status === 409)) throw error;
      if (attempt >= (options.attempts ?? 5)) throw error;
      options.onConflict?.(attempt);
    }
  }
}

/** An HTTP error from the platform, naming the request. */
export class RestError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${method} ${path} failed: HTTP ${status}${detail ? ` ${detail}` : ""}`, options);
    this.name = "RestError";
  }
}

// ---------------------------------------------------------------------------------------
// Processors

/** A field a processor needs: its API name, and optionally its input type ("text", ...). */
export type FieldRequirement = string | { name: string; type?: string };

/** REST access for a handler: the platform's API, acting for this message. */
export interface HandlerRest {
  get<T = unknown>(path: string): Promise<T>;
  post<T = unknown>(path: string, body: unknown): Promise<T>;
  put<T = unknown>(path: string, body: unknown): Promise<T>;
  delete<T = unknown>(path: string): Promise<T>;
  /** GET, apply `change`, PUT; on 409 Conflict re-read and re-apply (up to 5 times). */
  getPut<T extends object>(path: string, change: (current: T) => T | void): Promise<T>;
}

/** What a handler gets besides the action data. */
export interface ProcessorContext {
  /** The REST API; every call sends this message's X-Co3ContextToken. */
  rest: HandlerRest;
  incidents: {
    get<T extends object = IncidentDTO>(id: number): Promise<T>;
    /** Changes an incident with the 409 re-read/re-apply loop. */
    update<T extends object = IncidentDTO>(
      id: number,
      change: (incident: T) => T | void,
    ): Promise<T>;
  };
  /** The processor's own INI section (`[name]`), `$NAME` values read from the environment. */
  config: Record<string, string>;
  log: {
    debug(message: string): void;
    info(message: string): void;
    warn(message: string): void;
    error(message: string): void;
  };
  /** Aborted when the handler's time is up or the agent shuts down. */
  signal: AbortSignal;
  /** The normalised name of the rule that sent the message (`Add note` -> `add_note`). */
  ruleName: string | undefined;
  message: {
    messageId: string;
    correlationId: string | undefined;
    queue: string;
    headers: Record<string, string>;
  };
  /** Sends an interim status reply (`complete: false`) that users see on the action. */
  status(text: string): void;
  /**
   * Runs a side effect once per message: after a crash and redelivery, a recorded effect is
   * not run again and its recorded (JSON) result is returned.
   */
  effect<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

export type Handler = (
  action: ActionData,
  ctx: ProcessorContext,
) => HandlerResult | Promise<HandlerResult>;

/** A processor: the queue it serves, its handlers, and the options resilient-circuits has. */
export interface ProcessorDefinition {
  /** The message destination's programmatic name (`example` for actions.<org>.example). */
  queue: string;
  /** Handlers by normalised rule name (`Add note` -> `add_note`). */
  rules?: Record<string, Handler>;
  /** The catch-all handler, for rules without their own. */
  handle?: Handler;
  /** Incident fields that must exist on the platform (checked at start-up). */
  requiredFields?: FieldRequirement[];
  /** Action (activity) fields that must exist on the platform (checked at start-up). */
  requiredActionFields?: FieldRequirement[];
  /** Wait this many seconds before handling (the message stays unacked meanwhile). */
  defer?: number;
  /**
   * Handle only the last of a burst of messages with the same key (a dotted path into the
   * action, default: the object's id) arriving within `seconds`. With `discard` the absorbed
   * messages are acked at once with an info reply; otherwise with the final reply.
   */
  debounce?: { seconds: number; discard?: boolean; key?: string };
  /** Actions handled at once (default: [resilient] num_workers). */
  workers?: number;
  /** A handler running longer fails the action with an error reply (default 300). */
  timeoutSeconds?: number;
  /**
   * resilient-circuits' selftest: checks what the processor needs (its own services, its
   * config) and reports, for `agent selftest`. Return nothing or `true` for success, `false`
   * or `{ state: "failure", reason }` for a failure; a throw is a failure with its message.
   * `ctx.rest` uses the agent's own credentials (there is no message, so no context token).
   */
  selftest?: (ctx: SelftestContext) => SelftestAnswer | Promise<SelftestAnswer>;
}

/** What a selftest gets: the REST API, its INI section, a log, an abort signal. */
export type SelftestContext = Pick<ProcessorContext, "rest" | "config" | "log" | "signal">;

/** What a selftest may return (see {@linkcode ProcessorDefinition.selftest}). */
export type SelftestAnswer =
  | void
  | boolean
  | { state: "success" | "failure"; reason?: string };

/** A selftest's outcome, as `agent selftest` reports it. */
export interface SelftestResult {
  state: "success" | "failure" | "unimplemented";
  reason?: string;
}

/** Reads what a selftest returned (or threw: pass the error as `thrown`). */
export function selftestResult(value: unknown, thrown?: unknown): SelftestResult {
  if (thrown !== undefined) {
    return { state: "failure", reason: thrown instanceof Error ? thrown.message : String(thrown) };
  }
  if (value === undefined || value === null || value === true) return { state: "success" };
  if (value === false) return { state: "failure", reason: "the selftest returned false" };
  const o = value as { state?: unknown; reason?: unknown };
  if (typeof o === "object" && (o.state === "success" || o.state === "failure")) {
    return {
      state: o.state,
      ...(o.reason !== undefined && o.reason !== null ? { reason: String(o.reason) } : {}),
    };
  }
  return {
    state: "failure",
    reason: `the selftest returned ${
      JSON.stringify(value)?.slice(0, 200)
    }; expected nothing, true/false or {state: "success" | "failure", reason}`,
  };
}

/** Checks a definition's shape and returns it (typed); throws naming what is wrong. */
export function defineProcessor(definition: ProcessorDefinition): ProcessorDefinition {
  const problem = describeProcessor(definition).problem;
  if (problem) throw new TypeError(`defineProcessor: ${problem}`);
  return definition;
}

/** The declarative part of a definition (what the agent reads before running it). */
export interface ProcessorDescription {
  queue: string;
  rules: string[];
  catchAll: boolean;
  requiredFields: { name: string; type?: string }[];
  requiredActionFields: { name: string; type?: string }[];
  defer?: number;
  debounce?: { seconds: number; discard: boolean; key?: string };
  workers?: number;
  timeoutSeconds?: number;
  /** It has a selftest. */
  selftest: boolean;
}

/**
 * Validates a definition and describes it. Self-contained (the sandbox runs a copy of it).
 */
export function describeProcessor(
  value: unknown,
): { description: ProcessorDescription; problem?: undefined } | { problem: string } {
  const def = value as Record<string, unknown> | null;
  if (!def || typeof def !== "object") {
    return { problem: "the module's default export is not a processor definition" };
  }
  if (typeof def.queue !== "string" || !/^[A-Za-z0-9_.-]+$/.test(def.queue)) {
    return {
      problem: `queue must be a destination name such as "example" (got ${
        JSON.stringify(def.queue)
      })`,
    };
  }
  const rules = def.rules ?? {};
  if (typeof rules !== "object" || rules === null) return { problem: "rules must be an object" };
  for (const [name, fn] of Object.entries(rules)) {
    if (typeof fn !== "function") return { problem: `rules.${name} is not a function` };
    if (!/^[a-z0-9_]+$/.test(name)) {
      return {
        problem: `rules.${name}: rule keys are normalised names (lower case, "_" for anything ` +
          `else: "Add note" -> "add_note")`,
      };
    }
  }
  if (def.handle !== undefined && typeof def.handle !== "function") {
    return { problem: "handle is not a function" };
  }
  if (def.selftest !== undefined && typeof def.selftest !== "function") {
    return { problem: "selftest is not a function" };
  }
  if (!Object.keys(rules).length && def.handle === undefined) {
    return { problem: "it has no handler: give rules or handle" };
  }
  const fields = (key: string) => {
    const list = def[key] ?? [];
    if (!Array.isArray(list)) throw new Error(`${key} must be a list`);
    return list.map((f: unknown) => {
      if (typeof f === "string") return { name: f };
      const o = f as { name?: unknown; type?: unknown } | null;
      if (o && typeof o.name === "string") {
        return typeof o.type === "string" ? { name: o.name, type: o.type } : { name: o.name };
      }
      throw new Error(`${key} entries are field names or {name, type}`);
    });
  };
  const seconds = (key: string, v: unknown) => {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !(v >= 0) || v > 86400) {
      throw new Error(`${key} must be a number of seconds (0-86400)`);
    }
    return v;
  };
  try {
    const description: ProcessorDescription = {
      queue: def.queue,
      rules: Object.keys(rules),
      catchAll: typeof def.handle === "function",
      requiredFields: fields("requiredFields"),
      requiredActionFields: fields("requiredActionFields"),
      selftest: typeof def.selftest === "function",
    };
    const defer = seconds("defer", def.defer);
    if (defer !== undefined) description.defer = defer;
    const timeout = seconds("timeoutSeconds", def.timeoutSeconds);
    if (timeout !== undefined) description.timeoutSeconds = timeout;
    if (def.workers !== undefined) {
      if (!Number.isInteger(def.workers) || (def.workers as number) < 1) {
        throw new Error("workers must be a whole number of at least 1");
      }
      description.workers = def.workers as number;
    }
    if (def.debounce !== undefined) {
      const d = def.debounce as { seconds?: unknown; discard?: unknown; key?: unknown };
      const s = seconds("debounce.seconds", d?.seconds);
      if (s === undefined) throw new Error("debounce needs seconds");
      if (d.key !== undefined && typeof d.key !== "string") {
        throw new Error('debounce.key is a dotted path into the action, e.g. "task.id"');
      }
      description.debounce = {
        seconds: s,
        discard: d.discard === true,
        ...(typeof d.key === "string" ? { key: d.key } : {}),
      };
    }
    return { description };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}

/** resilient-circuits' rule name normalisation: lower-case, `\W+` -> `_`. */
export function normaliseRuleName(name: string): string {
  return name.toLowerCase().replace(/\W+/g, "_");
}

/** How a context reaches the outside world (the agent's host, or the testing kit). */
export interface ContextIO {
  request(
    method: "GET" | "POST" | "PUT" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<unknown>;
  status(text: string): void;
  log(level: "debug" | "info" | "warn" | "error", text: string): void;
  effectGet(name: string): Promise<{ found: boolean; result?: unknown }>;
  effectSet(name: string, result: unknown): Promise<void>;
}

/**
 * Builds a handler's context over `io`. Self-contained: the sandbox runs a copy of this
 * function, so it must not use anything outside its body.
 */
export function buildContext(
  io: ContextIO,
  info: {
    config: Record<string, string>;
    ruleName: string | undefined;
    message: ProcessorContext["message"];
    signal: AbortSignal;
  },
): ProcessorContext {
  const request = <T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown) =>
    io.request(method, path, body) as Promise<T>;
  const getPut = async <T extends object>(path: string, change: (current: T) => T | void) => {
    for (let attempt = 1;; attempt++) {
      const current = await request<T>("GET", path);
      try {
        return await request<T>("PUT", path, change(current) ?? current);
      } catch (error) {
        if ((error as { status?: number }).status !== 409 || attempt >= 5) throw error;
      }
    }
  };
  const rest: HandlerRest = {
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
    put: (path, body) => request("PUT", path, body),
    delete: (path) => request("DELETE", path),
    getPut,
  };
  return {
    rest,
    incidents: {
      get: (id) => request("GET", `/incidents/${id}`),
      update: (id, change) => getPut(`/incidents/${id}`, change),
    },
    config: info.config,
    log: {
      debug: (m) => io.log("debug", String(m)),
      info: (m) => io.log("info", String(m)),
      warn: (m) => io.log("warn", String(m)),
      error: (m) => io.log("error", String(m)),
    },
    signal: info.signal,
    ruleName: info.ruleName,
    message: info.message,
    status: (text) => io.status(String(text)),
    effect: async <T>(name: string, fn: () => Promise<T>) => {
      const recorded = await io.effectGet(name);
      if (recorded.found) return recorded.result as T;
      const result = await fn();
      await io.effectSet(name, result ?? null);
      return result;
    },
  };
}

/** A handler's result as the reply the platform gets. Self-contained (runs in the sandbox). */
export function toReply(result: unknown): Reply {
  if (result === undefined || result === null) {
    return { message_type: 0, message: "Action processed", complete: true };
  }
  if (typeof result === "object" && typeof (result as Reply).message === "string") {
    const r = result as Reply;
    return { message_type: r.message_type === 1 ? 1 : 0, message: r.message, complete: true };
  }
  return { message_type: 0, message: String(result), complete: true };
}

// ---------------------------------------------------------------------------------------
// Testing kit

/** A call the mock received. */
export interface MockCall {
  method: string;
  /** The path as given (relative to the org unless it starts with /rest/). */
  path: string;
  body: unknown;
  contextToken: string | undefined;
}

export type MockAnswer = unknown | ((call: MockCall, params: Record<string, string>) => unknown);

interface MockRoute {
  method: string;
  pattern: URLPattern;
  answer: MockAnswer;
}

/** Canned answers, e.g. `{"GET /users/4": {"id": 4, "email": "ann@example.com"}}`. */
export type MockFixtures = Record<string, unknown>;

/**
 * An in-memory Resilient REST API: register answers by method and path pattern, run code
 * against it, then look at the calls it received. A request nothing answers fails with 404.
 */
export class ResilientMock implements ResilientApi {
  readonly calls: MockCall[];
  readonly #routes: MockRoute[];
  readonly #contextToken: string | undefined;
  readonly orgId: number;

  constructor(
    options: { orgId?: number; fixtures?: MockFixtures } = {},
    shared?: { calls: MockCall[]; routes: MockRoute[] },
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

  /**
   * Answers `method path` (a URLPattern pathname such as "/incidents/:id") with `answer`: a
   * value, or a function of the call and the path's parameters. Throw a RestError from it
   * to answer with an HTTP error. Later registrations win.
   */
  on(
    method: string,
    path: string,
    answer: (call: MockCall, params: Record<string, string>) => unknown,
  ): this;
  on(method: string, path: string, answer: unknown): this;
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

  getPut<T extends object>(path: string, change: (current: T) => T | void): Promise<T> {
    return getPutWithRetry(this, path, change);
  }

  async ruleName(actionId: number): Promise<string | undefined> {
    const rules = await this.get<{ entities?: { id: number; name: string }[] }>("/actions").catch(
      () => undefined,
    );
    return rules?.entities?.find((r) => r.id === actionId)?.name;
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

/** What {@linkcode testAction} saw. */
export interface ActionTestResult {
  /** The reply the platform would get. */
  reply: Reply;
  /** Interim status replies, in order. */
  statuses: string[];
  /** REST calls the handler made (each carries the message's context token). */
  calls: MockCall[];
  logs: { level: string; message: string }[];
}

/**
 * Runs a processor's handler on one action message against a {@linkcode ResilientMock}, the
 * way the agent runs it (rule dispatch, reply rules, effects, context token), and returns
 * the reply and what it did. `message` is an ActionDataDTO, or a recorded message
 * (`{"headers": {...}, "body": "<raw JSON>"}`, what `agent <cmd> --record` writes).
 */
export async function testAction(
  definition: ProcessorDefinition,
  message: ActionData | { headers: Record<string, string>; body: string },
  options: {
    mock?: ResilientMock;
    /** The rule that fired (normalised or display name); default: looked up by action_id. */
    rule?: string;
    config?: Record<string, string>;
    contextToken?: string;
  } = {},
): Promise<ActionTestResult> {
  const recorded = "headers" in message && "body" in message &&
    typeof message.body === "string";
  const headers: Record<string, string> = recorded
    ? { ...(message.headers as Record<string, string>) }
    : {};
  const action = (recorded ? JSON.parse(message.body as string) : message) as ActionData;
  const mock = options.mock ?? new ResilientMock();
  const token = options.contextToken ?? headers["Co3ContextToken"] ?? "test-context-token";
  const rest = mock.withContext(token);
  const statuses: string[] = [];
  const logs: { level: string; message: string }[] = [];
  const effects = new Map<string, unknown>();
  const ruleName = options.rule !== undefined
    ? normaliseRuleName(options.rule)
    : action.action_id !== null && action.action_id !== undefined
    ? await rest.ruleName(action.action_id).then((n) =>
      n === undefined ? undefined : normaliseRuleName(n)
    )
    : undefined;
  const handler = (ruleName !== undefined ? definition.rules?.[ruleName] : undefined) ??
    definition.handle;
  if (!handler) {
    throw new Error(
      `no handler for rule ${JSON.stringify(ruleName)} (rules: ${
        Object.keys(definition.rules ?? {}).join(", ") || "none"
      }, no catch-all handle)`,
    );
  }
  const ctx = buildContext({
    request: (method, path, body) => requestVia(rest, method, path, body),
    status: (text) => void statuses.push(text),
    log: (level, text) => void logs.push({ level, message: text }),
    effectGet: (name) =>
      Promise.resolve(
        effects.has(name) ? { found: true, result: effects.get(name) } : { found: false },
      ),
    effectSet: (name, result) => Promise.resolve(void effects.set(name, result)),
  }, {
    config: options.config ?? {},
    ruleName,
    message: {
      messageId: headers["message-id"] ?? "ID:test-1",
      correlationId: headers["correlation-id"] ?? "invid:1",
      queue: definition.queue,
      headers,
    },
    signal: new AbortController().signal,
  });
  let reply: Reply;
  try {
    reply = toReply(await handler(action, ctx));
  } catch (error) {
    reply = {
      message_type: 1,
      message: error instanceof Error ? error.message : String(error),
      complete: true,
    };
  }
  return { reply, statuses, calls: mock.calls, logs };
}

/**
 * Runs a processor's selftest against a {@linkcode ResilientMock} the way `agent selftest`
 * does (no context token) and returns its outcome and the calls it made.
 */
export async function testSelftest(
  definition: ProcessorDefinition,
  options: { mock?: ResilientMock; config?: Record<string, string> } = {},
): Promise<SelftestResult & { calls: MockCall[]; logs: { level: string; message: string }[] }> {
  const mock = options.mock ?? new ResilientMock();
  const logs: { level: string; message: string }[] = [];
  if (!definition.selftest) return { state: "unimplemented", calls: mock.calls, logs };
  const ctx = buildContext({
    request: (method, path, body) => requestVia(mock, method, path, body),
    status: () => {},
    log: (level, text) => void logs.push({ level, message: text }),
    effectGet: () => Promise.resolve({ found: false }),
    effectSet: () => Promise.resolve(),
  }, {
    config: options.config ?? {},
    ruleName: undefined,
    message: {
      messageId: "selftest",
      correlationId: undefined,
      queue: definition.queue,
      headers: {},
    },
    signal: new AbortController().signal,
  });
  let result: SelftestResult;
  try {
    result = selftestResult(await definition.selftest(ctx));
  } catch (error) {
    result = selftestResult(undefined, error);
  }
  return { ...result, calls: mock.calls, logs };
}
