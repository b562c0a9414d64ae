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

export interface Tracker {
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

/** Jira refused the request; `status` is the HTTP status (0 when none came back). */
export class JiraError extends Error {
  constructor(message: string, readonly status: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "JiraError";
  }
}
