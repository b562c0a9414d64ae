/**
 * The bridge's ledger: one record per mail in the store, moving
 * `seen -> creating -> created(KEY) -> attachments_done -> marked` (or `skipped` with the
 * reason, or `failed` with the error); a new issue's acknowledgement is sent (once) between
 * `attachments_done` and `marked`. It is written before each step that has an effect
 * elsewhere, so a restart knows where every mail stood; `creating` means "Jira may have
 * it": reconcile before creating again.
 */
import type { Store, StoreKey } from "../store/store.ts";
import type { RunLock, RunRef } from "../store/run_lock.ts";
import { queueComment, type QueuedComment } from "./reply_queue.ts";

export type MailState =
  | "seen"
  | "creating"
  | "created"
  | "attachments_done"
  | "marked"
  | "skipped"
  | "failed";

/** One mail as the ledger knows it. */
export interface MailRecord {
  state: MailState;
  /** The mailbox's id (Graph immutable id). */
  mailId: string;
  messageId: string;
  conversationId: string;
  subject: string;
  from: string;
  receivedAt: string;
  /** What the mail became: a new issue or a comment on one. */
  kind?: "issue" | "comment" | undefined;
  key?: string | undefined;
  commentId?: string | undefined;
  /** Attachment ids uploaded (or deliberately not). */
  attachmentsDone: string[];
  /** The acknowledgement: sent (true), refused for good (false), not yet (undefined). */
  acknowledged?: boolean | undefined;
  /** The acknowledgement was about to be sent (after a crash: look for it before sending). */
  ackStarted?: boolean | undefined;
  reason?: string | undefined;
  error?: string | undefined;
  attempts: number;
  history: { state: MailState; at: string; note?: string | undefined }[];
}

/** A mail bridged into an issue, for the way back to answer in its thread. */
export interface IssueMail {
  mailId: string;
  messageId: string;
  receivedAt: string;
  from: string;
  /** When it went into the issue (ms precision). */
  bridgedAt: string;
}

const HISTORY_MAX = 20;
/** States a mail is left in only by a crash or an error that will be retried. */
const OPEN_STATES = new Set<MailState>(["seen", "creating", "created", "attachments_done"]);

export class Ledger {
  readonly #store: Store;
  readonly #mailbox: string;
  readonly #now: () => Date;

  constructor(store: Store, mailbox: string, options: { now?: () => Date } = {}) {
    this.#store = store;
    this.#mailbox = mailbox.toLowerCase();
    this.#now = options.now ?? (() => new Date());
  }

  #key(...parts: string[]): StoreKey {
    return ["mail", this.#mailbox, ...parts];
  }

  get(messageKey: string): Promise<MailRecord | undefined> {
    return this.#store.get<MailRecord>(this.#key("msg", messageKey));
  }

