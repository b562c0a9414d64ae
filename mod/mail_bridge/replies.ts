/**
 * The way back: a public comment on an issue that came from mail (or from the ticket API
 * with a reporter's e-mail) goes to the person who wrote in, as a reply in their own mail
 * thread - on the latest mail bridged into the issue, never on the bridge's own
 * acknowledgement - with Jira's rendered body and its images inline.
 *
 * Three triggers feed one handler: polling (JQL over the bridge's issues updated since a
 * cursor, read in the Jira account's time zone, with an overlap), a Jira webhook and a
 * Jira Automation mail (both queue the comment; the reply pass sends it). Each comment id
 * is answered once: a record in the store before sending and after, a lock while sending,
 * and after a crash in between, the mailbox is asked whether the reply with that comment's
 * marker went out (Sent Items carry the marker as an extended property).
 */
import type { MailBridgeConfig } from "../config/config.ts";
import { classify } from "../errors/classify.ts";
import type { Mailbox, OutgoingAttachment } from "../graph/types.ts";
import type { FeedComment, Tracker } from "../jira/types.ts";
import { log } from "../log/log.ts";
import { faultPoint } from "../ops/faults.ts";
import { everyStep } from "../async/supervise.ts";
import type { RunLock, RunRef } from "../store/run_lock.ts";
import type { Store } from "../store/store.ts";
import { escapeHtml, sanitizeMailHtml } from "./html.ts";
import { Ledger } from "./ledger.ts";
import { QUEUE_PREFIX, type QueuedComment } from "./reply_queue.ts";

const logger = log("mail-bridge", "replies");
/** Polling looks back this much before its cursor (clock skew, JQL's minute precision). */
export const REPLY_OVERLAP_MS = 10 * 60_000;
/** How long a reply's record is kept (a comment older than this is never polled again). */
const RECORD_TTL_MS = 90 * 86_400_000;
/** The labels of issues that may have someone to answer. */
const TICKET_LABEL = "ticket-api";
const OWN_PROPERTIES = ["agent.mail", "agent.ticket"];

type ReplyState =
  | { state: "sending"; at: string }
  | { state: "sent"; at: string; to: string; via: "reply" | "new" }
  | { state: "skipped"; at: string; reason: string };

export type ReplyOutcome = "sent" | "skipped" | "known" | "busy";

export interface ReplyStats {
  sent: number;
  skipped: number;
  failed: number;
}

/** Where a ticket came from, as the store records it (`["tickets", KEY]`). */
interface TicketOrigin {
  source: string;
  reporter: string;
  mailbox?: string;
}

export class Replier {
  readonly stats: ReplyStats = { sent: 0, skipped: 0, failed: 0 };
  readonly #tracker: Tracker;
  readonly #mailbox: Mailbox;
  readonly #store: Store;
  readonly #config: MailBridgeConfig;
  readonly #runs: RunLock | undefined;
  readonly #now: () => number;
  readonly #concurrency: number;
  #me: Promise<{ id: string; timeZone: string }> | undefined;

  constructor(
    deps: { tracker: Tracker; mailbox: Mailbox; store: Store; runs?: RunLock | undefined },
    config: MailBridgeConfig,
    options: { now?: () => number; concurrency?: number } = {},
  ) {
    this.#tracker = deps.tracker;
    this.#mailbox = deps.mailbox;
    this.#store = deps.store;
    this.#runs = deps.runs;
    this.#config = config;
    this.#now = options.now ?? Date.now;
    this.#concurrency = options.concurrency ?? 4;
  }

