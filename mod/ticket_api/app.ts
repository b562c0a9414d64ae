/**
 * The ticket service over HTTP (Hono): the Ticket Manager's routes under the context, with
 * bearer tokens, problem+json errors (RFC 9457), size and media-type limits, cursor
 * pagination in RFC 8288 Link headers, and the OpenAPI 3.1 document made from the same zod
 * schemas that validate the requests (schemas.ts). The Swagger UI and the document are
 * public; everything else needs a token, and writes a `write` token.
 */
import { createRoute, OpenAPIHono, type RouteConfig, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { TicketApiConfig } from "../config/config.ts";
import { JiraError } from "../jira/types.ts";
import { DEAD_LETTER_PREFIX, type DeadLetter } from "../action_module/listener.ts";
import { log } from "../log/log.ts";
import type { MailRecord } from "../mail_bridge/ledger.ts";
import { Ledger } from "../mail_bridge/ledger.ts";
import type { Store, StoreKey } from "../store/store.ts";
import { VERSION } from "../cli/version.ts";
import {
  Comment,
  DeadLetter as DeadLetterSchema,
  DeadLetterSearch,
  JiraWebhook,
  Mail,
  MailIdParam,
  MailSearch,
  NewComment,
  NewCommentForm,
  NewTicket,
  NewTicketForm,
  Problem,
  StringList,
  Ticket,
  TicketFields,
  TicketKeyParam,
  TicketSearch,
} from "./schemas.ts";
import { SECURITY_HEADERS, SWAGGER_FILES, swaggerFile, swaggerPage } from "./swagger.ts";
import { decodeCursor, encodeCursor, HttpProblem, type TicketService } from "./tickets.ts";
import { queueComment } from "../mail_bridge/reply_queue.ts";
import { createHmac } from "node:crypto";
import { sameSecret } from "../text/hash.ts";
import type { Scope, Tokens } from "./tokens.ts";

const logger = log("ticket-api");

export interface TicketAppDeps {
  service: TicketService;
  tokens: Tokens;
  store: Store;
  config: TicketApiConfig;
}

/** A request's deadline: its signal made when first needed (most reads never need one). */
interface Deadline {
  signal(): AbortSignal;
  /** Whether the deadline was made and has passed. */
  expired(): boolean;
}

type Env = { Variables: { token: string; deadline: Deadline } };

/** A route: its OpenAPI description (also the source of its validation) and its scope. */
interface Route {
  spec: RouteConfig;
  /** `null`: public. */
  scope: Scope | null;
  handle: (c: Context<Env>) => Promise<Response> | Response;
}

const problemContent = { "application/problem+json": { schema: Problem } };
const problems = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, {
    description: PROBLEM_TITLES[code] ?? "Error",
    content: problemContent,
  }]));
const PROBLEM_TITLES: Record<number, string> = {
  400: "Invalid request: `errors` names each field",
  401: "No token, or not a valid one",
  403: "The token lacks the scope (write)",
  404: "No such ticket",
  409: "A request with this Idempotency-Key is in progress",
  413: "The request (or an attachment) is too large",
  415: "Only application/json and multipart/form-data",
  422: "The Idempotency-Key was used for another request",
  502: "Jira failed or refused the agent's credentials",
  503: "Jira is throttling (Retry-After says how long)",
  504: "Jira did not answer in time",
};
const idempotencyHeader = z.object({
  "idempotency-key": z.string().min(1).max(255).optional().openapi({
    description: "The same key again returns the first response instead of creating again",
  }),
});
const linkHeader = {
  Link: {
    description: 'The next page: `<...?cursor=...>; rel="next"` (absent on the last)',
    schema: { type: "string" as const },
  },
};

