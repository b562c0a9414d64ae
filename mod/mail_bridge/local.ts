/**
 * The embedded defaults (no Microsoft 365, no Jira configured): a folder of `.eml` files
 * as the mailbox (parsed with mailparser), issues as JSON files, replies as `.eml` files
 * in an outbox. The same bridge runs on them; the demo uses them.
 */
import { type ParsedMail, simpleParser } from "mailparser";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { basename, join } from "node:path";
import type { AttachmentInfo, ChangePage, Mailbox, MailMessage } from "../graph/types.ts";
import { adfText } from "../jira/adf.ts";
import { adfToWiki } from "../jira/wiki.ts";
import type { AttachmentUpload, IssueDraft, Tracker, UserRef } from "../jira/types.ts";
import type { AdfDoc } from "../jira/adf.ts";
import type { Store } from "../store/store.ts";

type Parsed = ParsedMail;

/** A folder of .eml files (every file is one message; its name is its id). */
export class DirMailbox implements Mailbox {
  readonly address = "local";
  readonly #dir: string;
  readonly #store: Store;
  readonly #outbox: string;

  constructor(dir: string, options: { store: Store; outbox: string }) {
    this.#dir = dir;
    this.#store = options.store;
    this.#outbox = options.outbox;
  }

  async *changes(): AsyncIterable<ChangePage> {
    // A folder has no change feed: every pass lists it, and the ledger skips what is done.
    const messages = await Promise.all((await this.#files()).map((f) => this.get(f)));
    yield { messages, resume: "all", last: true };
  }

  async *receivedSince(_folder: string, since: Date): AsyncIterable<MailMessage[]> {
    const messages = await Promise.all((await this.#files()).map((f) => this.get(f)));
    yield messages.filter((m) => Date.parse(m.receivedDateTime) >= since.getTime());
  }

  async get(id: string): Promise<MailMessage> {
    const parsed = await this.#parse(id);
    const address = (list: Parsed["to"]) =>
      (Array.isArray(list) ? list : list ? [list] : []).flatMap((a) => a.value)
        .map((a) => ({ name: a.name ?? "", address: (a.address ?? "").toLowerCase() }));
    const from = address(parsed.from)[0] ?? { name: "", address: "" };
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
    options: { html: string; headers: Record<string, string> },
  ): Promise<void> {
    const original = await this.get(messageId);
    const transport = nodemailer.createTransport({
      streamTransport: true,
      buffer: true,
      newline: "windows",
    });
    const info = await transport.sendMail({
      from: "mail-bridge@localhost",
      to: original.from.address,
      subject: `RE: ${original.subject}`,
      inReplyTo: original.internetMessageId,
      references: [original.internetMessageId],
      html: options.html,
      headers: options.headers,
    });
    await Deno.mkdir(this.#outbox, { recursive: true });
    const name = `${basename(messageId, ".eml")}-reply.eml`;
    await Deno.writeFile(join(this.#outbox, name), info.message as unknown as Uint8Array);
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

  async #parse(id: string): Promise<Parsed> {
    if (id.includes("/") || id.includes("\\")) throw new Error(`"${id}" is not a mail file name`);
    try {
      return await simpleParser(Buffer.from(await Deno.readFile(join(this.#dir, id))));
    } catch (error) {
      throw new Error(`Cannot read the mail file "${id}": ${(error as Error).message}`, {
        cause: error,
      });
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
  comments: { id: string; body: string; properties: Record<string, unknown> }[];
  attachments: { filename: string; size: number }[];
  watchers: string[];
  links: string[];
}

/** Issues as JSON files (`MAIL-1.json`), attachments beside them; text as wiki markup. */
export class FileTracker implements Tracker {
  readonly deployment = "local" as const;
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  browseUrl(key: string): string {
    return `file://${
      join(Deno.cwd(), this.#dir, `${key}.json`).replace(/^file:\/\/\/+/, "file:///")
    }`;
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
    issue.comments.push({ id, body: text(body), properties: { [property.key]: property.value } });
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

function text(doc: AdfDoc): string {
  return adfToWiki(doc) || adfText(doc);
}
