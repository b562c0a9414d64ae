/**
 * A mailbox as the mail bridge sees it. The Microsoft Graph client and the embedded
 * folder-of-.eml mailbox implement it; the bridge imports only this.
 */

/** Entra ID ends a refresh token unused this long (its default inactivity lifetime). */
export const REFRESH_TOKEN_IDLE_DAYS = 90;
/** The command that signs in again (delegated), named in every message about it. */
export const SIGN_IN_COMMAND = "agent authorize --device-code";

export interface Address {
  name: string;
  address: string;
}

/** One message, with what threading, filtering and content need. */
export interface MailMessage {
  /** The mailbox's id (Graph: the immutable id). */
  id: string;
  /** RFC 5322 Message-ID, with angle brackets as Graph gives it. */
  internetMessageId: string;
  conversationId: string;
  subject: string;
  from: Address;
  /** Every address of the From header (rarely more than `from`). */
  fromAll?: Address[] | undefined;
  /** The Sender header (who sent it on behalf of From), when there is one. */
  sender?: Address | undefined;
  to: Address[];
  cc: Address[];
  receivedDateTime: string;
  importance: "low" | "normal" | "high";
  body: { contentType: "html" | "text"; content: string };
  /** The part new in this message (Graph's uniqueBody), when the mailbox knows it. */
  uniqueBody?: { contentType: "html" | "text"; content: string } | undefined;
  /** Internet headers, names in lower case (last one wins). */
  headers: Record<string, string>;
  hasAttachments: boolean;
  categories: string[];
  /** Approximate size in bytes, when known. */
  size?: number | undefined;
  /** Present when the delta says the message left the folder. */
  removed?: boolean;
  /**
   * Set when the mailbox could not read this message (why): the bridge keeps it as a dead
   * letter instead of failing the listing, so the others are still handled.
   */
  unreadable?: string | undefined;
}

export interface AttachmentInfo {
  id: string;
  name: string;
  contentType: string;
  size: number;
  isInline: boolean;
  contentId?: string | undefined;
}

/** What the bridge sends: an HTML body, its own headers, a marker, files. */
export interface OutgoingMail {
  html: string;
  headers: Record<string, string>;
  marker: string;
  attachments?: OutgoingAttachment[] | undefined;
}

export interface OutgoingAttachment {
  name: string;
  contentType: string;
  /** Set for an inline image the HTML shows as `cid:<contentId>`. */
  contentId?: string | undefined;
  bytes: Uint8Array;
}

/** A page of changes: the messages, and where to resume after they are recorded. */
export interface ChangePage {
  messages: MailMessage[];
  /** The link to resume from (next page, or the delta link after the last page). */
  resume: string;
  last: boolean;
}

/** What the bridge needs from a mailbox. */
export interface Mailbox {
  readonly address: string;
  /** Addresses mail from this mailbox goes out as (loop protection). */
  readonly ownAddresses: readonly string[];
  /**
   * Changes in `folder` since `resume` (undefined: everything). A `SyncReset` error means
   * the stored position expired: start again without it.
   */
  changes(
    folder: string,
    resume: string | undefined,
    signal?: AbortSignal,
  ): AsyncIterable<ChangePage>;
  /** Messages received since `since` (backfill), newest last. */
  receivedSince(folder: string, since: Date, signal?: AbortSignal): AsyncIterable<MailMessage[]>;
  get(id: string, signal?: AbortSignal): Promise<MailMessage>;
  attachments(messageId: string, signal?: AbortSignal): Promise<AttachmentInfo[]>;
  /** The attachment's bytes as a stream (never whole in memory). */
  attachmentContent(
    messageId: string,
    attachmentId: string,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>>;
  /**
   * Adds a category (to `categories`, the message's current ones, when given) and
   * optionally moves the message: marks it processed.
   */
  mark(
    messageId: string,
    options: { category: string; categories?: string[]; moveTo?: string | undefined },
    signal?: AbortSignal,
  ): Promise<void>;
  /**
   * Replies to the sender in the same thread (with `replyAll`, to its other recipients too),
   * carrying `headers` (Graph takes `x-` headers only), `attachments` (inline ones by their
   * `contentId`, for `cid:` images) and `marker`, by which `sentWith` finds the reply again.
   */
  reply(
    messageId: string,
    options: OutgoingMail & { replyAll?: boolean | undefined },
    signal?: AbortSignal,
  ): Promise<void>;
  /** A new message (no thread to answer in), found again by `sentWith(marker)`. */
  send(
    options: OutgoingMail & { to: string[]; cc?: string[] | undefined; subject: string },
    signal?: AbortSignal,
  ): Promise<void>;
  /**
   * Whether a reply carrying `marker` was sent (crash recovery: never send one twice). A
   * reply left unsent as a draft by a crash is sent now, and counts.
   */
  sentWith(marker: string, signal?: AbortSignal): Promise<boolean>;
  /** Reads one message to prove access (`agent authorize`). */
  probe(signal?: AbortSignal): Promise<void>;
}

/** A message that stands for one the mailbox could not read (see `unreadable`). */
export function unreadableMessage(id: string, reason: string): MailMessage {
  return {
    id,
    internetMessageId: "",
    conversationId: "",
    subject: "",
    from: { name: "", address: "" },
    to: [],
    cc: [],
    receivedDateTime: new Date(0).toISOString(),
    importance: "normal",
    body: { contentType: "text", content: "" },
    headers: {},
    hasAttachments: false,
    categories: [],
    unreadable: reason,
  };
}

/** The stored delta position is no longer valid (410 / syncStateNotFound). */
export class SyncReset extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SyncReset";
  }
}