/** The service's Hono app, and its OpenAPI document. */
export function ticketApp(deps: TicketAppDeps) {
  const { service, tokens, store, config } = deps;
  const context = config.context;
  const app = new OpenAPIHono<Env>();
  const routes: Route[] = [];
  const add = (spec: RouteConfig, scope: Scope | null, handle: Route["handle"]) =>
    routes.push({ spec, scope, handle });

  // --- public: the UI and the document
  add(
    createRoute({
      method: "get",
      path: "/",
      operationId: "swaggerUi",
      summary: "Swagger UI",
      tags: ["documentation"],
      responses: { 200: { description: "The Swagger UI page" } },
    }),
    null,
    () => swaggerPage(`${context}/`),
  );
  add(
    createRoute({
      method: "get",
      path: "/swagger-ui/{file}",
      operationId: "swaggerUiFile",
      summary: "The Swagger UI's files",
      tags: ["documentation"],
      request: {
        params: z.object({
          file: z.enum(SWAGGER_FILES as [string, ...string[]]).openapi({
            param: { name: "file", in: "path" },
          }),
        }),
      },
      responses: { 200: { description: "A script or style sheet" }, ...problems(404) },
    }),
    null,
    (c) => swaggerFile(c.req.param("file") ?? "") ?? problem(new HttpProblem(404, "Not found")),
  );
  add(
    createRoute({
      method: "get",
      path: "/openapi.json",
      operationId: "openApiDocument",
      summary: "This document",
      tags: ["documentation"],
      responses: { 200: { description: "OpenAPI 3.1" } },
    }),
    null,
    (c) => c.json(document()),
  );

  // --- tickets
  const supported = (what: "boards" | "categories", operationId: string, summary: string) =>
    add(
      createRoute({
        method: "get",
        path: `/tickets/supported-${what}`,
        operationId,
        summary,
        tags: ["tickets"],
        responses: {
          200: { description: summary, content: { "application/json": { schema: StringList } } },
          ...problems(401),
        },
      }),
      "read",
      (c) => c.json(service[what]),
    );
  supported("boards", "supportedBoards", "The boards (Jira projects) tickets may be in");
  supported("categories", "supportedCategories", "The categories a ticket may have");
  add(
    createRoute({
      method: "get",
      path: "/tickets",
      operationId: "searchTickets",
      summary: "Search tickets",
      description: "Only tickets of the supported boards and categories. The body is a plain " +
        "array; the next page is in the Link header.",
      tags: ["tickets"],
      request: { query: TicketSearch },
      responses: {
        200: {
          description: "A page of tickets",
          headers: linkHeader,
          content: { "application/json": { schema: z.array(Ticket) } },
        },
        ...problems(400, 401, 502, 503, 504),
      },
    }),
    "read",
    async (c) => {
      const query = parse(TicketSearch, queryOf(c), "query");
      const page = await service.search(
        {
          boards: query.boards,
          categories: query.categories,
          reporter: query.reporter,
          assignee: query.assignee,
          watcher: query.watcher,
          status: query.status,
          q: query.q,
          limit: query.limit,
          ascending: query.sort === "created",
          cursor: query.cursor,
        },
        extraOf(query.fields),
        c.get("deadline").signal(),
      );
      const response = c.json(page.tickets);
      if (page.next) response.headers.set("link", nextLink(c, page.next));
      return response;
    },
  );
  add(
    createRoute({
      method: "post",
      path: "/tickets",
      operationId: "createTicket",
      summary: "Create a ticket",
      tags: ["tickets"],
      request: {
        headers: idempotencyHeader,
        body: {
          required: true,
          content: {
            "application/json": { schema: NewTicket },
            "multipart/form-data": { schema: NewTicketForm },
          },
        },
      },
      responses: {
        201: { description: "The ticket", content: { "application/json": { schema: Ticket } } },
        ...problems(400, 401, 403, 409, 413, 415, 422, 502, 503, 504),
      },
    }),
    "write",
    async (c) => {
      const { fields, files } = await bodyOf(c, NewTicket);
      return created(c, await service.create(fields, files, writeOptions(c)));
    },
  );
  add(
    createRoute({
      method: "get",
      path: "/tickets/{key}",
      operationId: "getTicket",
      summary: "One ticket",
      tags: ["tickets"],
      request: { params: TicketKeyParam, query: TicketFields },
      responses: {
        200: { description: "The ticket", content: { "application/json": { schema: Ticket } } },
        ...problems(400, 401, 404, 502, 503, 504),
      },
    }),
    "read",
    async (c) => {
      const { key } = parse(TicketKeyParam, c.req.param(), "path");
      const { fields } = parse(TicketFields, queryOf(c), "query");
      return c.json(await service.get(key, extraOf(fields), c.get("deadline").signal()));
    },
  );
  add(
    createRoute({
      method: "post",
      path: "/tickets/{key}/comment",
      operationId: "commentTicket",
      summary: "Comment on a ticket",
      tags: ["tickets"],
      request: {
        params: TicketKeyParam,
        headers: idempotencyHeader,
        body: {
          required: true,
          content: {
            "application/json": { schema: NewComment },
            "multipart/form-data": { schema: NewCommentForm },
          },
        },
      },
      responses: {
        201: { description: "The comment", content: { "application/json": { schema: Comment } } },
        ...problems(400, 401, 403, 404, 409, 413, 415, 422, 502, 503, 504),
      },
    }),
    "write",
    async (c) => {
      const { key } = parse(TicketKeyParam, c.req.param(), "path");
      const { fields, files } = await bodyOf(c, NewComment);
      return created(c, await service.comment(key, fields, files, writeOptions(c)));
    },
  );
  add(
    createRoute({
      method: "get",
      path: "/tickets/{key}/comments",
      operationId: "ticketComments",
      summary: "A ticket's comments",
      tags: ["tickets"],
      request: { params: TicketKeyParam },
      responses: {
        200: {
          description: "Comments, oldest first",
          content: { "application/json": { schema: z.array(Comment) } },
        },
        ...problems(400, 401, 404, 502, 503, 504),
      },
    }),
    "read",
    async (c) => {
      const { key } = parse(TicketKeyParam, c.req.param(), "path");
      return c.json(await service.comments(key, c.get("deadline").signal()));
    },
  );

  // --- beyond the original: the mail bridge's ledger and the dead letters
  add(
    createRoute({
      method: "get",
      path: "/mails",
      operationId: "listMails",
      summary: "Mails the bridge has seen, with what became of them",
      tags: ["mail bridge"],
      request: { query: MailSearch },
      responses: {
        200: {
          description: "A page of ledger records",
          headers: linkHeader,
          content: { "application/json": { schema: z.array(Mail) } },
        },
        ...problems(400, 401),
      },
    }),
    "read",
    async (c) => {
      const query = parse(MailSearch, queryOf(c), "query");
      const page = await mailPage(store, query);
      const response = c.json(page.mails);
      if (page.next) response.headers.set("link", nextLink(c, page.next));
      return response;
    },
  );
  add(
    createRoute({
      method: "post",
      path: "/mails/{id}/retry",
      operationId: "retryMail",
      summary: "Have the bridge handle a dead-letter mail again on its next pass",
      tags: ["mail bridge"],
      request: { params: MailIdParam },
      responses: {
        202: { description: "Queued", content: { "application/json": { schema: Mail } } },
        ...problems(401, 403, 404, 409),
      },
    }),
    "write",
    async (c) => {
      const { id } = parse(MailIdParam, c.req.param(), "path");
      const found = await findMail(store, id);
      if (!found) throw new HttpProblem(404, "No such mail", `the ledger has no mail ${id}`);
      if (found.record.state !== "failed") {
        throw new HttpProblem(
          409,
          "Not a dead letter",
          `mail ${id} is ${found.record.state}; only failed mails are retried`,
        );
      }
      await new Ledger(store, found.mailbox).requestRetry(id);
      return c.json(mailOf(found.mailbox, id, found.record), 202);
    },
  );
  add(
    createRoute({
      method: "get",
      path: "/dead-letters",
      operationId: "deadLetters",
      summary: "Action messages and mails that failed for good",
      tags: ["mail bridge"],
      request: {
        query: DeadLetterSearch,
      },
      responses: {
        200: {
          description: "Dead letters, actions first",
          content: { "application/json": { schema: z.array(DeadLetterSchema) } },
        },
        ...problems(400, 401),
      },
    }),
    "read",
    async (c) => {
      const { limit } = parse(DeadLetterSearch, queryOf(c), "query");
      return c.json(await deadLetters(store, limit));
    },
  );

  // --- Jira's comment webhook (the way back): verified by its own secret, not a token
  add(
    createRoute({
      method: "post",
      path: "/webhooks/jira",
      operationId: "jiraWebhook",
      summary: "Jira's comment_created webhook: the comment goes back to the sender",
      description: "Verified with [mail_bridge] webhook_secret: Cloud's X-Hub-Signature " +
        "(sha256 HMAC of the body), or Server/DC's ?secret= in the webhook's URL. The " +
        "comment is queued; the mail bridge's reply pass sends it.",
      tags: ["mail bridge"],
      request: {
        body: {
          required: true,
          content: { "application/json": { schema: JiraWebhook } },
        },
      },
      responses: {
        202: { description: "Queued (or not a comment event: ignored)" },
        ...problems(400, 401, 404, 413),
      },
    }),
    null,
    async (c) => {
      const secret = config.bridge.webhookSecret;
      if (!secret) {
        throw new HttpProblem(
          404,
          "Not found",
          "no webhook: [mail_bridge] webhook_secret is not set",
        );
      }
      const raw = new Uint8Array(await c.req.arrayBuffer());
      if (!verifyWebhook(raw, secret, c.req.header("x-hub-signature"), c.req.query("secret"))) {
        logger.warning("Jira webhook refused: bad or missing signature");
        throw new HttpProblem(401, "Unauthorized", "the webhook's signature does not match");
      }
      let event: z.output<typeof JiraWebhook>;
      try {
        event = parse(JiraWebhook, JSON.parse(new TextDecoder().decode(raw)), "body");
      } catch (error) {
        if (error instanceof HttpProblem) throw error;
        throw new HttpProblem(400, "Invalid request", "the body is not JSON");
      }
      if (event.webhookEvent !== "comment_created" || !event.comment?.id || !event.issue?.key) {
        return c.body(null, 202);
      }
      await queueComment(store, { key: event.issue.key, id: event.comment.id, via: "webhook" });
      return c.body(null, 202);
    },
  );

  // --- the document
  for (const route of routes) {
    app.openAPIRegistry.registerPath({
      ...route.spec,
      ...(route.scope ? { security: [{ bearer: [] }] } : { security: [] }),
    });
  }
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: 'A token from "agent ticket-api token create NAME"',
  });
  let doc: unknown;
  const document = () =>
    doc ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "Tickets API",
        version: VERSION,
        description: "The Ticket Manager's ticket service, served by the agent: tickets are " +
          "Jira issues of the supported boards. Errors are application/problem+json (RFC 9457).",
      },
      servers: [{ url: context || "/" }],
      security: [{ bearer: [] }],
    });

  // --- the pipeline: deadline, access log, errors, auth, limits, then the route
  const server = new OpenAPIHono<Env>({ strict: false }).basePath(context);
  server.use("*", async (c, next) => {
    // The raw path (c.req.path drops a trailing slash under strict: false).
    const path = new URL(c.req.url).pathname;
    // `<context>` without the slash: the UI's relative links need it.
    if (context && c.req.method === "GET" && path === context) {
      return c.redirect(`${context}/`, 308);
    }
    const started = performance.now();
    let deadline: AbortSignal | undefined;
    c.set("deadline", {
      signal: () => deadline ??= AbortSignal.timeout(config.timeoutSeconds * 1000),
      expired: () => deadline?.aborted === true,
    });
    try {
      await next();
    } finally {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
        if (!c.res.headers.has(name)) c.res.headers.set(name, value);
      }
      // Writes and failures at info; successful reads (the bulk of traffic) at debug.
      const status = c.res.status;
      const level = status >= 500
        ? "warning"
        : c.req.method === "GET" && status < 400
        ? "debug"
        : "info";
      logger[level]("{method} {path} {status} {ms} ms, client {client}", {
        method: c.req.method,
        path,
        status,
        ms: Math.round(performance.now() - started),
        client: c.get("token") ?? "anonymous",
      });
    }
  });
  server.onError((error, c) => problem(asProblem(error, c.get("deadline").expired(), config)));
  server.notFound((c) =>
    problem(new HttpProblem(404, "Not found", `no route ${c.req.method} ${c.req.path}`))
  );
  const limit = bodyLimit({
    maxSize: config.maxRequestBytes,
    onError: () =>
      problem(
        new HttpProblem(
          413,
          "Request too large",
          `at most ${config.maxRequestBytes} bytes ([ticket_api] max_request_mb)`,
        ),
      ),
  });
  for (const route of routes) {
    const path = route.spec.path.replace(/\{(\w+)\}/g, ":$1");
    const method = route.spec.method.toUpperCase();
    server.on(
      method,
      path,
      async (c, next) => {
        // Who may call comes first: an anonymous client learns nothing, not even a size limit.
        if (route.scope) await authorize(c, tokens, route.scope);
        await next();
      },
      ...(route.spec.request?.body ? [limit] : []),
      (c) => route.handle(c),
    );
  }
  return {
    fetch: (request: Request) => server.fetch(request),
    document,
    /** Every route as "METHOD /path" (the OpenAPI form), for tests to compare with the document. */
    routes: routes.map((r) => `${r.spec.method.toUpperCase()} ${r.spec.path}`),
  };
}

