/**
 * The mail bridge: mail in a mailbox becomes Jira issues, replies become comments, and
 * nothing is lost or done twice.
 *
 * Each pass reads each folder's changes page by page; a page's mails are handled (each one
 * stepping through the ledger) before the page's resume link is stored. A mail that fails
 * for a reason that will pass (throttling that outlasted the retries, Jira or Graph down)
 * keeps its ledger state and stops the pass, so the page is read again next time; one that
 * fails for good goes to the dead letters (`--retry-failed`). The mailbox is marked only
 * after Jira has everything.
 */
import type { MailBridgeConfig } from "../config/config.ts";
import type { AttachmentInfo, Mailbox, MailMessage } from "../graph/types.ts";
import { SyncReset } from "../graph/types.ts";
import {
  type AdfDoc,
  type AdfNode,
  adfText,
  concatAdf,
  htmlToAdf,
  textToAdf,
} from "../jira/adf.ts";
import { secrets } from "../log/redact.ts";
import { sha256Hex } from "../text/hash.ts";
import { everyStep } from "../async/supervise.ts";
import type { Tracker, UserRef } from "../jira/types.ts";
import { log } from "../log/log.ts";
import { KeyedQueue } from "../async/keyed_queue.ts";
import { faultPoint } from "../ops/faults.ts";
import { classify, PermanentError, TransientError } from "../errors/classify.ts";
import { escapeHtml, sanitizeMailHtml, stripQuotesAndSignature, textToHtml } from "./html.ts";
import { Ledger, type MailRecord, messageKeyOf } from "./ledger.ts";
import type { RunLock } from "../store/run_lock.ts";
import { parseAddress } from "../smtp/address.ts";
import {
  attachmentName,
  cleanSubject,
  isForward,
  placement,
  skipReason,
  subjectKeys,
} from "./rules.ts";

const logger = log("mail-bridge");
/** The issue and comment property holding the source mail. */
export const MAIL_PROPERTY = "agent.mail";
/** Jira's text fields take 32,767 characters; leave room for the markup. */
const TEXT_BUDGET = 30_000;
/** Mails handled at once: enough to keep Graph's 4 slots and Jira busy while others wait. */
const WORKERS = 16;

/** What happened to one mail in this pass. */
export type Outcome = "created" | "commented" | "skipped" | "known" | "failed" | "busy" | "retry";

export interface BridgeStats {
  created: number;
  commented: number;
  skipped: number;
  failed: number;
  known: number;
}

export class MailBridge {
  readonly stats: BridgeStats = { created: 0, commented: 0, skipped: 0, failed: 0, known: 0 };
  readonly #mailbox: Mailbox;
  readonly #tracker: Tracker;
  readonly #ledger: Ledger;
  readonly #config: MailBridgeConfig;
  readonly #project: string;
  readonly #issueType: string;
  readonly #users = new Map<string, Promise<UserRef | undefined>>();

  readonly #runs: RunLock | undefined;

  constructor(
    deps: { mailbox: Mailbox; tracker: Tracker; ledger: Ledger; runs?: RunLock | undefined },
    options: { config: MailBridgeConfig; project: string; issueType: string },
  ) {
    this.#mailbox = deps.mailbox;
    this.#tracker = deps.tracker;
    this.#ledger = deps.ledger;
    this.#runs = deps.runs;
    this.#config = options.config;
    this.#project = options.project;
    this.#issueType = options.issueType;
  }

