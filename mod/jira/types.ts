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

export interface Tracker extends IssueReader {
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