/** The bearer token's record, or 401/403. */
async function authorize(c: Context<Env>, tokens: Tokens, scope: Scope): Promise<void> {
  const header = c.req.header("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const record = match ? await tokens.verify(match[1]!) : undefined;
  if (!record) {
    throw new HttpProblem(
      401,
      "Unauthorized",
      match
        ? "the token is not valid (revoked, or never made)"
        : "send Authorization: Bearer TOKEN",
      { headers: { "www-authenticate": 'Bearer realm="tickets"' } },
    );
  }
  c.set("token", record.name);
  if (scope === "write" && record.scope !== "write") {
    throw new HttpProblem(403, "Forbidden", `token ${record.name} may only read`, {
      headers: { "www-authenticate": 'Bearer realm="tickets", error="insufficient_scope"' },
    });
  }
}

/** The body as the schema's fields and the uploaded files; 415 for other media types. */
async function bodyOf<S extends z.ZodType>(
  c: Context<Env>,
  schema: S,
): Promise<{ fields: z.output<S>; files: File[] }> {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") {
    const text = await c.req.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new HttpProblem(
        400,
        "Invalid request",
        `the body is not JSON: ${(error as Error).message}`,
        {
          errors: [{ field: "body", message: "not JSON" }],
        },
      );
    }
    return { fields: parse(schema, value, "body"), files: [] };
  }
  if (type === "multipart/form-data") {
    let form: FormData;
    try {
      form = await c.req.raw.formData();
    } catch (error) {
      if (error instanceof HttpProblem) throw error;
      throw new HttpProblem(
        400,
        "Invalid request",
        `the multipart body cannot be read: ${(error as Error).message}`,
      );
    }
    const fields: Record<string, unknown> = {};
    const files: File[] = [];
    for (const [name, value] of form.entries()) {
      if (name === "attachments") {
        if (typeof value === "string") {
          throw new HttpProblem(400, "Invalid request", "attachments must be files", {
            errors: [{ field: "attachments", message: "must be files, not text" }],
          });
        }
        files.push(value);
      } else if (typeof value !== "string") {
        throw new HttpProblem(400, "Invalid request", `${name} must be text, not a file`, {
          errors: [{ field: name, message: "must be text, not a file" }],
        });
      } else if (name === "watchers") {
        fields.watchers = [
          ...(fields.watchers as string[] ?? []),
          ...value.split(",").map((v) => v.trim()).filter(Boolean),
        ];
      } else fields[name] = value;
    }
    if (files.length > 20) {
      throw new HttpProblem(400, "Invalid request", "at most 20 attachments", {
        errors: [{ field: "attachments", message: "at most 20 files" }],
      });
    }
    return { fields: parse(schema, fields, "body"), files };
  }
  throw new HttpProblem(
    415,
    "Unsupported media type",
    `send application/json or multipart/form-data, not ${type || "nothing"}`,
  );
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.join(".") : where,
    message: issue.code === "unrecognized_keys"
      ? `unknown field(s): ${(issue as { keys?: string[] }).keys?.join(", ")}`
      : issue.message,
  }));
  throw new HttpProblem(
    400,
    "Invalid request",
    errors.map((e) => `${e.field}: ${e.message}`).join("; "),
    { errors },
  );
}