  /**
   * One pass: mails left half done first, then each folder's changes. Throws when a
   * retryable failure stopped it (the next pass picks up from the same place).
   */
  async sync(folders: string[], signal?: AbortSignal): Promise<void> {
    // A retryable failure in one step does not keep the others from their turn.
    await everyStep([
      () => this.resumeOpen(signal),
      () => this.#retryRequested(signal),
      ...folders.map((f) => () => this.#syncFolder(f, signal)),
    ], signal);
  }

  async #syncFolder(folder: string, signal?: AbortSignal): Promise<void> {
    let resume = await this.#ledger.cursor(folder);
    for (let restarted = false;;) {
      try {
        // The next page is read while this one is handled; its position is stored only
        // after this page's mails are.
        const pages = this.#mailbox.changes(folder, resume, signal)[Symbol.asyncIterator]();
        let next = pages.next();
        for (;;) {
          const page = await next;
          if (page.done) return;
          next = page.value.last ? Promise.resolve({ done: true, value: undefined }) : pages.next();
          next.catch(() => {}); // a failure surfaces when awaited above
          await this.#handleAll(page.value.messages, signal);
          await this.#ledger.setCursor(folder, page.value.resume);
        }
      } catch (error) {
        if (!(error instanceof SyncReset) || restarted) throw error;
        // The delta position expired: read the folder again; the ledger skips what is done.
        logger.warning("{message}; reading the folder again from the start", {
          message: error.message,
        });
        restarted = true;
        resume = undefined;
        await this.#ledger.setCursor(folder, undefined);
      }
    }
  }

  /** Mails a crash or a retryable error left half done. */
  async resumeOpen(signal?: AbortSignal): Promise<void> {
    const { messages, retryable } = await this.#reread(this.#ledger.open(), signal);
    if (messages.length) {
      logger.info("Finishing {count} mail(s) left half done", { count: messages.length });
    }
    await this.#handleAll(messages, signal);
    if (retryable) throw retryable;
  }