  /** Moves `record` to `state` (with changes) and writes it, with its indexes, at once. */
  async move(
    messageKey: string,
    record: MailRecord,
    state: MailState,
    changes: Partial<MailRecord> = {},
    note?: string,
  ): Promise<MailRecord> {
    const next: MailRecord = {
      ...record,
      ...changes,
      state,
      history: [...record.history, {
        state,
        at: this.#now().toISOString(),
        ...(note ? { note } : {}),
      }]
        .slice(-HISTORY_MAX),
    };
    const set: [StoreKey, unknown][] = [[this.#key("msg", messageKey), next]];
    const del: StoreKey[] = [];
    if (state === "failed") set.push([this.#key("failed", messageKey), this.#now().toISOString()]);
    else del.push(this.#key("failed", messageKey));
    if (OPEN_STATES.has(state)) set.push([this.#key("open", messageKey), next.mailId]);
    else del.push(this.#key("open", messageKey));
    if (next.conversationId) {
      const pending = this.#key("conv_open", next.conversationId, messageKey);
      if (OPEN_STATES.has(state)) {
        set.push([pending, { messageId: next.messageId, receivedAt: next.receivedAt }]);
      } else del.push(pending);
    }
    if (next.kind === "issue" && next.key && next.conversationId) {
      set.push([this.#key("conv", next.conversationId), next.key]);
    }
    if (next.key && (state === "created" || state === "attachments_done" || state === "marked")) {
      // The way back answers in the thread of the latest mail bridged into an issue.
      set.push([this.#key("issue_mail", next.key, messageKey), {
        mailId: next.mailId,
        messageId: next.messageId,
        receivedAt: next.receivedAt,
        from: next.from,
        bridgedAt: next.history.find((h) => h.state === "created")?.at ?? this.#now().toISOString(),
      }]);
    }
    await this.#store.commit({ set, delete: del });
    return next;
  }

  /**
   * Notes which issue a mail made, with who sent it, where the ticket API (and the way back
   * to the sender) looks tickets up: `["tickets", KEY]`, as API tickets are.
   */
  async noteTicket(key: string, record: MailRecord): Promise<void> {
    await this.#store.set(["tickets", key], {
      key,
      source: "mail",
      reporter: record.from,
      created: this.#now().toISOString(),
      messageId: record.messageId,
      mailbox: this.#mailbox,
    });
  }

  /** Queues a comment for the way back (an Automation mail named it). */
  async queueReply(comment: QueuedComment): Promise<void> {
    await queueComment(this.#store, comment);
  }

  /** The mails bridged into an issue (as the issue or its comments), oldest first. */
  async mailsOfIssue(key: string): Promise<IssueMail[]> {
    const mails: IssueMail[] = [];
    for await (const { value } of this.#store.list<IssueMail>(this.#key("issue_mail", key))) {
      mails.push(value);
    }
    if (!mails.length) {
      // Records from before the index: the ledger itself.
      for await (const { value } of this.#store.list<MailRecord>(this.#key("msg"))) {
        if (value.key === key && value.kind && value.mailId) {
          mails.push({
            mailId: value.mailId,
            messageId: value.messageId,
            receivedAt: value.receivedAt,
            from: value.from,
            bridgedAt: value.history.find((h) => h.state === "created")?.at ?? "",
          });
        }
      }
    }
    // Received in the same second says nothing: the order they were bridged in decides.
    return mails.sort((a, b) =>
      a.receivedAt.localeCompare(b.receivedAt) || a.bridgedAt.localeCompare(b.bridgedAt)
    );
  }

  /** The issue a conversation became, when the bridge created one. */
  conversationIssue(conversationId: string): Promise<string | undefined> {
    return conversationId
      ? this.#store.get<string>(this.#key("conv", conversationId))
      : Promise.resolve(undefined);
  }

  /** Mails of a conversation that are not finished yet (pending, or failing for now). */
  async openInConversation(
    conversationId: string,
  ): Promise<{ messageKey: string; messageId: string; receivedAt: string }[]> {
    if (!conversationId) return [];
    const open = [];
    for await (
      const { key, value } of this.#store.list<{ messageId: string; receivedAt: string }>(
        this.#key("conv_open", conversationId),
      )
    ) {
      open.push({ messageKey: String(key.at(-1)), ...value });
    }
    return open;
  }

  /** The ledger record of a Message-ID, if the bridge has seen it. */
  ofMessage(messageId: string): Promise<MailRecord | undefined> {
    return this.get(messageKeyOf(messageId));
  }

  /** Whether a record is in a state only a crash or a retryable error leaves a mail in. */
  static isOpen(record: MailRecord): boolean {
    return OPEN_STATES.has(record.state);
  }

  /** The issue a Message-ID went into (as a new issue or a comment). */
  async issueOfMessage(messageId: string): Promise<string | undefined> {
    const record = await this.get(messageKeyOf(messageId));
    return record?.key;
  }

  async *failed(): AsyncGenerator<{ messageKey: string; record: MailRecord }> {
    for await (const { key } of this.#store.list(this.#key("failed"))) {
      const messageKey = String(key[key.length - 1]);
      const record = await this.get(messageKey);
      if (record?.state === "failed") yield { messageKey, record };
    }
  }

  /** How many dead letters there are (the index `move` keeps). */
  failedCount(): Promise<number> {
    return this.#store.count(this.#key("failed"));
  }

  /** Asks the bridge to handle a dead letter again on its next pass (the ticket API). */
  async requestRetry(messageKey: string): Promise<void> {
    await this.#store.set(this.#key("retry", messageKey), this.#now().toISOString());
  }

  /** Dead letters someone asked to retry (a request for a mail no longer failed is dropped). */
  async *retryRequests(): AsyncGenerator<{ messageKey: string; record: MailRecord }> {
    for await (const { key } of this.#store.list(this.#key("retry"))) {
      const messageKey = String(key[key.length - 1]);
      const record = await this.get(messageKey);
      if (record?.state === "failed") yield { messageKey, record };
      else await this.#store.delete(key);
    }
  }

  /** The retry request of a mail is done with (it was handled again). */
  async retryDone(messageKey: string): Promise<void> {
    await this.#store.delete(this.#key("retry", messageKey));
  }

  /** Mails a crash or a retryable error left half done. */
  async *open(): AsyncGenerator<{ messageKey: string; record: MailRecord }> {
    for await (const { key } of this.#store.list(this.#key("open"))) {
      const messageKey = String(key[key.length - 1]);
      const record = await this.get(messageKey);
      if (record && OPEN_STATES.has(record.state)) yield { messageKey, record };
    }
  }

  cursor(folder: string): Promise<string | undefined> {
    return this.#store.get<string>(this.#key("cursor", folder.toLowerCase()));
  }

  setCursor(folder: string, resume: string | undefined): Promise<void> {
    const key = this.#key("cursor", folder.toLowerCase());
    return resume === undefined ? this.#store.delete(key) : this.#store.set(key, resume);
  }

  /**
   * Only one agent sharing the store works on a mail at a time. With `runs`, a reservation
   * of a run on this host that has died is taken over at once (not after `ttlMs`).
   */
  claim(messageKey: string, ttlMs: number, runs?: RunLock): Promise<boolean> {
    return this.#store.claim(this.#key("lock", messageKey), runs?.ref ?? true, {
      ttlMs,
      ...(runs ? { takeOver: (holder: unknown) => runs.isDead(holder as RunRef) } : {}),
    });
  }

  release(messageKey: string): Promise<void> {
    return this.#store.delete(this.#key("lock", messageKey));
  }
}

/** The ledger's key for a mail: its Message-ID, normalised (`<A@B>` -> `a@b`). */
export function messageKeyOf(messageId: string, fallbackId?: string): string {
  const id = messageId.trim().replace(/^<|>$/g, "").toLowerCase();
  return id || `mailbox:${fallbackId ?? ""}`;
}
