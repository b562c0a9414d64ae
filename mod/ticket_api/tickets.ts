/**
 * What the ticket service does, apart from HTTP: tickets created and commented through the
 * same tracker the mail bridge writes with (jira.js, ADF on Cloud and wiki markup on
 * Server/DC with the same escaping, streamed attachments, the same retry rules), each
 * recorded in the store with its source; reads served from the store for `cache_seconds`;
 * `Idempotency-Key` made safe across crashes with a marker label, as the bridge's mails are.
 */
import type { MailBridgeConfig, TicketApiConfig } from "../config/config.ts";
import { concatAdf, textToAdf } from "../jira/adf.ts";
import {
  type AttachmentUpload,
  type IssueFilter,
  type IssueView,
  JiraError,
  type Tracker,
  type UserRef,
} from "../jira/types.ts";
import { log } from "../log/log.ts";
import { secrets } from "../log/redact.ts";
import { attachmentName, labelOf } from "../mail_bridge/rules.ts";
import { sha256Hex } from "../text/hash.ts";
import type { Store } from "../store/store.ts";

const logger = log("ticket-api");
/** The entity property an API ticket or comment carries (crash recovery reads it). */
export const TICKET_PROPERTY = "agent.ticket";
const TICKET_LABEL = "ticket-api";
/** A ticket is cached per set of extra fields: none, rendered, watchers, both. */
const VARIANTS = ["", "r", "w", "rw"];

/** A request the client must fix, or a failure to pass on: becomes problem+json. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail?: string,
    readonly extra: {
      errors?: { field: string; message: string }[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(detail ?? title);
    this.name = "HttpProblem";
  }
}

/** What the store keeps of a ticket: where it came from, who asked. */
export interface TicketRecord {
  key: string;
  source: "api" | "mail";
  reporter: string;
  created: string;
  /** The token that created it (API). */
  by?: string | undefined;
  /** The mail it came from (mail). */
  messageId?: string | undefined;
  mailbox?: string | undefined;
}

export interface NewTicketInput {
  title: string;
  body: string;
  reporter: string;
  board?: string | undefined;
  category?: string | undefined;
  priority?: "low" | "high" | undefined;
  watchers?: string[] | undefined;
}

export interface Extra {
  rendered: boolean;
  watchers: boolean;
}

/** The idempotency record of one key. */
interface IdempotencyRecord {
  state: "started" | "done";
  request: string;
  marker: string;
  at: number;
  response?: { status: number; body: unknown };
}

export interface TicketServiceOptions {
  tracker: Tracker;
  store: Store;
  config: TicketApiConfig;
  issueType: string;
  now?: () => number;
}

export class TicketService {
  readonly #t: Tracker;
  readonly #store: Store;
  readonly #config: TicketApiConfig;
  readonly #bridge: MailBridgeConfig;
  readonly #issueType: string;
  readonly #now: () => number;
  /** The store's cached tickets, also kept here (the store serves other processes). */
  readonly #memory = new Map<string, { ticket: unknown; until: number }>();

  constructor(o: TicketServiceOptions) {
    this.#t = o.tracker;
    this.#store = o.store;
    this.#config = o.config;
    this.#bridge = o.config.bridge;
    this.#issueType = o.issueType;
    this.#now = o.now ?? Date.now;
  }

  get boards(): string[] {
    return this.#config.boards;
  }

  get categories(): string[] {
    return this.#config.categories;
  }