  /**
   * One pass: queued comments first, then polling. Throws when a retryable failure stopped
   * it; the cursor then stays, and the next pass looks again (each comment once).
   */
  async pass(signal?: AbortSignal): Promise<void> {
    await everyStep([() => this.#queued(signal), () => this.#poll(signal)], signal);
  }

  async #queued(signal?: AbortSignal): Promise<void> {
    for await (const { key, value } of this.#store.list<QueuedComment>(QUEUE_PREFIX)) {
      const comment = await this.#tracker.feedComment(value.key, value.id, signal);
      if (comment) await this.handle(comment, signal);
      else logger.info("Queued comment {id} of {key} is gone from Jira", { ...value });
      await this.#store.delete(key);
    }
  }

  async #poll(signal?: AbortSignal): Promise<void> {
    const me = await this.#myself(signal);
    const cursorKey = ["replies", "cursor"];
    const cursor = await this.#store.get<string>(cursorKey);
    const started = this.#now();
    if (!cursor) {
      // The first pass answers nothing from before the way back was switched on.
      await this.#store.set(cursorKey, new Date(started).toISOString());
      logger.info("Replies start from now: comments made from here on go back to the sender");
      return;
    }
    const since = new Date(Date.parse(cursor) - REPLY_OVERLAP_MS);
    const labels = [this.#config.bridgeLabel, TICKET_LABEL];
    const keys = await this.#tracker.updatedIssues(labels, since, me.timeZone, signal);
    // Issues side by side (the mailbox caps Graph's requests in flight), each issue's
    // comments in their order, so a thread reads as the issue does.
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        for (const comment of await this.#tracker.feedComments(key, signal)) {
          if (Date.parse(comment.created) < since.getTime()) continue;
          await this.handle(comment, signal);
        }
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(this.#concurrency, keys.length) }, worker),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    // Only once every issue's comments are handled: a pass that failed looks again.
    await this.#store.set(cursorKey, new Date(started).toISOString());
  }

  /** Answers one comment, once (see module doc). */
  async handle(comment: FeedComment, signal?: AbortSignal): Promise<ReplyOutcome> {
    const recordKey = ["replies", "comment", comment.id];
    const known = await this.#store.get<ReplyState>(recordKey);
    if (known?.state === "sent" || known?.state === "skipped") return "known";
    const origin = await this.#origin(comment, signal);
    if ("why" in origin) {
      const { why } = origin;
      await this.#record(recordKey, { state: "skipped", reason: why });
      this.stats.skipped++;
      logger.debug("Comment {id} on {key} not sent: {why}", {
        id: comment.id,
        key: comment.key,
        why,
      });
      return "skipped";
    }
    const lockKey = ["replies", "lock", comment.id];
    const claimed = await this.#store.claim(lockKey, this.#runs?.ref ?? true, {
      ttlMs: Math.max(this.#config.claimSeconds, 60) * 1000,
      ...(this.#runs ? { takeOver: (h: unknown) => this.#runs!.isDead(h as RunRef) } : {}),
    });
    if (!claimed) return "busy";
    const marker = `comment ${comment.id}`;
    try {
      if (known?.state === "sending" && await this.#mailbox.sentWith(marker, signal)) {
        logger.info("The reply for comment {id} on {key} was sent before a restart", {
          id: comment.id,
          key: comment.key,
        });
        await this.#record(recordKey, { state: "sent", to: "(before a restart)", via: "reply" });
        return "known";
      }
      await this.#record(recordKey, { state: "sending" });
      faultPoint("before-reply");
      const sent = await this.#send(comment, origin.ticket, marker, signal);
      faultPoint("after-reply");
      await this.#record(recordKey, { state: "sent", ...sent });
      this.stats.sent++;
      logger.info("Comment {id} on {key} -> reply to {to}", {
        id: comment.id,
        key: comment.key,
        to: sent.to,
      });
      return "sent";
    } catch (error) {
      if (signal?.aborted || classify(error).transient) throw error;
      // The mailbox refused for good (an address it will not send to): not retried.
      this.stats.failed++;
      await this.#record(recordKey, {
        state: "skipped",
        reason: `refused: ${(error as Error).message}`,
      });
      logger.warning("Cannot send comment {id} on {key} back: {error}", {
        id: comment.id,
        key: comment.key,
        error: (error as Error).message,
      });
      return "skipped";
    } finally {
      await this.#store.delete(lockKey);
    }
  }