  /** Dead letters someone asked to retry (`POST /mails/{id}/retry`), handled again. */
  async #retryRequested(signal?: AbortSignal): Promise<void> {
    const asked: string[] = [];
    const requests = this.#ledger.retryRequests();
    const { messages, retryable } = await this.#reread(
      (async function* () {
        for await (const request of requests) {
          asked.push(request.messageKey);
          yield request;
        }
      })(),
      signal,
    );
    if (messages.length) {
      logger.info("Retrying {count} dead letter(s) on request", { count: messages.length });
    }
    await this.#handleAll(messages, signal, { retryFailed: true });
    // A request stays until its mail was handled again (or could not be read at all).
    if (!retryable) { for (const key of asked) await this.#ledger.retryDone(key); }
    if (retryable) throw retryable;
  }

  /** Dead letters handled again; resolves to how many were retried. */
  async retryFailed(signal?: AbortSignal): Promise<number> {
    const { messages, retryable } = await this.#reread(this.#ledger.failed(), signal);
    await this.#handleAll(messages, signal, { retryFailed: true });
    if (retryable) throw retryable;
    return messages.length;
  }

  /**
   * The mails of ledger records, read again from the mailbox. One that cannot be read any
   * more fails alone (gone from the mailbox, unreadable); one that cannot be read for now
   * waits, and the first such error is returned after the rest were read.
   */
  async #reread(
    records: AsyncIterable<{ messageKey: string; record: MailRecord }>,
    signal?: AbortSignal,
  ): Promise<{ messages: MailMessage[]; retryable: unknown }> {
    const messages: MailMessage[] = [];
    let retryable: unknown;
    for await (const { messageKey, record } of records) {
      try {
        messages.push(await this.#mailbox.get(record.mailId, signal));
      } catch (error) {
        signal?.throwIfAborted();
        if (classify(error).transient) {
          retryable ??= error;
          continue;
        }
        await this.#deadLetter(
          messageKey,
          record,
          `cannot read the mail again: ${(error as Error).message}`,
        );
      }
    }
    return { messages, retryable };
  }

  /** Mails received in the last `days` days that the ledger does not know. */
  async backfill(
    folders: string[],
    days: number,
    options: { signal?: AbortSignal; progress?: (done: number, outcome: Outcome) => void } = {},
  ): Promise<void> {
    const since = new Date(Date.now() - days * 86_400_000);
    let done = 0;
    for (const folder of folders) {
      for await (const batch of this.#mailbox.receivedSince(folder, since, options.signal)) {
        await this.#handleAll(batch, options.signal, {
          onOutcome: (outcome) => options.progress?.(++done, outcome),
        });
      }
    }
  }

  /**
   * Handles mails (threads in order of arrival, different threads at once); throws the
   * first retryable failure after all have had their turn.
   */
  async #handleAll(
    messages: MailMessage[],
    signal?: AbortSignal,
    options: { retryFailed?: boolean; onOutcome?: (outcome: Outcome) => void } = {},
  ): Promise<void> {
    // Oldest first; within a second, a mail before the replies that reference it.
    const depth = (m: MailMessage) =>
      messageIds(m.headers["references"] ?? "").length +
      (m.headers["in-reply-to"] ? 1 : 0);
    const sorted = [...messages].sort((a, b) =>
      a.receivedDateTime.localeCompare(b.receivedDateTime) || depth(a) - depth(b)
    );
    const queue = new KeyedQueue(WORKERS);
    let retryable: unknown;
    for (const message of sorted) {
      queue.push(message.conversationId || message.id, async () => {
        if (signal?.aborted) return;
        try {
          const outcome = await this.handle(message, { signal, retryFailed: options.retryFailed });
          options.onOutcome?.(outcome);
        } catch (error) {
          retryable ??= error;
          options.onOutcome?.("retry");
        }
      });
    }
    await queue.idle();
    signal?.throwIfAborted();
    if (retryable) throw retryable;
  }

  /**
   * One mail through the ledger. Resolves to what happened; throws only for a retryable
   * failure (the mail keeps its state).
   */
  async handle(
    message: MailMessage,
    options: { signal?: AbortSignal | undefined; retryFailed?: boolean | undefined } = {},
  ): Promise<Outcome> {
    const messageKey = messageKeyOf(message.internetMessageId, message.id);
    let record = await this.#ledger.get(messageKey);
    if (record && ["marked", "skipped"].includes(record.state)) {
      this.stats.known++;
      return "known";
    }
    if (record?.state === "failed" && !options.retryFailed) {
      this.stats.known++;
      return "known";
    }
    if (message.unreadable) {
      // The mailbox could not read it: a dead letter with the reason, alone.
      return await this.#deadLetter(messageKey, record ?? newRecord(message), message.unreadable);
    }
    const claimMs = this.#config.claimSeconds * 1000;
    if (claimMs && !await this.#ledger.claim(messageKey, claimMs, this.#runs)) {
      logger.info(
        "Mail {messageId} is reserved by another agent (or one that stopped less than {seconds} s ago); left for a later pass",
        {
          messageId: message.internetMessageId,
          seconds: this.#config.claimSeconds,
        },
      );
      return "busy";
    }
    try {
      record ??= await this.#ledger.move(messageKey, newRecord(message), "seen");
      if (record.state === "failed") {
        record = await this.#ledger.move(messageKey, record, record.key ? "created" : "seen", {
          error: undefined,
        }, "retry");
      }
      return await this.#advance(message, messageKey, record, options.signal);
    } catch (error) {
      const current = (await this.#ledger.get(messageKey)) ?? newRecord(message);
      const text = (error as Error).message ?? String(error);
      const verdict = classify(error);
      if (verdict.transient || options.signal?.aborted) {
        await this.#ledger.move(messageKey, current, current.state, {
          error: text,
          attempts: current.attempts + 1,
        }, `will retry: ${text}`);
        logger.warning("Mail {messageId} from {from}: {error} (will retry{why})", {
          messageId: message.internetMessageId,
          from: message.from.address,
          error: text,
          why: verdict.transient && verdict.credentials
            ? "; our own credentials or permissions were refused, not the mail"
            : "",
        });
        throw error;
      }
      return await this.#deadLetter(messageKey, current, text);
    } finally {
      if (claimMs) await this.#ledger.release(messageKey);
    }
  }

  /** Over max_mail_mb, when the mailbox knows the size. */
  #tooLarge(message: MailMessage): string | undefined {
    const max = this.#config.maxMailBytes;
    if (message.size === undefined || message.size <= max) return undefined;
    return `the mail is ${mb(message.size)}, over max_mail_mb ${Math.round(max / 1048576)}`;
  }

  /** A mail that failed for good: kept as a dead letter with the reason (--retry-failed). */
  async #deadLetter(messageKey: string, record: MailRecord, reason: string): Promise<"failed"> {
    if (record.state !== "failed") this.stats.failed++;
    await this.#ledger.move(messageKey, record, "failed", {
      error: reason,
      attempts: record.attempts + 1,
    }, reason);
    logger.error("Mail {messageId} from {from} failed: {error} (kept as a dead letter)", {
      messageId: record.messageId || record.mailId,
      from: record.from || "(unknown sender)",
      error: reason,
    });
    return "failed";
  }

  async #advance(
    message: MailMessage,
    messageKey: string,
    start: MailRecord,
    signal?: AbortSignal,
  ): Promise<Outcome> {
    let record = start;
    if (record.state === "seen") {
      // The Ticket Manager's trigger: a Jira Automation mail naming a comment to send back.
      const trigger = automationTrigger(message);
      if (trigger) {
        await this.#ledger.queueReply({ ...trigger, via: "automation" });
        await this.#mailbox.mark(message.id, {
          category: `Jira: reply trigger ${trigger.key}`,
          categories: message.categories,
          moveTo: this.#config.moveTo ?? "deleteditems",
        }, signal);
        const reason = `Jira Automation reply trigger for ${trigger.key} comment ${trigger.id}`;
        await this.#ledger.move(messageKey, record, "skipped", { reason }, reason);
        this.stats.skipped++;
        logger.info("Mail {messageId}: {reason} (queued)", {
          messageId: message.internetMessageId,
          reason,
        });
        return "skipped";
      }
      const reason = skipReason(message, this.#config, this.#mailbox.ownAddresses);
      if (reason) {
        await this.#ledger.move(messageKey, record, "skipped", { reason }, reason);
        this.stats.skipped++;
        logger.info("Skipped mail {messageId} from {from}: {reason}", {
          messageId: message.internetMessageId,
          from: message.from.address,
          reason,
        });
        return "skipped";
      }
      const tooLarge = this.#tooLarge(message);
      if (tooLarge) throw new PermanentError(tooLarge);
    }
    // Attachments matter until they are uploaded; after that only the mark is left.
    const uploading = record.state !== "attachments_done";
    const attachments = uploading && (message.hasAttachments || /cid:/i.test(message.body.content))
      ? (await this.#mailbox.attachments(message.id, signal)).map((a, i) => ({
        ...a,
        name: attachmentName(a.name, i),
      }))
      : [];
    const limit = attachments.length
      ? await this.#tracker.attachmentLimit(signal)
      : { enabled: true, uploadLimit: Infinity };
    const tooBig = attachments.filter((a) => !limit.enabled || a.size > limit.uploadLimit);

    if (record.state === "seen" || record.state === "creating") {
      record = await this.#write(message, messageKey, record, attachments, tooBig, signal);
    }
    const key = record.key!;
    if (record.state === "created") {
      const done = new Set(record.attachmentsDone);
      // After a crash an upload may have landed without being recorded: Jira's list decides.
      const present = start.state === "created" && done.size < attachments.length
        ? await this.#tracker.attachmentNames(key, signal)
        : [];
      for (const attachment of attachments) {
        if (done.has(attachment.id)) continue;
        const skip = tooBig.includes(attachment) ||
          present.some((p) => p.filename === attachment.name && p.size === attachment.size);
        if (!skip) {
          await this.#tracker.addAttachment(key, {
            filename: attachment.name,
            contentType: attachment.contentType,
            size: attachment.size,
            open: async () =>
              (await this.#mailbox.attachmentContent(message.id, attachment.id, signal))
                .pipeThrough(midUploadFault()),
          }, signal);
          faultPoint("after-upload");
        }
        done.add(attachment.id);
        record = await this.#ledger.move(messageKey, record, "created", {
          attachmentsDone: [...done],
        }, skip ? `not uploaded: ${attachment.name}` : `uploaded ${attachment.name}`);
      }
      record = await this.#ledger.move(messageKey, record, "attachments_done");
    }
    if (
      record.state === "attachments_done" && record.kind === "issue" && this.#config.ackMail &&
      record.acknowledged === undefined
    ) {
      record = await this.#acknowledgeOnce(message, messageKey, record, key, signal);
    }
    if (record.state === "attachments_done") {
      await this.#mailbox.mark(message.id, {
        category: this.#config.markCategory.replaceAll("{key}", key),
        categories: message.categories,
        moveTo: this.#config.moveTo,
      }, signal);
      record = await this.#ledger.move(messageKey, record, "marked");
    }
    return record.kind === "issue" ? "created" : "commented";
  }

  /**
   * The acknowledgement, sent once: the ledger notes the attempt before the reply goes out,
   * and after a crash the mailbox is asked whether a reply with this mail's marker was sent
   * (Sent Items, or a draft the crash left, which is sent then). It comes before the mark,
   * so a marked mail has had its acknowledgement. A failure that will pass keeps the mail
   * open; one that will not (the sender's address refused) is logged and the mail is marked.
   */
  async #acknowledgeOnce(
    message: MailMessage,
    messageKey: string,
    start: MailRecord,
    key: string,
    signal?: AbortSignal,
  ): Promise<MailRecord> {
    const marker = `ack ${message.id}`;
    if (start.ackStarted && await this.#mailbox.sentWith(marker, signal)) {
      logger.info("The acknowledgement for {key} was sent before a restart", { key });
      return await this.#ledger.move(
        messageKey,
        start,
        start.state,
        { acknowledged: true },
        "acknowledgement found sent",
      );
    }
    const record = start.ackStarted
      ? start
      : await this.#ledger.move(messageKey, start, start.state, { ackStarted: true });
    faultPoint("before-ack");
    try {
      await this.#acknowledge(message, key, marker, signal);
    } catch (error) {
      if (classify(error).transient || signal?.aborted) throw error;
      logger.warning("Cannot send the acknowledgement for {key} to {to}: {error}", {
        key,
        to: message.from.address,
        error: (error as Error).message,
      });
      return await this.#ledger.move(messageKey, record, record.state, {
        acknowledged: false,
      }, `acknowledgement refused: ${(error as Error).message}`);
    }
    faultPoint("after-ack");
    return await this.#ledger.move(
      messageKey,
      record,
      record.state,
      { acknowledged: true },
      "acknowledged",
    );
  }

  /** Creates the issue or the comment (reconciling first after a crash). */
  async #write(
    message: MailMessage,
    messageKey: string,
    start: MailRecord,
    attachments: AttachmentInfo[],
    tooBig: AttachmentInfo[],
    signal?: AbortSignal,
  ): Promise<MailRecord> {
    let record = start;
    const reconciling = record.state === "creating";
    if (!reconciling) await this.#waitForEarlier(message, messageKey);
    const target = reconciling && record.kind
      ? { kind: record.kind, key: record.key, linkTo: undefined }
      : await this.#target(message, signal);
    const property = {
      key: MAIL_PROPERTY,
      value: { messageId: message.internetMessageId, mailbox: this.#mailbox.address },
    };
    const images = new Map(
      attachments.filter((a) => a.contentId).map((a) => [a.contentId!, a.name]),
    );

    if (target.kind === "comment") {
      const key = target.key!;
      if (!reconciling) {
        record = await this.#ledger.move(messageKey, record, "creating", { kind: "comment", key });
      }
      let commentId = reconciling
        ? await this.#tracker.findCommentByProperty(key, {
          propertyKey: MAIL_PROPERTY,
          messageId: message.internetMessageId,
        }, signal)
        : undefined;
      if (commentId) {
        logger.info(
          "Found comment {commentId} on {key} written for mail {messageId} before a restart",
          {
            commentId,
            key,
            messageId: message.internetMessageId,
          },
        );
      } else {
        const body = concatAdf(
          senderLine(message, "wrote"),
          this.#commentBody(message, images),
          notAttached(tooBig, attachments),
        );
        commentId = (await this.#tracker.addComment(key, fit(body), property, signal)).id;
        faultPoint("after-jira-create");
      }
      this.stats.commented++;
      logger.info("Mail {messageId} from {from} -> comment on {key}", {
        messageId: message.internetMessageId,
        from: message.from.address,
        key,
      });
      return await this.#ledger.move(
        messageKey,
        record,
        "created",
        { commentId },
        `comment ${commentId} on ${key}`,
      );
    }

    if (!reconciling) {
      record = await this.#ledger.move(messageKey, record, "creating", { kind: "issue" });
    }
    const marker = await mailMarker(message.internetMessageId || messageKey);
    let key = reconciling
      ? await this.#tracker.findIssueByProperty({
        label: marker,
        propertyKey: MAIL_PROPERTY,
        messageId: message.internetMessageId,
        days: this.#config.reconcileDays,
      }, signal)
      : undefined;
    if (key) {
      logger.info("Found {key} created for mail {messageId} before a restart", {
        key,
        messageId: message.internetMessageId,
      });
    }
    if (!key) {
      const place = placement(message, this.#config, this.#project);
      const sender = await this.#user(message.from.address, signal);
      const reporter = sender ?? await this.#defaultReporter(signal);
      const description = concatAdf(
        senderLine(message, sender ? "wrote" : "wrote (not a Jira user)"),
        this.#bodyOf(message.body, images),
        notAttached(tooBig, attachments),
      );
      key = (await this.#tracker.createIssue({
        project: place.project,
        issueType: this.#issueType,
        summary: secrets.scrubKnown(
          cleanSubject(message.subject, place.tags, this.#config.maxSummary),
        ),
        description: fit(description),
        labels: [...place.labels, marker],
        priority: place.priority,
        reporter,
        properties: [property],
      }, signal)).key;
      faultPoint("after-jira-create");
    }
    record = await this.#ledger.move(messageKey, record, "created", { key }, `issue ${key}`);
    await this.#ledger.noteTicket(key, record);
    this.stats.created++;
    logger.info("Mail {messageId} from {from} -> new issue {key}", {
      messageId: message.internetMessageId,
      from: message.from.address,
      key,
    });
    // Watchers and links are idempotent in Jira: safe to repeat after a crash.
    if (this.#config.watchersFromCc) {
      for (const cc of message.cc) {
        if (this.#mailbox.ownAddresses.includes(cc.address.toLowerCase())) continue;
        // Only a plain address is looked up: nothing else may become a watcher.
        if (!parseAddress(cc.address).ok) continue;
        const user = await this.#user(cc.address, signal);
        if (user) await this.#tracker.addWatcher(key, user, signal);
      }
    }
    if (target.linkTo) await this.#tracker.link(key, target.linkTo, signal);
    return record;
  }

  /**
   * Per-conversation order: while an earlier mail of this thread (same conversation, or a
   * mail it replies to) is not bridged yet - pending, reserved, failing for now - this one
   * waits, so that a reply never becomes an issue of its own for want of its parent's.
   */
  async #waitForEarlier(message: MailMessage, messageKey: string): Promise<void> {
    // Received in the same second says nothing about order: the references decide then.
    const before = (other: { messageKey: string; receivedAt: string }) =>
      other.messageKey !== messageKey && other.receivedAt < message.receivedDateTime;
    const earlier = (await this.#ledger.openInConversation(message.conversationId)).find(before);
    const parents = [
      ...messageIds(message.headers["in-reply-to"] ?? ""),
      ...messageIds(message.headers["references"] ?? ""),
    ];
    let waitingFor = earlier?.messageId;
    for (const id of parents) {
      if (waitingFor) break;
      const parent = await this.#ledger.ofMessage(id);
      if (parent && Ledger.isOpen(parent) && !parent.key) waitingFor = parent.messageId;
    }
    if (waitingFor) {
      throw new TransientError(
        `waiting for an earlier mail of its thread (${waitingFor}) to be bridged first`,
      );
    }
  }

  /** Threading: subject key, then In-Reply-To/References, then the conversation. */
  async #target(
    message: MailMessage,
    signal?: AbortSignal,
  ): Promise<{ kind: "issue" | "comment"; key?: string | undefined; linkTo?: string | undefined }> {
    const found = await this.#thread(message, signal);
    if (!found) return { kind: "issue" };
    // A forward of a thread starts a new issue, linked to the old one.
    return isForward(message.subject)
      ? { kind: "issue", linkTo: found }
      : { kind: "comment", key: found };
  }

  async #thread(message: MailMessage, signal?: AbortSignal): Promise<string | undefined> {
    for (const candidate of subjectKeys(message.subject, this.#config.projectKeys)) {
      const key = await this.#tracker.issueKey(candidate, signal);
      if (key) return key;
    }
    const referenced = [
      ...messageIds(message.headers["in-reply-to"] ?? ""),
      ...messageIds(message.headers["references"] ?? "").reverse(),
    ];
    for (const id of referenced) {
      const key = await this.#ledger.issueOfMessage(id);
      if (key) return key;
    }
    return await this.#ledger.conversationIssue(message.conversationId);
  }

  #bodyOf(body: MailMessage["body"], images: Map<string, string>): AdfDoc {
    const html = body.contentType === "html" ? body.content : textToHtml(body.content);
    return htmlToAdf(sanitizeMailHtml(html), { images });
  }

  #commentBody(message: MailMessage, images: Map<string, string>): AdfDoc {
    const source = message.uniqueBody?.content.trim() ? message.uniqueBody : message.body;
    const html = source.contentType === "html" ? source.content : textToHtml(source.content);
    return htmlToAdf(sanitizeMailHtml(stripQuotesAndSignature(html)), { images });
  }

  #user(email: string, signal?: AbortSignal): Promise<UserRef | undefined> {
    if (!parseAddress(email).ok) return Promise.resolve(undefined);
    const key = email.toLowerCase();
    let found = this.#users.get(key);
    if (!found) {
      found = this.#tracker.findUser(key, signal);
      this.#users.set(key, found);
      found.catch(() => this.#users.delete(key));
    }
    return found;
  }

  async #defaultReporter(signal?: AbortSignal): Promise<UserRef | undefined> {
    const value = this.#config.defaultReporter;
    if (!value) return undefined;
    if (value.includes("@")) return await this.#user(value, signal);
    return this.#tracker.deployment === "cloud" ? { accountId: value } : { name: value };
  }

  async #acknowledge(
    message: MailMessage,
    key: string,
    marker: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const url = this.#tracker.browseUrl(key);
    await this.#mailbox.reply(message.id, {
      html: `<p>Thank you. Your message is now tracked as <a href="${escapeHtml(url)}">` +
        `${escapeHtml(key)}</a>. Reply to this mail, or keep ${escapeHtml(key)} in the subject, ` +
        `to add to it.</p>`,
      headers: { [this.#config.ownHeader]: `ack; issue=${key}` },
      marker,
    }, signal);
  }
}

