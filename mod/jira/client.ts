/**
 * Jira through jira.js 5: `Version3Client` (Cloud, ADF) or `Version2Client` (Server/DC,
 * wiki markup), chosen by `[jira] deployment`.
 *
 * - axios under Deno hangs on the request after a multipart upload with a keep-alive
 *   agent, and ignores DENO_CERT: every request goes through an explicit
 *   `https.Agent({ keepAlive: false, ca })`.
 * - jira.js does not retry `429`, and its optional retry re-sends POSTs: retries are ours.
 *   `429`/`503` (the request was not processed) wait for `Retry-After` and go again; other
 *   failures of a write are thrown, and the bridge reconciles before it writes again.
 * - Attachments are not sent through jira.js, which builds the whole file in memory: the
 *   multipart body is streamed from the mailbox to Jira with fetch.
 */
import { httpClientFor } from "../net/http.ts";
import { httpsAgentFor } from "../net/https_agent.ts";
import { Version2Client, Version3Client } from "jira.js";
import type { JiraConfig } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { log } from "../log/log.ts";
import { backoffMs, retryAfterMs } from "../async/retry.ts";
import { abortableSleep } from "../async/delay.ts";
import { type AdfDoc, forCloud } from "./adf.ts";
import { adfToWiki } from "./wiki.ts";
import {
  type AttachmentUpload,
  type CommentView,
  type FeedComment,
  type IssueDraft,
  type IssueFilter,
  type IssueView,
  JiraError,
  type Tracker,
  type UserRef,
} from "./types.ts";

const logger = log("jira");
const MAX_ATTEMPTS = 8;
const RECONCILE_PAGE = 100;
const RECONCILE_MAX = 2000;

/** Counters for /metrics. */
export interface JiraStats {
  requests: number;
  throttled: number;
  throttleWaitMs: number;
  /** Set while requests fail and are being retried (health), cleared by a success. */
  failing?: string | undefined;
}

// The two clients share method names but not parameter types; calls go through `any`
// where the flavour decides the shape (the body is ADF on Cloud, wiki text on Server/DC).
// deno-lint-ignore no-explicit-any
type AnyClient = any;

export class JiraTracker implements Tracker {
  readonly deployment: "cloud" | "server";
  readonly stats: JiraStats = { requests: 0, throttled: 0, throttleWaitMs: 0 };
  readonly #config: JiraConfig;
  readonly #client: AnyClient;
  readonly #http: Deno.HttpClient | undefined;
  readonly #sleep: typeof abortableSleep;
  #limit: Promise<{ enabled: boolean; uploadLimit: number }> | undefined;

  private constructor(
    config: JiraConfig,
    client: AnyClient,
    http: Deno.HttpClient | undefined,
    sleep: typeof abortableSleep,
  ) {
    this.deployment = config.deployment;
    this.#config = config;
    this.#client = client;
    this.#http = http;
    this.#sleep = sleep;
  }

  static async fromConfig(
    config: JiraConfig,
    options: { sleep?: typeof abortableSleep } = {},
  ): Promise<JiraTracker> {
    const ca = await caCertsFor(config.tls, "[jira] cafile");
    const httpsAgent = httpsAgentFor(config.url, {
      ca,
      verify: config.tls.kind !== "insecure",
      proxy: config.proxy,
    });
    const jiraConfig = {
      host: config.url,
      authentication: config.auth.kind === "basic"
        ? { basic: { email: config.auth.user, apiToken: config.auth.token } }
        : { oauth2: { accessToken: config.auth.token } },
      baseRequestConfig: { httpsAgent, timeout: config.timeoutSeconds * 1000, proxy: false },
    };
    // jira.js types bearer auth as OAuth 2.0 without a host; the header it sends is the same.
    const typed = jiraConfig as ConstructorParameters<typeof Version3Client>[0];
    const client = config.deployment === "cloud"
      ? new Version3Client(typed)
      : new Version2Client(typed);
    const http = httpClientFor(config.url, { caCerts: ca, proxy: config.proxy });
    return new JiraTracker(config, client, http, options.sleep ?? abortableSleep);
  }