  async #record(
    key: Deno.KvKey,
    value:
      | { state: "sending" }
      | { state: "sent"; to: string; via: "reply" | "new" }
      | { state: "skipped"; reason: string },
  ): Promise<void> {
    await this.#store.set(key, { ...value, at: new Date(this.#now()).toISOString() }, {
      ttlMs: RECORD_TTL_MS,
    });
  }

  /** Who a comment goes back to (the ticket's origin), or why it is not for the sender. */
  async #origin(
    c: FeedComment,
    signal?: AbortSignal,
  ): Promise<{ ticket: TicketOrigin } | { why: string }> {
    if (!this.#config.replies) return { why: "replies are off ([mail_bridge] replies)" };
    if (c.restricted) return { why: `restricted to ${c.restricted}` };
    if (c.internal) return { why: "an internal comment (Jira Service Management)" };
    if (c.authorId === (await this.#myself(signal)).id) {
      return { why: "written by the agent's account" };
    }
    const own = c.properties.find((p) => OWN_PROPERTIES.includes(p));
    if (own) return { why: `carries ${own} (the agent's own)` };
    const ticket = await this.#store.get<TicketOrigin>(["tickets", c.key]);
    if (!ticket) return { why: "the issue did not come from mail or the ticket API" };
    if (!ticket.reporter) return { why: "nobody to answer (no reporter's e-mail)" };
    return { ticket };
  }

  /** Sends the reply: in the thread of the latest mail bridged into the issue, else anew. */
  async #send(
    c: FeedComment,
    ticket: TicketOrigin,
    marker: string,
    signal?: AbortSignal,
  ): Promise<{ to: string; via: "reply" | "new" }> {
    const { html, attachments } = await this.#body(c, signal);
    const headers = { [this.#config.ownHeader]: `comment ${c.id}` };
    if (ticket.source === "mail") {
      const mails = await new Ledger(this.#store, ticket.mailbox ?? this.#mailbox.address)
        .mailsOfIssue(c.key);
      const own = new Set(this.#mailbox.ownAddresses.map((a) => a.toLowerCase()));
      const latest = mails.filter((m) => !own.has(m.from.toLowerCase())).at(-1);
      if (latest) {
        try {
          await this.#mailbox.reply(latest.mailId, {
            html,
            headers,
            marker,
            attachments,
            replyAll: this.#config.replyCc,
          }, signal);
          return { to: latest.from, via: "reply" };
        } catch (error) {
          // The mail left the mailbox (deleted, archived elsewhere): a new mail instead.
          if ((error as { status?: number }).status !== 404) throw error;
          logger.info("The mail to answer for {key} is gone; sending a new one", { key: c.key });
        }
      }
    }
    const issue = await this.#tracker.getIssue(c.key, {}, signal);
    const summary = String(issue?.fields.summary ?? "");
    await this.#mailbox.send({
      to: [ticket.reporter],
      subject: `RE: [${c.key}] ${summary}`,
      html,
      headers,
      marker,
      attachments,
    }, signal);
    return { to: ticket.reporter, via: "new" };
  }

  /** The mail's HTML: who commented where, Jira's rendered body, its images as `cid:`. */
  async #body(
    c: FeedComment,
    signal?: AbortSignal,
  ): Promise<{ html: string; attachments: OutgoingAttachment[] }> {
    const attachments: OutgoingAttachment[] = [];
    const link = this.#tracker.browseUrl(c.key);
    const base = new URL(link).origin;
    let body = c.html.replace(/\shref="\/(?!\/)/g, ` href="${base}/`);
    const images = [
      ...new Set([...body.matchAll(/<img\b[^>]*\ssrc="([^"]+)"/gi)].map((m) => m[1]!)),
    ];
    for (const [n, src] of images.entries()) {
      const file = await this.#tracker.download(src.replace(/&amp;/g, "&"), signal).catch(() =>
        undefined
      );
      if (!file || !file.contentType.startsWith("image/")) continue;
      const contentId = `image${n + 1}.${c.id}@agent`;
      attachments.push({
        name: decodeURIComponent(src.split("/").pop() ?? `image${n + 1}`).replace(/[?#].*$/, ""),
        contentType: file.contentType,
        contentId,
        bytes: file.bytes,
      });
      body = body.replaceAll(`src="${src}"`, `src="cid:${contentId}"`);
    }
    const html = `<p><b>${escapeHtml(c.authorName || "Someone")}</b> commented on ` +
      `<a href="${escapeHtml(link)}">${escapeHtml(c.key)}</a>:</p>` +
      sanitizeMailHtml(body) +
      `<p style="color:#666">Reply to this mail to add your answer to ${escapeHtml(c.key)}.</p>`;
    return { html, attachments };
  }

  #myself(signal?: AbortSignal): Promise<{ id: string; timeZone: string }> {
    this.#me ??= this.#tracker.myself(signal).catch((error) => {
      this.#me = undefined;
      throw error;
    });
    return this.#me;
  }
}