  /** A new ticket (`idempotency`: the key's scope and the request's fingerprint). */
  async create(
    input: NewTicketInput,
    files: File[],
    options: { token: string; idempotencyKey?: string | undefined; signal: AbortSignal },
  ): Promise<{ status: number; body: unknown; replayed?: boolean }> {
    const board = input.board ?? this.#config.boards[0]!;
    if (!this.#config.boards.includes(board)) {
      throw invalid("board", `"${board}" is not a supported board (${this.boards.join(", ")})`);
    }
    const category = input.category ?? this.#config.defaultCategory;
    if (input.category !== undefined && !this.#config.categories.includes(input.category)) {
      throw invalid(
        "category",
        `"${input.category}" is not a supported category (${this.categories.join(", ") || "none"})`,
      );
    }
    const fingerprint = sha256Hex(JSON.stringify([
      "create",
      input,
      files.map((f) => [f.name, f.size, f.type]),
    ]));
    return await this.#idempotent(options, fingerprint, async (marker) => {
      const uploads = await this.#uploads(files, options.signal);
      const reporter = await this.#user(input.reporter, options.signal);
      const labels = [
        ...new Set(
          [...this.#bridge.labels, TICKET_LABEL, ...(category ? [category] : [])].map(labelOf),
        ),
        ...(marker ? [marker] : []),
      ];
      const property = {
        key: TICKET_PROPERTY,
        value: { source: "api", reporter: input.reporter, messageId: marker ?? "" },
      };
      let key = marker
        ? await this.#t.findIssueByProperty({
          label: marker,
          propertyKey: TICKET_PROPERTY,
          messageId: marker,
          days: 2,
        }, options.signal)
        : undefined;
      if (key) logger.info("Found {key} made for this Idempotency-Key before", { key });
      key ??= (await this.#t.createIssue({
        project: board,
        issueType: this.#issueType,
        summary: secrets.scrubKnown(input.title.replace(/\s+/g, " ")),
        description: concatAdf(
          textToAdf(`${input.reporter} ${reporter ? "wrote" : "wrote (not a Jira user)"}:`),
          textToAdf(...secrets.scrubKnown(input.body).split(/\n\s*\n/)),
        ),
        labels,
        priority: input.priority ? this.#bridge.priorities.get(input.priority) : undefined,
        reporter,
        properties: [property],
      }, options.signal)).key;
      await this.#store.set(
        ["tickets", key],
        {
          key,
          source: "api",
          reporter: input.reporter,
          created: new Date(this.#now()).toISOString(),
          by: options.token,
        } satisfies TicketRecord,
      );
      await this.#attach(key, uploads, options.signal);
      for (const address of input.watchers ?? []) {
        // Added when Jira lets us: a watcher who is no user, or a refusal, is only logged.
        try {
          const user = await this.#user(address, options.signal);
          if (user) await this.#t.addWatcher(key, user, options.signal);
          else logger.info("Watcher {address} of {key} is not a Jira user", { address, key });
        } catch (error) {
          if (options.signal.aborted) throw error;
          logger.warning("Cannot add watcher {address} to {key}: {error}", {
            address,
            key,
            error: (error as Error).message,
          });
        }
      }
      logger.info("Ticket {key} created for {reporter} ({files} attachments)", {
        key,
        reporter: input.reporter,
        files: uploads.length,
      });
      return {
        status: 201,
        body: await this.get(key, { rendered: false, watchers: false }, options.signal, true),
      };
    });
  }

  /** A comment on `key`. */
  async comment(
    key: string,
    input: { body: string; author: string },
    files: File[],
    options: { token: string; idempotencyKey?: string | undefined; signal: AbortSignal },
  ): Promise<{ status: number; body: unknown; replayed?: boolean }> {
    const fingerprint = sha256Hex(JSON.stringify([
      "comment",
      key,
      input,
      files.map((f) => [f.name, f.size, f.type]),
    ]));
    return await this.#idempotent(options, fingerprint, async (marker) => {
      const current = await this.#visible(key, options.signal);
      const uploads = await this.#uploads(files, options.signal);
      const property = {
        key: TICKET_PROPERTY,
        value: { source: "api", author: input.author, messageId: marker ?? "" },
      };
      let id = marker
        ? await this.#t.findCommentByProperty(current, {
          propertyKey: TICKET_PROPERTY,
          messageId: marker,
        }, options.signal)
        : undefined;
      id ??= (await this.#t.addComment(
        current,
        concatAdf(
          textToAdf(`${input.author} wrote:`),
          textToAdf(...secrets.scrubKnown(input.body).split(/\n\s*\n/)),
        ),
        property,
        options.signal,
      )).id;
      await this.#attach(current, uploads, options.signal);
      await this.#forget(current);
      logger.info("Comment {id} on {key} by {author}", { id, key: current, author: input.author });
      return {
        status: 201,
        body: {
          id,
          key: current,
          author: { emailAddress: input.author },
          attachments: uploads.map((u) => u.filename),
        },
      };
    });
  }

  /** One ticket, served from the store while fresh (`fresh`: read Jira now). */
  async get(key: string, extra: Extra, signal: AbortSignal, fresh = false): Promise<unknown> {
    const variant = `${extra.rendered ? "r" : ""}${extra.watchers ? "w" : ""}`;
    const cacheKey = ["ticket_api", "cache", key, variant];
    const ttlMs = this.#config.cacheSeconds * 1000;
    const memoryKey = `${key}|${variant}`;
    if (!fresh && ttlMs > 0) {
      const held = this.#memory.get(memoryKey);
      if (held && held.until > this.#now()) return held.ticket;
      const cached = await this.#store.get<{ ticket: unknown; until: number }>(cacheKey);
      if (cached) {
        this.#remember(memoryKey, cached);
        return cached.ticket;
      }
    }
    const issue = await this.#t.getIssue(key, { rendered: extra.rendered }, signal);
    if (!issue || !this.#served(issue)) throw notFound(key);
    const ticket = await this.#ticket(issue, extra, signal);
    if (ttlMs > 0) {
      const entry = { ticket, until: this.#now() + ttlMs };
      await this.#store.set(cacheKey, entry, { ttlMs });
      this.#remember(memoryKey, entry);
    }
    return ticket;
  }

  /** A page of tickets; `cursor` came from the page before. */
  async search(
    query: {
      boards: string[];
      categories: string[];
      reporter?: string | undefined;
      assignee?: string | undefined;
      watcher?: string | undefined;
      status?: string | undefined;
      q?: string | undefined;
      limit: number;
      ascending: boolean;
      cursor?: string | undefined;
    },
    extra: Extra,
    signal: AbortSignal,
  ): Promise<{ tickets: unknown[]; next?: string | undefined }> {
    for (const board of query.boards) {
      if (!this.#config.boards.includes(board.toUpperCase())) {
        throw invalid("boards", `"${board}" is not a supported board (${this.boards.join(", ")})`);
      }
    }
    for (const category of query.categories) {
      if (!this.#config.categories.includes(category)) {
        throw invalid("categories", `"${category}" is not a supported category`);
      }
    }
    const users = async (field: "reporter" | "assignee" | "watcher") => {
      const address = query[field];
      return address === undefined ? undefined : await this.#user(address, signal) ?? null;
    };
    const [reporter, assignee, watcher] = await Promise.all([
      users("reporter"),
      users("assignee"),
      users("watcher"),
    ]);
    // Someone who is no Jira user reports, is assigned or watches nothing.
    if (reporter === null || assignee === null || watcher === null) return { tickets: [] };
    const categories = query.categories.length ? query.categories : this.#config.categories;
    const filter: IssueFilter = {
      projects: query.boards.length ? query.boards.map((b) => b.toUpperCase()) : this.boards,
      labels: categories.map(labelOf),
      reporter,
      assignee,
      watcher,
      status: query.status,
      text: query.q,
      ascending: query.ascending,
    };
    const shape = sha256Hex(JSON.stringify(filter));
    let position: string | undefined;
    if (query.cursor !== undefined) {
      const decoded = decodeCursor(query.cursor);
      if (!decoded || decoded.s !== shape.slice(0, 16)) {
        throw invalid("cursor", "does not belong to this search (start again without it)");
      }
      position = decoded.p;
    }
    const page = await this.#t.searchIssues(
      filter,
      { limit: query.limit, cursor: position },
      signal,
    );
    const tickets = await Promise.all(page.issues.map((i) => this.#ticket(i, extra, signal)));
    return {
      tickets,
      next: page.next === undefined
        ? undefined
        : encodeCursor({ s: shape.slice(0, 16), p: page.next }),
    };
  }

  async comments(key: string, signal: AbortSignal): Promise<unknown[]> {
    const current = await this.#visible(key, signal);
    return (await this.#t.comments(current, signal)).map(({ properties, ...comment }) => {
      const origin = properties?.find((p) => p.key === TICKET_PROPERTY)?.value as
        | { author?: string }
        | undefined;
      return origin?.author ? { ...comment, postedFor: origin.author } : comment;
    });
  }

  /** The ticket shape: the issue's fields, id, key, url, reporter.emailAddress. */
  async #ticket(issue: IssueView, extra: Extra, signal: AbortSignal): Promise<unknown> {
    const record = await this.#store.get<TicketRecord>(["tickets", issue.key]);
    const reporter = issue.fields.reporter as Record<string, unknown> | undefined;
    const ticket: Record<string, unknown> = {
      ...issue.fields,
      id: issue.id,
      key: issue.key,
      url: this.#t.browseUrl(issue.key),
    };
    // The person who asked, when the store knows (the Jira reporter may be the agent's account).
    if (record?.reporter || reporter) {
      ticket.reporter = {
        ...(reporter ?? {}),
        ...(record?.reporter ? { emailAddress: record.reporter } : {}),
      };
    }
    if (record) ticket.source = record.source;
    if (extra.rendered) ticket.rendered = issue.rendered ?? {};
    if (extra.watchers) ticket.watchers = await this.#t.watchers(issue.key, signal);
    return ticket;
  }

  /** The key of a served ticket as Jira knows it now, or 404. */
  async #visible(key: string, signal: AbortSignal): Promise<string> {
    const issue = await this.#t.getIssue(key, {}, signal);
    if (!issue || !this.#served(issue)) throw notFound(key);
    return issue.key;
  }

  /** Only tickets of the served boards (and categories, when there are any) are visible. */
  #served(issue: IssueView): boolean {
    const project = (issue.fields.project as { key?: string } | undefined)?.key ??
      issue.key.replace(/-\d+$/, "");
    if (!this.#config.boards.includes(project)) return false;
    if (!this.#config.categories.length) return true;
    const labels = (issue.fields.labels as string[] | undefined) ?? [];
    return this.#config.categories.some((c) => labels.includes(labelOf(c)));
  }

  async #user(email: string, signal: AbortSignal): Promise<UserRef | undefined> {
    return await this.#t.findUser(email.toLowerCase(), signal);
  }

  async #uploads(files: File[], signal: AbortSignal): Promise<AttachmentUpload[]> {
    if (!files.length) return [];
    const limit = await this.#t.attachmentLimit(signal); // the tracker remembers it
    return files.map((file, index) => {
      if (!limit.enabled) {
        throw new HttpProblem(422, "Attachments are disabled in Jira", undefined, {
          errors: [{ field: `attachments[${index}]`, message: "Jira does not take attachments" }],
        });
      }
      if (file.size > limit.uploadLimit) {
        throw new HttpProblem(413, "An attachment is larger than Jira takes", undefined, {
          errors: [{
            field: `attachments[${index}]`,
            message: `${file.name} is ${file.size} bytes; Jira takes at most ${limit.uploadLimit}`,
          }],
        });
      }
      return {
        filename: attachmentName(file.name, index),
        contentType: file.type || "application/octet-stream",
        size: file.size,
        open: () => Promise.resolve(file.stream()),
      };
    });
  }

  /** Uploads what the issue does not have yet (a retried request uploads the rest). */
  async #attach(key: string, uploads: AttachmentUpload[], signal: AbortSignal): Promise<void> {
    if (!uploads.length) return;
    const present = new Set(
      (await this.#t.attachmentNames(key, signal)).map((a) => `${a.filename}|${a.size}`),
    );
    for (const upload of uploads) {
      if (present.has(`${upload.filename}|${upload.size}`)) continue;
      await this.#t.addAttachment(key, upload, signal);
    }
  }

  #remember(key: string, entry: { ticket: unknown; until: number }): void {
    if (this.#memory.size >= 5000) this.#memory.clear();
    this.#memory.set(key, entry);
  }

  async #forget(key: string): Promise<void> {
    for (const variant of VARIANTS) this.#memory.delete(`${key}|${variant}`);
    await this.#store.commit({ delete: VARIANTS.map((v) => ["ticket_api", "cache", key, v]) });
  }

  /**
   * Runs `work` once per Idempotency-Key: the same key and request again returns the first
   * response; the same key with another request is refused (422); a key whose first request
   * is still running is refused (409). A request that died half way is finished by the next
   * one with that key: `work` gets the key's marker label, and looks for what it made.
   */
  async #idempotent(
    options: { token: string; idempotencyKey?: string | undefined; signal: AbortSignal },
    fingerprint: string,
    work: (marker: string | undefined) => Promise<{ status: number; body: unknown }>,
  ): Promise<{ status: number; body: unknown; replayed?: boolean }> {
    if (options.idempotencyKey === undefined) return await work(undefined);
    const scope = (sha256Hex(`${options.token}\u0000${options.idempotencyKey}`)).slice(0, 40);
    const key = ["ticket_api", "idem", scope];
    const marker = `api-${scope.slice(0, 20)}`;
    const ttlMs = 24 * 3600_000;
    const record: IdempotencyRecord = {
      state: "started",
      request: fingerprint,
      marker,
      at: this.#now(),
    };
    const stale = this.#config.timeoutSeconds * 2000;
    const claimed = await this.#store.claim(key, record, {
      ttlMs,
      takeOver: (holder) => {
        const h = holder as IdempotencyRecord;
        return Promise.resolve(
          h.state === "started" && h.request === fingerprint && this.#now() - h.at > stale,
        );
      },
    });
    if (!claimed) {
      const held = await this.#store.get<IdempotencyRecord>(key);
      if (held && held.request !== fingerprint) {
        throw new HttpProblem(
          422,
          "Idempotency-Key reused",
          "this Idempotency-Key was used for a different request",
          { errors: [{ field: "Idempotency-Key", message: "already used for another request" }] },
        );
      }
      if (held?.state === "done" && held.response) {
        return { ...held.response, replayed: true };
      }
      throw new HttpProblem(
        409,
        "Request in progress",
        "a request with this Idempotency-Key is being handled; try again shortly",
        { headers: { "retry-after": "2" } },
      );
    }
    try {
      const response = await work(marker);
      await this.#store.set(key, { ...record, state: "done", response }, { ttlMs });
      return response;
    } catch (error) {
      // A refusal that is final for this request frees the key; anything else leaves it
      // "started", so the next attempt with the key looks for what this one made.
      if (error instanceof HttpProblem && error.status < 500) await this.#store.delete(key);
      if (
        error instanceof JiraError && error.status >= 400 && error.status < 500 &&
        error.status !== 429
      ) {
        await this.#store.delete(key);
      }
      throw error;
    }
  }
}

function invalid(field: string, message: string): HttpProblem {
  return new HttpProblem(400, "Invalid request", `${field} ${message}`, {
    errors: [{ field, message }],
  });
}

function notFound(key: string): HttpProblem {
  return new HttpProblem(404, "No such ticket", `${key} is not a ticket of the served boards`);
}

/** An opaque cursor: the search's shape (so it cannot be used on another) and the position. */
export function encodeCursor(value: { s: string; p: string }): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor(text: string): { s: string; p: string } | undefined {
  try {
    const json = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    const value = JSON.parse(json);
    return typeof value?.s === "string" && typeof value?.p === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}