function newRecord(message: MailMessage): MailRecord {
  return {
    state: "seen",
    mailId: message.id,
    messageId: message.internetMessageId,
    conversationId: message.conversationId,
    subject: message.subject.slice(0, 300),
    from: message.from.address,
    receivedAt: message.receivedDateTime,
    attachmentsDone: [],
    attempts: 0,
    history: [],
  };
}

function senderLine(message: MailMessage, verb: string): AdfDoc {
  const who = message.from.name
    ? `${message.from.name} <${message.from.address}>`
    : message.from.address;
  return {
    type: "doc",
    version: 1,
    content: [{
      type: "paragraph",
      content: [{ type: "text", text: `${who} ${verb}:`, marks: [{ type: "strong" }] }],
    }],
  };
}

function notAttached(tooBig: AttachmentInfo[], all: AttachmentInfo[]): AdfDoc {
  if (!tooBig.length) return textToAdf();
  const lines = tooBig.map((a) => `${a.name} (${mb(a.size)})`);
  return textToAdf(
    `Not attached (larger than Jira's upload limit or attachments disabled): ${lines.join(", ")}` +
      (all.length > tooBig.length
        ? `; the other ${all.length - tooBig.length} are attached.`
        : "."),
  );
}

function mb(bytes: number): string {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/** No secret the agent holds ever reaches Jira, whatever a mail quotes. */
function scrubbed(doc: AdfDoc): AdfDoc {
  const visit = (node: AdfNode): AdfNode => ({
    ...node,
    ...(node.text !== undefined ? { text: secrets.scrubKnown(node.text) } : {}),
    ...(node.content ? { content: node.content.map(visit) } : {}),
  });
  return { ...doc, content: doc.content.map(visit) };
}

/** Keeps a document under Jira's text limit, saying so when it cuts. */
function fit(doc: AdfDoc): AdfDoc {
  doc = scrubbed(doc);
  if (adfText(doc).length <= TEXT_BUDGET) return doc;
  const content = [...doc.content];
  while (content.length > 1 && adfText({ ...doc, content }).length > TEXT_BUDGET - 200) {
    content.pop();
  }
  return concatAdf(
    { ...doc, content },
    textToAdf("[The rest of the mail was cut: Jira's text limit.]"),
  );
}

/** Crash tests: a failpoint once part of an upload has gone out. */
function midUploadFault(): TransformStream<Uint8Array, Uint8Array> {
  let chunks = 0;
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      if (++chunks === 2) faultPoint("mid-upload");
    },
  });
}