  browseUrl(key: string): string {
    return `${this.#config.url}/browse/${key}`;
  }

  #body(doc: AdfDoc): unknown {
    return this.deployment === "cloud" ? forCloud(doc) : adfToWiki(doc);
  }

  async findUser(email: string, signal?: AbortSignal): Promise<UserRef | undefined> {
    const query = this.deployment === "cloud" ? { query: email } : { username: email };
    const users: { accountId?: string; name?: string; emailAddress?: string; active?: boolean }[] =
      await this.#call(
        `find user "${email}"`,
        false,
        signal,
        () => this.#client.userSearch.findUsers({ ...query, maxResults: 10 }),
      );
    const exact = users.filter((u) =>
      u.active !== false && u.emailAddress?.toLowerCase() === email
    );
    // Cloud hides most addresses: one match for the query is the person.
    const user = exact[0] ??
      (users.length === 1 && users[0]!.active !== false ? users[0] : undefined);
    if (!user) return undefined;
    return this.deployment === "cloud"
      ? (user.accountId ? { accountId: user.accountId } : undefined)
      : (user.name ? { name: user.name } : undefined);
  }

  async issueKey(key: string, signal?: AbortSignal): Promise<string | undefined> {
    const issue = await unlessAbsent(this.#call(
      `read ${key}`,
      false,
      signal,
      () => this.#client.issues.getIssue({ issueIdOrKey: key, fields: ["summary"] }),
    ));
    return issue === undefined ? undefined : String(issue.key);
  }

  async createIssue(draft: IssueDraft, signal?: AbortSignal): Promise<{ key: string }> {
    const fields: Record<string, unknown> = {
      project: { key: draft.project },
      issuetype: { name: draft.issueType },
      summary: draft.summary,
      description: this.#body(draft.description),
      labels: draft.labels,
    };
    if (draft.priority) fields.priority = { name: draft.priority };
    if (draft.reporter) fields.reporter = draft.reporter;
    const created = await this.#call(
      `create an issue in ${draft.project}`,
      true,
      signal,
      () => this.#client.issues.createIssue({ fields, properties: draft.properties }),
    );
    return { key: String(created.key) };
  }

  /**
   * Searches the mail's own marker label (Server/DC's search can neither filter by nor
   * return entity properties), then confirms each candidate by reading its property.
   */
  async findIssueByProperty(
    query: { label: string; propertyKey: string; messageId: string; days: number },
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const jql = `labels = ${jqlString(query.label)} AND created >= -${query.days}d ` +
      `ORDER BY created DESC`;
    for await (
      const issues of this.#searchPages("search the bridge's recent issues", jql, signal)
    ) {
      for (const candidate of issues) {
        const issue = await this.#call(
          `read the property ${query.propertyKey} of ${candidate.key}`,
          false,
          signal,
          () =>
            this.#client.issues.getIssue({
              issueIdOrKey: candidate.key,
              fields: ["summary"],
              properties: [query.propertyKey],
            }),
        );
        const value = issue.properties?.[query.propertyKey] as { messageId?: string } | undefined;
        if (value?.messageId === query.messageId) return String(issue.key);
      }
    }
    return undefined;
  }

  /** Every page of a JQL search (keys only), up to RECONCILE_MAX issues, in either flavour. */
  async *#searchPages(
    what: string,
    jql: string,
    signal?: AbortSignal,
  ): AsyncGenerator<{ key: string }[]> {
    let nextPageToken: string | undefined;
    for (let seen = 0; seen < RECONCILE_MAX;) {
      const params = { jql, maxResults: RECONCILE_PAGE, fields: ["summary"] };
      const page = await this.#call(
        what,
        false,
        signal,
        () =>
          this.deployment === "cloud"
            ? this.#client.issueSearch.searchForIssuesUsingJqlEnhancedSearch({
              ...params,
              ...(nextPageToken ? { nextPageToken } : {}),
            })
            : this.#client.issueSearch.searchForIssuesUsingJql({ ...params, startAt: seen }),
      );
      const issues: { key: string }[] = page.issues ?? [];
      if (issues.length) yield issues;
      seen += issues.length;
      nextPageToken = page.nextPageToken;
      const more = this.deployment === "cloud"
        ? Boolean(nextPageToken) && !page.isLast
        : seen < (page.total ?? 0);
      if (!issues.length || !more) return;
    }
  }

  /** An issue's comments, page by page (with `expand`), up to 5,000. */
  async *#commentPages<T>(key: string, expand: string, signal?: AbortSignal): AsyncGenerator<T[]> {
    for (let startAt = 0; startAt < 5000;) {
      const page = await this.#call(
        `read the comments of ${key}`,
        false,
        signal,
        () =>
          this.#client.issueComments.getComments({
            issueIdOrKey: key,
            startAt,
            maxResults: 100,
            expand,
          }),
      );
      const comments = (page.comments ?? []) as T[];
      if (comments.length) yield comments;
      startAt += comments.length;
      if (!comments.length || startAt >= (page.total ?? 0)) return;
    }
  }

  async addComment(
    key: string,
    body: AdfDoc,
    property: { key: string; value: unknown },
    signal?: AbortSignal,
  ): Promise<{ id: string }> {
    const comment = await this.#call(
      `comment on ${key}`,
      true,
      signal,
      () =>
        this.#client.issueComments.addComment({
          issueIdOrKey: key,
          comment: this.#body(body),
          properties: [property],
        }),
    );
    return { id: String(comment.id) };
  }

  async findCommentByProperty(
    key: string,
    query: { propertyKey: string; messageId: string },
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    type Stamped = { id: string; properties?: { key: string; value?: { messageId?: string } }[] };
    for await (const comments of this.#commentPages<Stamped>(key, "properties", signal)) {
      const hit = comments.find((c) =>
        (c.properties ?? []).some((p) =>
          p.key === query.propertyKey && p.value?.messageId === query.messageId
        )
      );
      if (hit) return String(hit.id);
    }
    return undefined;
  }

  attachmentLimit(signal?: AbortSignal): Promise<{ enabled: boolean; uploadLimit: number }> {
    this.#limit ??= this.#call(
      "read the attachment settings",
      false,
      signal,
      () => this.#client.issueAttachments.getAttachmentMeta(),
    )
      .then((meta: { enabled?: boolean; uploadLimit?: number }) => ({
        enabled: meta.enabled !== false,
        uploadLimit: Number(meta.uploadLimit ?? Infinity),
      }))
      .catch((error: unknown) => {
        this.#limit = undefined;
        throw error;
      });
    return this.#limit;
  }

  async attachmentNames(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ filename: string; size: number }[]> {
    const issue = await this.#call(
      `read the attachments of ${key}`,
      false,
      signal,
      () => this.#client.issues.getIssue({ issueIdOrKey: key, fields: ["attachment"] }),
    );
    return ((issue.fields?.attachment ?? []) as { filename: string; size: number }[])
      .map((a) => ({ filename: a.filename, size: Number(a.size) }));
  }

  async addAttachment(key: string, upload: AttachmentUpload, signal?: AbortSignal): Promise<void> {
    const url = `${this.#config.url}/rest/api/${this.deployment === "cloud" ? 3 : 2}/issue/` +
      `${encodeURIComponent(key)}/attachments`;
    await this.#call(`attach "${upload.filename}" to ${key}`, true, signal, async () => {
      const boundary = `----agent-${crypto.randomUUID()}`;
      const content = await upload.open();
      const response = await fetch(url, {
        method: "POST",
        headers: {
          authorization: this.#authorization(),
          "x-atlassian-token": "no-check",
          "content-type": `multipart/form-data; boundary=${boundary}`,
        },
        body: multipart(boundary, upload, content),
        signal: signal
          ? AbortSignal.any([signal, AbortSignal.timeout(this.#config.timeoutSeconds * 10_000)])
          : AbortSignal.timeout(this.#config.timeoutSeconds * 10_000),
        ...(this.#http ? { client: this.#http } : {}),
      });
      const text = await response.text();
      if (!response.ok) throw new FetchStatus(response.status, response.headers, text);
    });
  }

  async addWatcher(key: string, user: UserRef, signal?: AbortSignal): Promise<void> {
    const id = "accountId" in user ? user.accountId : user.name;
    await this.#call(
      `add a watcher to ${key}`,
      true,
      signal,
      () => this.#client.issueWatchers.addWatcher({ issueIdOrKey: key, accountId: id }),
    );
  }

  async link(inward: string, outward: string, signal?: AbortSignal): Promise<void> {
    await this.#call(
      `link ${inward} to ${outward}`,
      true,
      signal,
      () =>
        this.#client.issueLinks.linkIssues({
          type: { name: "Relates" },
          inwardIssue: { key: inward },
          outwardIssue: { key: outward },
        }),
    );
  }

  /** Who the credentials are (`agent doctor`): the account's e-mail address or name. */
  async whoami(signal?: AbortSignal): Promise<string> {
    const me: { emailAddress?: string; name?: string; accountId?: string; displayName?: string } =
      await this.#call(
        "read the current user",
        false,
        signal,
        () => this.#client.myself.getCurrentUser(),
      );
    return me.emailAddress ?? me.name ?? me.displayName ?? me.accountId ?? "(unnamed account)";
  }

  /** The issue type names of a project (`agent doctor`); a JiraError 404 when it does not exist. */
  async issueTypes(project: string, signal?: AbortSignal): Promise<string[]> {
    const found: { issueTypes?: { name?: string }[] } = await this.#call(
      `read project ${project}`,
      false,
      signal,
      () => this.#client.projects.getProject({ projectIdOrKey: project }),
    );
    return (found.issueTypes ?? []).map((t) => t.name ?? "").filter((n) => n !== "");
  }

  async getIssue(
    key: string,
    options: { rendered?: boolean },
    signal?: AbortSignal,
  ): Promise<IssueView | undefined> {
    const issue = await unlessAbsent(this.#call(
      `read ${key}`,
      false,
      signal,
      () =>
        this.#client.issues.getIssue({
          issueIdOrKey: key,
          ...(options.rendered ? { expand: "renderedFields" } : {}),
        }),
    ));
    return issue === undefined ? undefined : viewOf(issue);
  }

  async searchIssues(
    filter: IssueFilter,
    page: { limit: number; cursor?: string | undefined },
    signal?: AbortSignal,
  ): Promise<{ issues: IssueView[]; next?: string | undefined }> {
    const jql = jqlOf(filter);
    const params = { jql, maxResults: page.limit, fields: ["*navigable"] };
    const startAt = Number(page.cursor ?? 0) || 0;
    const found = await this.#call(
      "search tickets",
      false,
      signal,
      () =>
        this.deployment === "cloud"
          ? this.#client.issueSearch.searchForIssuesUsingJqlEnhancedSearch({
            ...params,
            ...(page.cursor ? { nextPageToken: page.cursor } : {}),
          })
          : this.#client.issueSearch.searchForIssuesUsingJql({ ...params, startAt }),
    );
    const issues = ((found.issues ?? []) as unknown[]).map(viewOf);
    const next = this.deployment === "cloud"
      ? (found.isLast === false || (found.isLast === undefined && found.nextPageToken)
        ? found.nextPageToken
        : undefined)
      : startAt + issues.length < (found.total ?? 0) && issues.length
      ? String(startAt + issues.length)
      : undefined;
    return { issues, next: next ? String(next) : undefined };
  }

  async comments(key: string, signal?: AbortSignal): Promise<CommentView[]> {
    const all: CommentView[] = [];
    for await (const page of this.#commentPages<CommentView>(key, "properties", signal)) {
      all.push(...page.map((c) => ({ ...c, id: String(c.id) })));
    }
    return all;
  }

  async watchers(key: string, signal?: AbortSignal): Promise<Record<string, unknown>[]> {
    const found = await this.#call(
      `read the watchers of ${key}`,
      false,
      signal,
      () => this.#client.issueWatchers.getIssueWatchers({ issueIdOrKey: key }),
    );
    return (found.watchers ?? []) as Record<string, unknown>[];
  }

  async myself(signal?: AbortSignal): Promise<{ id: string; timeZone: string }> {
    const me: { accountId?: string; name?: string; timeZone?: string } = await this.#call(
      "read the current user",
      false,
      signal,
      () => this.#client.myself.getCurrentUser(),
    );
    return {
      id: String((this.deployment === "cloud" ? me.accountId : me.name) ?? ""),
      timeZone: me.timeZone || "UTC",
    };
  }

  async updatedIssues(
    labels: string[],
    since: Date,
    timeZone: string,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const jql = `labels in (${labels.map(jqlString).join(", ")}) AND updated >= ` +
      `${jqlString(jqlDate(since, timeZone))} ORDER BY updated ASC`;
    const keys: string[] = [];
    for await (const issues of this.#searchPages("search issues with new comments", jql, signal)) {
      keys.push(...issues.map((i) => String(i.key)));
    }
    return keys;
  }

  async feedComments(key: string, signal?: AbortSignal): Promise<FeedComment[]> {
    const all: FeedComment[] = [];
    for await (
      const page of this.#commentPages<JiraComment>(key, "renderedBody,properties", signal)
    ) {
      all.push(...page.map((c) => feedOf(key, c, this.deployment)));
    }
    return all;
  }

  async feedComment(
    key: string,
    id: string,
    signal?: AbortSignal,
  ): Promise<FeedComment | undefined> {
    const comment = await unlessAbsent(this.#call(
      `read comment ${id} of ${key}`,
      false,
      signal,
      () =>
        this.#client.issueComments.getComment({
          issueIdOrKey: key,
          id,
          expand: "renderedBody,properties",
        }),
    ));
    return comment === undefined ? undefined : feedOf(key, comment as JiraComment, this.deployment);
  }

  async download(
    url: string,
    signal?: AbortSignal,
  ): Promise<{ bytes: Uint8Array; contentType: string } | undefined> {
    // Only Jira's own files: the credentials never go to another host.
    const target = new URL(url, this.#config.url);
    if (target.origin !== new URL(this.#config.url).origin) return undefined;
    const response = await fetch(target, {
      headers: { authorization: this.#authorization() },
      ...(signal ? { signal } : {}),
      ...(this.#http ? { client: this.#http } : {}),
    } as RequestInit);
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    return {
      bytes: new Uint8Array(await response.arrayBuffer()),
      contentType: response.headers.get("content-type") ?? "application/octet-stream",
    };
  }

  #authorization(): string {
    const auth = this.#config.auth;
    return auth.kind === "basic"
      ? `Basic ${btoa(`${auth.user}:${auth.token}`)}`
      : `Bearer ${auth.token}`;
  }

  /** One Jira operation with the retry rules in the module doc. */
  async #call(
    what: string,
    write: boolean,
    signal: AbortSignal | undefined,
    fn: () => Promise<unknown>,
  ): Promise<AnyClient> {
    for (let attempt = 1;; attempt++) {
      signal?.throwIfAborted();
      this.stats.requests++;
      try {
        const result = await fn();
        this.stats.failing = undefined;
        return result;
      } catch (error) {
        const { status, retryAfter, detail } = describe(error);
        if (status === 0 || status >= 500) {
          this.stats.failing = `Jira unreachable: ${detail || status}`;
        }
        if (status === 401 || status === 403) {
          // Our own credentials or permissions, not the mail: the bridge retries later.
          const text = `${refusal(status, this.#config)}${detail ? `: ${detail}` : ""}`;
          if (status === 401) this.stats.failing = text;
          throw new JiraError(`Cannot ${what}: ${text}`, status, { cause: error });
        }
        const throttled = status === 429 || status === 503;
        const transientRead = !write && (status === 0 || status >= 500);
        if ((throttled || transientRead) && attempt < MAX_ATTEMPTS && !signal?.aborted) {
          const wait = retryAfter ?? backoffMs(attempt);
          if (throttled) {
            this.stats.throttled++;
            this.stats.throttleWaitMs += wait;
          }
          logger.info("Jira answered {status} to {what}; waiting {seconds} s", {
            status: status || "no answer",
            what,
            seconds: Math.round(wait / 100) / 10,
          });
          try {
            await this.#sleep(wait, signal);
          } catch (aborted) {
            // The caller's deadline came first: say what Jira said, and how long it asked for.
            if (!signal?.aborted) throw aborted;
            throw new JiraError(
              `Cannot ${what}: Jira answered ${status || "nothing"} and the time was up` +
                (detail ? `: ${detail}` : ""),
              status,
              { cause: error, retryAfterMs: throttled ? wait : undefined },
            );
          }
          continue;
        }
        throw new JiraError(
          `Cannot ${what}: ${status ? `Jira answered ${status}` : "no answer from Jira"}` +
            (detail ? `: ${detail}` : ""),
          status,
          { cause: error, retryAfterMs: throttled ? retryAfter : undefined },
        );
      }
    }
  }
}

interface JiraComment {
  id: string | number;
  created?: string;
  author?: { accountId?: string; name?: string; displayName?: string };
  renderedBody?: string;
  body?: unknown;
  visibility?: { type?: string; value?: string };
  properties?: { key: string; value?: unknown }[];
}

/** A comment as the way back reads it. */
function feedOf(key: string, c: JiraComment, deployment: "cloud" | "server"): FeedComment {
  const internal = (c.properties ?? []).some((p) =>
    p.key === "sd.public.comment" && (p.value as { internal?: boolean } | undefined)?.internal
  );
  return {
    id: String(c.id),
    key,
    created: c.created ?? new Date(0).toISOString(),
    authorId: String((deployment === "cloud" ? c.author?.accountId : c.author?.name) ?? ""),
    authorName: c.author?.displayName ?? "",
    html: c.renderedBody ?? "",
    ...(c.visibility?.type
      ? { restricted: `${c.visibility.type} ${c.visibility.value ?? ""}`.trim() }
      : {}),
    internal,
    properties: (c.properties ?? []).map((p) => p.key),
  };
}

/** A JQL date, "yyyy/MM/dd HH:mm", as a wall time in `timeZone` (how Jira reads them). */
export function jqlDate(date: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  }).formatToParts(date);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "00";
  return `${get("year")}/${get("month")}/${get("day")} ${get("hour")}:${get("minute")}`;
}