/** The query string, repeated keys as arrays. */
function queryOf(c: Context<Env>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, values] of Object.entries(c.req.queries())) {
    out[name] = values.length === 1 ? values[0]! : values;
  }
  return out;
}

function extraOf(fields: string[]) {
  const unknown = fields.filter((f) => f !== "rendered" && f !== "watchers");
  if (unknown.length) {
    throw new HttpProblem(400, "Invalid request", `fields: unknown ${unknown.join(", ")}`, {
      errors: [{
        field: "fields",
        message: `only rendered and watchers (not ${unknown.join(", ")})`,
      }],
    });
  }
  return { rendered: fields.includes("rendered"), watchers: fields.includes("watchers") };
}

/** What a write needs besides its body: who, its Idempotency-Key, its deadline. */
function writeOptions(c: Context<Env>) {
  return {
    token: c.get("token"),
    idempotencyKey: idempotencyKey(c),
    signal: c.get("deadline").signal(),
  };
}

function idempotencyKey(c: Context<Env>): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new HttpProblem(
      400,
      "Invalid request",
      "Idempotency-Key: 1 to 255 printable characters",
      {
        errors: [{ field: "Idempotency-Key", message: "1 to 255 printable ASCII characters" }],
      },
    );
  }
  return key;
}

function created(c: Context<Env>, result: { status: number; body: unknown; replayed?: boolean }) {
  const response = c.json(result.body, result.status as 201);
  if (result.replayed) response.headers.set("idempotent-replayed", "true");
  return response;
}

