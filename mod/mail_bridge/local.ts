/**
 * The embedded defaults (no Microsoft 365, no Jira configured): a folder of `.eml` files
 * as the mailbox (parsed with mailparser), issues as JSON files, replies as `.eml` files
 * in an outbox. The same bridge runs on them; the demo uses them.
 */
import { type ParsedMail, simpleParser } from "mailparser";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type AttachmentInfo,
  type ChangePage,
  type Mailbox,
  type MailMessage,
  type OutgoingMail,
  unreadableMessage,
} from "../graph/types.ts";
import { PermanentError } from "../errors/classify.ts";
import { adfText } from "../jira/adf.ts";
import { adfToWiki } from "../jira/wiki.ts";
import type {
  AttachmentUpload,
  CommentView,
  FeedComment,
  IssueDraft,
  IssueFilter,
  IssueView,
  Tracker,
  UserRef,
} from "../jira/types.ts";
import { escapeHtml } from "./html.ts";
import type { AdfDoc } from "../jira/adf.ts";
import type { Store } from "../store/store.ts";

type Parsed = ParsedMail;

/** The embedded mailbox's own address (its acknowledgements come from it). */
const LOCAL_ADDRESS = "mail-bridge@localhost";
/** Parsed mails kept for their attachments (bytes, summed over the files). */
const PARSED_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * A folder of .eml files (every file is one message; its name is its id). A file over
 * `maxMailBytes` is refused before it is read; one that cannot be parsed (broken MIME, more
 * than 1,000 parts) is listed as unreadable, so it fails alone. Each mail is parsed once
 * while it is being handled (its attachments are read from that parse), not per attachment.
 */
export class DirMailbox implements Mailbox {
  readonly address = "local";
  /** What the embedded mailbox's own mail is sent from. */
  readonly ownAddresses = [LOCAL_ADDRESS];
  readonly #dir: string;
  readonly #store: Store;
  readonly #outbox: string;
  readonly #maxMailBytes: number;
  /** Recently parsed mails, oldest first. */
  readonly #parsed = new Map<string, { mail: Promise<Parsed>; bytes: number }>();

  constructor(
    dir: string,
    options: { store: Store; outbox: string; maxMailBytes?: number },
  ) {
    this.#dir = dir;
    this.#store = options.store;
    this.#outbox = options.outbox;
    this.#maxMailBytes = options.maxMailBytes ?? 25 * 1024 * 1024;
  }

  async *changes(): AsyncIterable<ChangePage> {
    // A folder has no change feed: every pass lists it, and the ledger skips what is done.
    yield { messages: await this.#readAll(await this.#files()), resume: "all", last: true };
  }

  async *receivedSince(_folder: string, since: Date): AsyncIterable<MailMessage[]> {
    const messages = await this.#readAll(await this.#files());
    yield messages.filter((m) => m.unreadable || Date.parse(m.receivedDateTime) >= since.getTime());
  }

  /** Every file as a message, or as an unreadable one saying why (never a failed listing). */
  async #readAll(files: string[]): Promise<MailMessage[]> {
    const messages: MailMessage[] = [];
    for (const file of files) {
      try {
        messages.push(await this.get(file));
      } catch (error) {
        if (!(error instanceof PermanentError)) throw error;
        messages.push(unreadableMessage(file, error.message));
      }
    }
    return messages;
  }

  async get(id: string): Promise<MailMessage> {
    const parsed = await this.#parse(id);
    const address = (list: Parsed["to"]) =>
      (Array.isArray(list) ? list : list ? [list] : []).flatMap((a) => a.value)
        .map((a) => ({ name: a.name ?? "", address: (a.address ?? "").toLowerCase() }));
    const fromAll = address(parsed.from);
    const from = fromAll[0] ?? { name: "", address: "" };
    const sender = parsed.headers.get("sender") as { value?: { address?: string }[] } | undefined;
    const headers: Record<string, string> = {};
    for (const line of parsed.headerLines) {
      headers[line.key.toLowerCase()] = line.line.slice(line.line.indexOf(":") + 1).trim();
    }
    const references = typeof parsed.references === "string"
      ? [parsed.references]
      : parsed.references ?? [];
    const messageId = parsed.messageId ?? `<${id}@local>`;
    const categories = await this.#store.get<string[]>(["local_mail", id, "categories"]) ?? [];
    const importance = (headers["importance"] ?? "").toLowerCase();
    return {
      id,
      internetMessageId: messageId,
      // The thread's first Message-ID stands in for Outlook's conversation id.
      conversationId: references[0] ?? parsed.inReplyTo ?? messageId,
      subject: parsed.subject ?? "",
      from,
      fromAll,
      sender: sender?.value?.[0]?.address
        ? { name: "", address: sender.value[0].address.toLowerCase() }
        : undefined,
      to: address(parsed.to),
      cc: address(parsed.cc),
      receivedDateTime: (parsed.date ?? new Date(0)).toISOString(),
      importance: importance === "high" || importance === "low" ? importance : "normal",
      body: parsed.html
        ? { contentType: "html", content: parsed.html }
        : { contentType: "text", content: parsed.text ?? "" },
      headers,
      hasAttachments: parsed.attachments.some((a) => a.contentDisposition !== "inline"),
      categories,
    };
  }