/** What Jira answered, or undefined when it says there is no such thing (404, or 403: hidden). */
async function unlessAbsent<T>(answer: Promise<T>): Promise<T | undefined> {
  try {
    return await answer;
  } catch (error) {
    if (error instanceof JiraError && (error.status === 404 || error.status === 403)) {
      return undefined;
    }
    throw error;
  }
}

/** Jira's issue JSON as an IssueView. */
function viewOf(value: unknown): IssueView {
  const issue = value as {
    id?: unknown;
    key?: unknown;
    fields?: Record<string, unknown>;
    renderedFields?: Record<string, unknown>;
  };
  return {
    id: String(issue.id ?? ""),
    key: String(issue.key ?? ""),
    fields: issue.fields ?? {},
    ...(issue.renderedFields ? { rendered: issue.renderedFields } : {}),
  };
}

/** A JQL string literal: whatever the text, it stays one value (no clause can be injected). */
export function jqlString(text: string): string {
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, " ");
  return `"${clean.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** A user in JQL: Cloud by account id, Server/DC by user name. */
function jqlUser(user: UserRef): string {
  return jqlString("accountId" in user ? user.accountId : user.name);
}

/** The JQL of a ticket search; every value quoted by {@linkcode jqlString}. */
export function jqlOf(filter: IssueFilter): string {
  const clauses = [`project in (${filter.projects.map(jqlString).join(", ")})`];
  if (filter.labels.length) clauses.push(`labels in (${filter.labels.map(jqlString).join(", ")})`);
  if (filter.reporter) clauses.push(`reporter = ${jqlUser(filter.reporter)}`);
  if (filter.assignee) clauses.push(`assignee = ${jqlUser(filter.assignee)}`);
  if (filter.watcher) clauses.push(`watcher = ${jqlUser(filter.watcher)}`);
  if (filter.status) clauses.push(`status = ${jqlString(filter.status)}`);
  if (filter.text) {
    // Text search is Lucene underneath: its operators become spaces, the words stay.
    const words = filter.text.replace(/[+\-&|!(){}[\]^~*?\\:"\/]/g, " ").trim();
    if (words) clauses.push(`text ~ ${jqlString(words)}`);
  }
  return `${clauses.join(" AND ")} ORDER BY created ${filter.ascending ? "ASC" : "DESC"}`;
}

/** What a 401/403 means for the operator, naming the key to look at. */
function refusal(status: number, config: JiraConfig): string {
  const key = config.auth.kind === "basic"
    ? "[jira] user / api_token"
    : "[jira] personal_access_token";
  return status === 401
    ? `Jira refused our credentials (401; check ${key})`
    : `Jira refused our permissions (403; the account of ${key} lacks a permission)`;
}

/** A failed fetch (attachments) in the shape `describe` reads. */
class FetchStatus extends Error {
  constructor(readonly status: number, readonly headers: Headers, readonly text: string) {
    super(`HTTP ${status}`);
  }
}

function describe(
  error: unknown,
): { status: number; retryAfter?: number | undefined; detail: string } {
  if (error instanceof FetchStatus) {
    return {
      status: error.status,
      retryAfter: retryAfterMs(error.headers.get("retry-after")),
      detail: jiraMessages(safeJson(error.text)) || error.text.slice(0, 200),
    };
  }
  const e = error as {
    status?: number;
    response?: { status?: number; data?: unknown; headers?: Record<string, string> };
    cause?: { response?: { status?: number; data?: unknown; headers?: Record<string, string> } };
    message?: string;
  };
  const response = e.cause?.response ?? e.response;
  const status = Number(
    response?.status ?? (typeof e.status === "number" && response ? e.status : 0),
  );
  const header = response?.headers?.["retry-after"] ?? null;
  return {
    status,
    retryAfter: retryAfterMs(header),
    detail: jiraMessages(response?.data) || (status ? "" : String(e.message ?? error)),
  };
}

/** Jira's `{errorMessages: [], errors: {field: message}}` as one line. */
function jiraMessages(data: unknown): string {
  if (!data || typeof data !== "object") return typeof data === "string" ? data.slice(0, 200) : "";
  const d = data as { errorMessages?: string[]; errors?: Record<string, string>; message?: string };
  const parts = [
    ...(d.errorMessages ?? []),
    ...Object.entries(d.errors ?? {}).map(([field, message]) => `${field}: ${message}`),
  ];
  if (!parts.length && d.message) parts.push(d.message);
  return parts.join("; ").slice(0, 300);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A multipart/form-data body with one file part, streamed. */
function multipart(
  boundary: string,
  upload: AttachmentUpload,
  content: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const name = upload.filename.replace(/["\r\n\\]/g, "_");
  const head = encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"; ` +
      `filename*=UTF-8''${encodeURIComponent(upload.filename)}\r\n` +
      `Content-Type: ${upload.contentType.replace(/[\r\n]/g, "")}\r\n\r\n`,
  );
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const reader = content.getReader();
  let started = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(head);
        return;
      }
      const { done, value } = await reader.read();
      if (done) {
        controller.enqueue(tail);
        controller.close();
      } else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