/** The URL of the next page: this request's, with `cursor` replaced. */
function nextLink(c: Context<Env>, cursor: string): string {
  const url = new URL(c.req.url);
  url.searchParams.set("cursor", cursor);
  return `<${url.pathname}${url.search}>; rel="next"`;
}

function problem(p: HttpProblem): Response {
  if (p.status >= 500) {
    logger.warning("{status} {title}: {detail}", {
      status: p.status,
      title: p.title,
      detail: p.message,
    });
  }
  return new Response(
    JSON.stringify({
      type: "about:blank",
      title: p.title,
      status: p.status,
      ...(p.message && p.message !== p.title ? { detail: p.message } : {}),
      ...(p.extra.errors ? { errors: p.extra.errors } : {}),
    }),
    {
      status: p.status,
      headers: { "content-type": "application/problem+json", ...(p.extra.headers ?? {}) },
    },
  );
}

/** Any failure as a problem: ours as they are, Jira's as 502/503/504, the rest 500. */
function asProblem(error: unknown, timedOut: boolean, config: TicketApiConfig): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error instanceof JiraError) {
    if (error.status === 404) return new HttpProblem(404, "No such ticket", error.message);
    if (error.status === 429 || error.status === 503) {
      const seconds = Math.max(1, Math.ceil((error.retryAfterMs ?? 5000) / 1000));
      return new HttpProblem(503, "Jira is throttling", error.message, {
        headers: { "retry-after": String(seconds) },
      });
    }
    if (error.status === 400) return new HttpProblem(400, "Jira refused the ticket", error.message);
    return new HttpProblem(502, "Jira failed", error.message);
  }
  if (timedOut) {
    return new HttpProblem(
      504,
      "Timeout",
      `no answer within ${config.timeoutSeconds} s ([ticket_api] timeout_seconds)`,
    );
  }
  logger.error("Ticket API request failed: {error}", { error });
  return new HttpProblem(500, "Internal error", (error as Error)?.message ?? String(error));
}