  async attachments(messageId: string): Promise<AttachmentInfo[]> {
    const parsed = await this.#parse(messageId);
    return parsed.attachments.map((a, i) => ({
      id: String(i),
      name: a.filename ?? `attachment-${i + 1}`,
      contentType: a.contentType,
      size: a.size,
      isInline: a.contentDisposition === "inline",
      contentId: a.contentId?.replace(/^<|>$/g, ""),
    }));
  }

  async attachmentContent(
    messageId: string,
    attachmentId: string,
  ): Promise<ReadableStream<Uint8Array>> {
    const parsed = await this.#parse(messageId);
    const content = parsed.attachments[Number(attachmentId)]?.content ?? new Uint8Array();
    return new Blob([new Uint8Array(content)]).stream();
  }

  async mark(messageId: string, options: { category: string }): Promise<void> {
    const key = ["local_mail", messageId, "categories"];
    const current = await this.#store.get<string[]>(key) ?? [];
    await this.#store.set(key, [...new Set([...current, options.category])]);
  }

  async reply(
    messageId: string,
    options: OutgoingMail & { replyAll?: boolean | undefined },
  ): Promise<void> {
    const original = await this.get(messageId);
    const own = (a: string) => [LOCAL_ADDRESS, ...this.ownAddresses].includes(a.toLowerCase());
    await this.#write(options, {
      to: [original.from.address],
      cc: options.replyAll
        ? [...original.to, ...original.cc].map((a) => a.address).filter((a) => !own(a))
        : [],
      subject: /^re:/i.test(original.subject) ? original.subject : `RE: ${original.subject}`,
      inReplyTo: original.internetMessageId,
      references: [
        ...(original.headers["references"]?.split(/\s+/).filter(Boolean) ?? []),
        original.internetMessageId,
      ],
    });
  }

  async send(
    options: OutgoingMail & { to: string[]; cc?: string[] | undefined; subject: string },
  ): Promise<void> {
    await this.#write(options, { to: options.to, cc: options.cc ?? [], subject: options.subject });
  }

  /** The mail as MIME in the outbox, whole or not at all. */
  async #write(
    options: OutgoingMail,
    envelope: {
      to: string[];
      cc: string[];
      subject: string;
      inReplyTo?: string;
      references?: string[];
    },
  ): Promise<void> {
    const transport = nodemailer.createTransport({
      streamTransport: true,
      buffer: true,
      newline: "windows",
    });
    const info = await transport.sendMail({
      from: LOCAL_ADDRESS,
      to: envelope.to,
      ...(envelope.cc.length ? { cc: envelope.cc } : {}),
      subject: envelope.subject,
      ...(envelope.inReplyTo
        ? { inReplyTo: envelope.inReplyTo, references: envelope.references ?? [] }
        : {}),
      html: options.html,
      attachments: (options.attachments ?? []).map((a) => ({
        filename: a.name,
        contentType: a.contentType,
        content: Buffer.from(a.bytes),
        ...(a.contentId ? { cid: a.contentId } : {}),
      })),
      // Sent as MIME here, so the standard marks go on too (RFC 3834; Exchange's own).
      headers: {
        "Auto-Submitted": "auto-replied",
        "X-Auto-Response-Suppress": "All",
        ...options.headers,
      },
    });
    await Deno.mkdir(this.#outbox, { recursive: true });
    // Written whole under a temporary name, then renamed: the file is there or it is not.
    const path = join(this.#outbox, this.#replyName(options.marker));
    await Deno.writeFile(`${path}.tmp`, info.message as unknown as Uint8Array);
    await Deno.rename(`${path}.tmp`, path);
  }

  async sentWith(marker: string): Promise<boolean> {
    try {
      await Deno.stat(join(this.#outbox, this.#replyName(marker)));
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  /** One file per marker: `<mail file>-reply.eml` for the acknowledgement. */
  #replyName(marker: string): string {
    const [kind, id] = marker.split(" ", 2);
    return kind === "ack" && id
      ? `${basename(id, ".eml")}-reply.eml`
      : `${encodeURIComponent(marker)}.eml`;
  }

  async probe(): Promise<void> {
    await Deno.stat(this.#dir);
  }

  async #files(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.#dir)) {
        if (entry.isFile && entry.name.toLowerCase().endsWith(".eml")) names.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return names.sort();
  }

  /** The parsed file, from the cache while it is recent (see class doc). */
  #parse(id: string): Promise<Parsed> {
    const cached = this.#parsed.get(id);
    if (cached) {
      this.#parsed.delete(id);
      this.#parsed.set(id, cached);
      return cached.mail;
    }
    const entry = { mail: this.#read(id), bytes: 0 };
    this.#parsed.set(id, entry);
    entry.mail.then(
      (mail) => {
        entry.bytes = mail.attachments.reduce((n, a) => n + a.size, 0) + (mail.html || "").length;
        this.#trimCache();
      },
      () => this.#parsed.delete(id),
    );
    return entry.mail;
  }

  #trimCache(): void {
    let total = 0;
    for (const entry of this.#parsed.values()) total += entry.bytes;
    for (const [key, entry] of this.#parsed) {
      if (total <= PARSED_CACHE_BYTES || this.#parsed.size <= 1) break;
      this.#parsed.delete(key);
      total -= entry.bytes;
    }
  }

  async #read(id: string): Promise<Parsed> {
    if (id.includes("/") || id.includes("\\")) {
      throw new PermanentError(`"${id}" is not a mail file name`);
    }
    const path = join(this.#dir, id);
    const size = await Deno.stat(path).then((info) => info.size, (error) => {
      if (error instanceof Deno.errors.NotFound) {
        throw new PermanentError(`the mail file "${id}" is gone`, { cause: error });
      }
      throw error;
    });
    if (size > this.#maxMailBytes) {
      throw new PermanentError(
        `the mail file "${id}" is ${(size / 1048576).toFixed(1)} MB, over max_mail_mb ${
          Math.round(this.#maxMailBytes / 1048576)
        } (not read)`,
      );
    }
    try {
      return await simpleParser(Buffer.from(await Deno.readFile(path)));
    } catch (error) {
      throw new PermanentError(
        `Cannot read the mail file "${id}": ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
}

interface IssueFile {
  key: string;
  project: string;
  issueType: string;
  summary: string;
  labels: string[];
  priority?: string | undefined;
  reporter?: UserRef | undefined;
  properties: Record<string, unknown>;
  description: string;
  comments: {
    id: string;
    body: string;
    properties: Record<string, unknown>;
    created?: string;
    /** Who wrote it; absent for the agent's own (a person adding one to the file names it). */
    author?: string;
  }[];
  attachments: { filename: string; size: number }[];
  watchers: string[];
  links: string[];
  /** ISO time (files written before it was kept have none). */
  created?: string;
  /** ISO time of the last change the tracker made (a comment). */
  updated?: string;
  status?: string;
}

/** Issues as JSON files (`MAIL-1.json`), attachments beside them; text as wiki markup. */
export class FileTracker implements Tracker {
  readonly deployment = "local" as const;
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  browseUrl(key: string): string {
    return pathToFileURL(resolve(this.#dir, `${key}.json`)).href;
  }

  findUser(): Promise<UserRef | undefined> {
    return Promise.resolve(undefined);
  }

  async issueKey(key: string): Promise<string | undefined> {
    return (await this.#read(key)) ? key : undefined;
  }

  async createIssue(draft: IssueDraft): Promise<{ key: string }> {
    await Deno.mkdir(this.#dir, { recursive: true });
    for (let n = (await this.#keys()).length + 1;; n++) {
      const key = `${draft.project}-${n}`;
      const issue: IssueFile = {
        key,
        project: draft.project,
        issueType: draft.issueType,
        summary: draft.summary,
        labels: draft.labels,
        priority: draft.priority,
        reporter: draft.reporter,
        properties: Object.fromEntries(draft.properties.map((p) => [p.key, p.value])),
        description: text(draft.description),
        comments: [],
        attachments: [],
        watchers: [],
        links: [],
        created: new Date().toISOString(),
        status: "Open",
      };
      try {
        await Deno.writeTextFile(this.#path(key), JSON.stringify(issue, null, 2) + "\n", {
          createNew: true,
        });
        return { key };
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      }
    }
  }

  async findIssueByProperty(
    query: { propertyKey: string; messageId: string },
  ): Promise<string | undefined> {
    for (const key of await this.#keys()) {
      const issue = await this.#read(key);
      if (
        (issue?.properties[query.propertyKey] as { messageId?: string })?.messageId ===
          query.messageId
      ) {
        return key;
      }
    }
    return undefined;
  }

  async addComment(
    key: string,
    body: AdfDoc,
    property: { key: string; value: unknown },
  ): Promise<{ id: string }> {
    const issue = await this.#need(key);
    const id = String(issue.comments.length + 1);
    issue.comments.push({
      id,
      body: text(body),
      properties: { [property.key]: property.value },
      created: new Date().toISOString(),
    });
    issue.updated = new Date().toISOString();
    await this.#write(issue);
    return { id };
  }

  async findCommentByProperty(
    key: string,
    query: { propertyKey: string; messageId: string },
  ): Promise<string | undefined> {
    const issue = await this.#need(key);
    return issue.comments.find((c) =>
      (c.properties[query.propertyKey] as { messageId?: string })?.messageId === query.messageId
    )?.id;
  }

  attachmentLimit(): Promise<{ enabled: boolean; uploadLimit: number }> {
    return Promise.resolve({ enabled: true, uploadLimit: 100 * 1024 * 1024 });
  }

  async attachmentNames(key: string): Promise<{ filename: string; size: number }[]> {
    return (await this.#need(key)).attachments;
  }

  async addAttachment(key: string, upload: AttachmentUpload): Promise<void> {
    const dir = join(this.#dir, key);
    await Deno.mkdir(dir, { recursive: true });
    const file = await Deno.open(join(dir, basename(upload.filename)), {
      write: true,
      create: true,
      truncate: true,
    });
    await (await upload.open()).pipeTo(file.writable);
    const issue = await this.#need(key);
    issue.attachments.push({ filename: upload.filename, size: upload.size });
    await this.#write(issue);
  }

  async addWatcher(key: string, user: UserRef): Promise<void> {
    const issue = await this.#need(key);
    issue.watchers.push("name" in user ? user.name : user.accountId);
    await this.#write(issue);
  }

  async link(inward: string, outward: string): Promise<void> {
    const issue = await this.#need(inward);
    issue.links.push(`Relates:${outward}`);
    await this.#write(issue);
  }

  async getIssue(key: string, options: { rendered?: boolean }): Promise<IssueView | undefined> {
    const issue = await this.#read(key);
    if (!issue) return undefined;
    return {
      ...viewOf(issue),
      ...(options.rendered
        ? { rendered: { description: `<p>${escapeHtml(issue.description)}</p>` } }
        : {}),
    };
  }

  async searchIssues(
    filter: IssueFilter,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<{ issues: IssueView[]; next?: string | undefined }> {
    const who = (user: UserRef) => "name" in user ? user.name : user.accountId;
    const words = filter.text?.toLowerCase().split(/\W+/).filter(Boolean) ?? [];
    const matches: IssueFile[] = [];
    for (const key of await this.#keys()) {
      const issue = await this.#read(key);
      if (!issue || !filter.projects.includes(issue.project)) continue;
      if (filter.labels.length && !issue.labels.some((l) => filter.labels.includes(l))) continue;
      if (filter.reporter && (!issue.reporter || who(issue.reporter) !== who(filter.reporter))) {
        continue;
      }
      if (filter.assignee) continue; // the embedded tracker assigns nobody
      if (filter.watcher && !issue.watchers.includes(who(filter.watcher))) continue;
      if (filter.status && (issue.status ?? "Open").toLowerCase() !== filter.status.toLowerCase()) {
        continue;
      }
      const haystack = [issue.summary, issue.description, ...issue.comments.map((c) => c.body)]
        .join(" ").toLowerCase();
      if (!words.every((w) => haystack.includes(w))) continue;
      matches.push(issue);
    }
    const order = (i: IssueFile) => `${i.created ?? ""}|${i.key.padStart(20, "0")}`;
    matches.sort((a, b) => order(a).localeCompare(order(b)) * (filter.ascending ? 1 : -1));
    const start = Number(page.cursor ?? 0) || 0;
    const issues = matches.slice(start, start + page.limit).map(viewOf);
    const next = start + page.limit < matches.length ? String(start + page.limit) : undefined;
    return { issues, next };
  }

  async comments(key: string): Promise<CommentView[]> {
    const issue = await this.#need(key);
    return issue.comments.map((c) => ({
      id: c.id,
      body: c.body,
      created: c.created,
      properties: Object.entries(c.properties).map(([k, value]) => ({ key: k, value })),
    }));
  }

  async watchers(key: string): Promise<Record<string, unknown>[]> {
    return (await this.#need(key)).watchers.map((name) => ({ name }));
  }

  myself(): Promise<{ id: string; timeZone: string }> {
    return Promise.resolve({ id: OWN_AUTHOR, timeZone: "UTC" });
  }

  /**
   * Issues with the labels changed since `since`: by the tracker (`updated`), or by a person
   * editing the file (its modification time).
   */
  async updatedIssues(labels: string[], since: Date): Promise<string[]> {
    const found: { key: string; at: number }[] = [];
    for (const key of await this.#keys()) {
      const issue = await this.#read(key);
      if (!issue || !issue.labels.some((l) => labels.includes(l))) continue;
      const mtime = (await Deno.stat(this.#path(key))).mtime?.getTime() ?? 0;
      const at = Math.max(Date.parse(issue.updated ?? issue.created ?? "") || 0, mtime);
      if (at >= since.getTime()) found.push({ key, at });
    }
    return found.sort((a, b) => a.at - b.at).map((f) => f.key);
  }

  async feedComments(key: string): Promise<FeedComment[]> {
    const issue = await this.#need(key);
    return issue.comments.map((c) => ({
      id: `${key}/${c.id}`,
      key,
      created: c.created ?? issue.updated ?? new Date(0).toISOString(),
      authorId: c.author ?? OWN_AUTHOR,
      authorName: c.author ?? "the agent",
      html: c.body.split(/\n\s*\n/).map((p) => `<p>${escapeHtml(p).replace(/\n/g, "<br>")}</p>`)
        .join(""),
      internal: false,
      properties: Object.keys(c.properties ?? {}),
    }));
  }

  async feedComment(key: string, id: string): Promise<FeedComment | undefined> {
    return (await this.feedComments(key)).find((c) => c.id === id || c.id === `${key}/${id}`);
  }

  download(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  #path(key: string): string {
    return join(this.#dir, `${key}.json`);
  }

  async #keys(): Promise<string[]> {
    const keys: string[] = [];
    try {
      for await (const e of Deno.readDir(this.#dir)) {
        if (e.isFile && /^[A-Z][A-Z0-9_]*-\d+\.json$/.test(e.name)) keys.push(e.name.slice(0, -5));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return keys;
  }

  async #read(key: string): Promise<IssueFile | undefined> {
    if (!/^[A-Z][A-Z0-9_]*-\d+$/.test(key)) return undefined;
    try {
      return JSON.parse(await Deno.readTextFile(this.#path(key)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  async #need(key: string): Promise<IssueFile> {
    const issue = await this.#read(key);
    if (!issue) throw Object.assign(new Error(`No issue ${key} in ${this.#dir}`), { status: 404 });
    return issue;
  }

  async #write(issue: IssueFile): Promise<void> {
    const tmp = `${this.#path(issue.key)}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(issue, null, 2) + "\n");
    await Deno.rename(tmp, this.#path(issue.key));
  }
}

/** The author of comments the agent itself wrote into an issue file. */
const OWN_AUTHOR = "agent";

/** An issue file in Jira's REST shape. */
function viewOf(issue: IssueFile): IssueView {
  return {
    id: issue.key.replace(/^.*-/, ""),
    key: issue.key,
    fields: {
      summary: issue.summary,
      description: issue.description,
      project: { key: issue.project },
      issuetype: { name: issue.issueType },
      labels: issue.labels,
      status: { name: issue.status ?? "Open" },
      ...(issue.priority ? { priority: { name: issue.priority } } : {}),
      ...(issue.reporter ? { reporter: issue.reporter } : {}),
      created: issue.created ?? null,
      attachment: issue.attachments,
    },
  };
}

function text(doc: AdfDoc): string {
  return adfToWiki(doc) || adfText(doc);
}
