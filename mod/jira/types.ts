/**
 * The issue tracker as the mail bridge sees it. The Jira client (Cloud or Server/DC) and
 * the embedded folder-of-JSON tracker implement it; the bridge imports only this.
 */
import type { AdfDoc } from "./adf.ts";

/** A Jira user as the REST flavour names one: Cloud by account id, Server/DC by name. */
export type UserRef = { accountId: string } | { name: string };

/** A new issue. Content is ADF; a Server/DC client renders it as wiki markup. */
export interface IssueDraft {
  project: string;
  issueType: string;
  summary: string;
  description: AdfDoc;
  labels: string[];
  priority?: string | undefined;
  reporter?: UserRef | undefined;
  /** Entity properties stored with the issue in the same request. */
  properties: { key: string; value: unknown }[];
}

export interface AttachmentUpload {
  filename: string;
  contentType: string;
  size: number;
  /** Opened only when the upload starts (again on a retry). */
  open(): Promise<ReadableStream<Uint8Array>>;
}

/** An issue as Jira's REST API gives it (the embedded tracker builds the same shape). */
export interface IssueView {
  id: string;
  key: string;
  fields: Record<string, unknown>;
  /** `renderedFields` (HTML), when asked for. */
  rendered?: Record<string, unknown> | undefined;
}

/** A comment as Jira gives it: author, body (ADF on Cloud, wiki text on Server/DC). */
export interface CommentView {
  id: string;
  author?: Record<string, unknown> | undefined;
  body: unknown;
  created?: string | undefined;
  properties?: { key: string; value: unknown }[] | undefined;
}

/** What a ticket search asks for; every part is optional but the projects. */
export interface IssueFilter {
  projects: string[];
  /** Any of these labels (categories). */
  labels: string[];
  reporter?: UserRef | undefined;
  assignee?: UserRef | undefined;
  watcher?: UserRef | undefined;
  /** A status name. */
  status?: string | undefined;
  /** Words searched in summary, description and comments. */
  text?: string | undefined;
  ascending: boolean;
}

/** Reading issues for the ticket service. */
export interface IssueReader {
  getIssue(
    key: string,
    options: { rendered?: boolean },
    signal?: AbortSignal,
  ): Promise<IssueView | undefined>;
  /** One page of issues; `cursor` is the `next` of the page before. */
  searchIssues(
    filter: IssueFilter,
    page: { limit: number; cursor?: string | undefined },
    signal?: AbortSignal,
  ): Promise<{ issues: IssueView[]; next?: string | undefined }>;
  comments(key: string, signal?: AbortSignal): Promise<CommentView[]>;
  watchers(key: string, signal?: AbortSignal): Promise<Record<string, unknown>[]>;
}

/** A comment as the way back reads it: who wrote it, for whom, and its rendered body. */
export interface FeedComment {
  id: string;
  key: string;
  created: string;
  /** Account id (Cloud) or user name (Server/DC) of the author. */
  authorId: string;
  authorName: string;
  /** Jira's rendered HTML of the body (embedded: the text, escaped). */
  html: string;
  /** Set when only a role or group may see it ("role Developers"). */
  restricted?: string | undefined;
  /** A Jira Service Management internal comment (sd.public.comment). */
  internal: boolean;
  /** Entity property keys it carries (agent.mail, agent.ticket, ...). */
  properties: string[];
}

/** Comments to send back to the people who wrote in (the way back). */
export interface CommentFeed {
  /** The agent's own account, and the time zone Jira reads JQL dates in for it. */
  myself(signal?: AbortSignal): Promise<{ id: string; timeZone: string }>;
  /** Keys of issues with any of `labels` updated since `since` (oldest first). */
  updatedIssues(
    labels: string[],
    since: Date,
    timeZone: string,
    signal?: AbortSignal,
  ): Promise<string[]>;
  /** An issue's comments with what the way back needs; one of them with `id`. */
  feedComments(key: string, signal?: AbortSignal): Promise<FeedComment[]>;
  feedComment(key: string, id: string, signal?: AbortSignal): Promise<FeedComment | undefined>;
  /** A file Jira links in rendered HTML (an image), read with the agent's credentials. */
  download(
    url: string,
    signal?: AbortSignal,
  ): Promise<{ bytes: Uint8Array; contentType: string } | undefined>;
}

export interface Tracker extends IssueReader, CommentFeed {
  readonly deployment: "cloud" | "server" | "local";
  /** The issue's address for people (the acknowledgement mail). */
  browseUrl(key: string): string;
  findUser(email: string, signal?: AbortSignal): Promise<UserRef | undefined>;
  /** The key as Jira now knows it (moved issues), or undefined when there is none. */
  issueKey(key: string, signal?: AbortSignal): Promise<string | undefined>;
  createIssue(draft: IssueDraft, signal?: AbortSignal): Promise<{ key: string }>;
  /**
   * An issue carrying `label` (the mail's own marker label, set when it was created) created
   * in the last `days` whose property `propertyKey` has `messageId` as its `messageId`
   * (crash recovery before creating again).
   */
  findIssueByProperty(
    query: { label: string; propertyKey: string; messageId: string; days: number },
    signal?: AbortSignal,
  ): Promise<string | undefined>;
  addComment(
    key: string,
    body: AdfDoc,
    property: { key: string; value: unknown },
    signal?: AbortSignal,
  ): Promise<{ id: string }>;
  findCommentByProperty(
    key: string,
    query: { propertyKey: string; messageId: string },
    signal?: AbortSignal,
  ): Promise<string | undefined>;
  /** Whether attachments are enabled and the largest upload Jira takes, in bytes. */
  attachmentLimit(signal?: AbortSignal): Promise<{ enabled: boolean; uploadLimit: number }>;
  attachmentNames(key: string, signal?: AbortSignal): Promise<{ filename: string; size: number }[]>;
  addAttachment(key: string, upload: AttachmentUpload, signal?: AbortSignal): Promise<void>;
  addWatcher(key: string, user: UserRef, signal?: AbortSignal): Promise<void>;
  /** Links a new issue to the one it was forwarded from. */
  link(inward: string, outward: string, signal?: AbortSignal): Promise<void>;
}

/**
 * Jira refused the request; `status` is the HTTP status (0 when none came back). For a
 * 429/503 the caller's deadline did not allow waiting out, `retryAfterMs` is Jira's wait.
 */
export class JiraError extends Error {
  constructor(
    message: string,
    readonly status: number,
    options?: ErrorOptions & { retryAfterMs?: number | undefined },
  ) {
    super(message, options);
    this.name = "JiraError";
    this.retryAfterMs = options?.retryAfterMs;
  }
  readonly retryAfterMs: number | undefined;
}