// --- the ledger and the dead letters

type MailQuery = z.output<typeof MailSearch>;

function mailOf(mailbox: string, id: string, r: MailRecord): z.output<typeof Mail> {
  return {
    id,
    mailbox,
    state: r.state,
    ...(r.key ? { key: r.key } : {}),
    ...(r.kind ? { kind: r.kind } : {}),
    from: r.from,
    subject: r.subject,
    received: r.receivedAt,
    ...(r.history.at(-1)?.at ? { updated: r.history.at(-1)!.at } : {}),
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}

/** Ledger records in key order, filtered, one page at a time. */
async function mailPage(
  store: Store,
  query: MailQuery,
): Promise<{ mails: z.output<typeof Mail>[]; next?: string }> {
  let after: StoreKey | undefined;
  if (query.cursor !== undefined) {
    const decoded = decodeCursor(query.cursor);
    if (!decoded || decoded.s !== "mails") {
      throw new HttpProblem(400, "Invalid request", "cursor: not a cursor of /mails", {
        errors: [{ field: "cursor", message: "not a cursor of /mails" }],
      });
    }
    after = JSON.parse(decoded.p);
  }
  const mails: z.output<typeof Mail>[] = [];
  let last: StoreKey | undefined;
  for await (const { key, value } of store.list<MailRecord>(["mail"], { after })) {
    if (key[2] !== "msg" || key.length !== 4) continue;
    last = key;
    const r = value;
    if (query.state && r.state !== query.state) continue;
    if (query.from && r.from.toLowerCase() !== query.from) continue;
    if (query.key && r.key !== query.key) continue;
    mails.push(mailOf(String(key[1]), String(key[3]), r));
    if (mails.length === query.limit) break;
  }
  const more = mails.length === query.limit && last !== undefined;
  return {
    mails,
    ...(more ? { next: encodeCursor({ s: "mails", p: JSON.stringify(last) }) } : {}),
  };
}

async function findMail(
  store: Store,
  id: string,
): Promise<{ mailbox: string; record: MailRecord } | undefined> {
  for await (const { key, value } of store.list<MailRecord>(["mail"])) {
    if (key[2] === "msg" && key[3] === id) return { mailbox: String(key[1]), record: value };
  }
  return undefined;
}

async function deadLetters(store: Store, limit: number) {
  const out: z.output<typeof DeadLetterSchema>[] = [];
  for await (const { key, value } of store.list<DeadLetter>(DEAD_LETTER_PREFIX, { limit })) {
    out.push({
      kind: "action",
      id: String(key.at(-1)),
      reason: value.problem,
      at: new Date(value.at).toISOString(),
      detail: { queue: value.queue, bodySize: value.bodySize ?? null },
    });
  }
  let mails = 0;
  for await (const { key, value } of store.list<MailRecord>(["mail"])) {
    if (key[2] !== "msg" || value.state !== "failed") continue;
    out.push({
      kind: "mail",
      id: String(key[3]),
      reason: value.error ?? value.reason ?? "failed",
      ...(value.history.at(-1)?.at ? { at: value.history.at(-1)!.at } : {}),
      detail: { mailbox: String(key[1]), from: value.from, subject: value.subject },
    });
    if (++mails >= limit) break;
  }
  return out;
}

/**
 * A Jira webhook's proof: Cloud signs the body (`X-Hub-Signature: sha256=<hex HMAC>`),
 * Server/DC carries the secret in the URL it was given. Compared in constant time.
 */
export function verifyWebhook(
  body: Uint8Array,
  secret: string,
  signature: string | undefined,
  urlSecret: string | undefined,
): boolean {
  if (signature) {
    const expected = "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
    return sameSecret(signature.trim().toLowerCase(), expected);
  }
  return urlSecret !== undefined && sameSecret(urlSecret, secret);
}