/**
 * A Jira Automation mail (from automation.atlassian.com) whose body is the Ticket Manager's
 * trigger JSON `{"ticket": KEY, "id": COMMENT_ID, "author": {...}}`: the comment to send.
 */
export function automationTrigger(message: MailMessage): { key: string; id: string } | undefined {
  const from = message.from.address.toLowerCase();
  if (!/@(?:[a-z0-9-]+\.)*automation\.atlassian\.com$/.test(from)) return undefined;
  const text = message.body.contentType === "html"
    ? message.body.content.replace(/<[^>]*>/g, " ").replace(/&quot;/g, '"').replace(/&amp;/g, "&")
      .replace(/&#34;/g, '"').replace(/&nbsp;/g, " ")
    : message.body.content;
  const start = text.indexOf("{");
  const end = text.lastIndexOf("}");
  if (start < 0 || end <= start) return undefined;
  try {
    const value = JSON.parse(text.slice(start, end + 1)) as { ticket?: unknown; id?: unknown };
    const key = String(value.ticket ?? "");
    const id = String(value.id ?? "");
    if (!/^[A-Z][A-Z0-9_]{0,19}-[1-9][0-9]{0,9}$/.test(key) || !/^[0-9]{1,19}$/.test(id)) {
      return undefined;
    }
    return { key, id };
  } catch {
    return undefined;
  }
}

/**
 * The label that marks the issue of one mail, set in the request that creates it: a search
 * for it works on every Jira (Server/DC's search cannot see entity properties), and the
 * property then confirms the candidate.
 */
export function mailMarker(messageId: string): Promise<string> {
  return Promise.resolve(`mail-${sha256Hex(messageKeyOf(messageId)).slice(0, 20)}`);
}

/** `<a@b> <c@d>` -> ["<a@b>", "<c@d>"]. */
function messageIds(header: string): string[] {
  return [...header.matchAll(/<[^<>\s]+>/g)].map((m) => m[0]);
}
