/**
 * The Microsoft Graph mailbox: delta queries per folder, messages with their internet
 * headers and unique body, attachments as streams, marking by category (and move), and
 * replies carrying the bridge's own header. Every request sends `Prefer:
 * IdType="ImmutableId"`; at most `max_concurrency` (Graph allows 4) are in flight per
 * mailbox; `429`/`503` pause the whole mailbox for `Retry-After`.
 */
import { tlsErrorFrom } from "../tls/errors.ts";
import { httpClientFor } from "../net/http.ts";
import type { GraphConfig } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { log } from "../log/log.ts";
import { backoffMs, retryAfterMs } from "../async/retry.ts";
import { abortableSleep } from "../async/delay.ts";
import type { TokenSource } from "./token.ts";
import {
  type Address,
  type AttachmentInfo,
  type ChangePage,
  type Mailbox,
  type MailMessage,
  type OutgoingAttachment,
  type OutgoingMail,
  SyncReset,
  unreadableMessage,
} from "./types.ts";
import { classify } from "../errors/classify.ts";

const logger = log("graph");
const MAX_ATTEMPTS = 8;
/** Throttling is Graph asking for patience, not failing: wait longer before giving up. */
const MAX_THROTTLED = 30;
const SELECT = [
  "id",
  "internetMessageId",
  "conversationId",
  "subject",
  "from",
  "sender",
  "toRecipients",
  "ccRecipients",
  "receivedDateTime",
  "importance",
  "body",
  "uniqueBody",
  "internetMessageHeaders",
  "hasAttachments",
  "categories",
].join(",");
/** The bridge's own named property on the mail it sends, to find it again after a crash. */
const MARKER_PROPERTY = "String {6f1c2a4e-5b7d-4c8e-9a3f-2d1e0b9c8a7f} Name AgentMailBridge";
/** The message's size (PR_MESSAGE_SIZE; Graph has no size property of its own). */
const EXPAND_SIZE = "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')";
/** Delta pages carry only what says which messages changed; each is then read whole. */
const DELTA_SELECT = "id,internetMessageId,receivedDateTime";

/** Counters for /metrics. */
export interface GraphStats {
  requests: number;
  throttled: number;
  throttleWaitMs: number;
  /** Time requests spent in flight, summed (busy / wall time = slots in use on average). */
  busyMs: number;
  /** Set while requests fail and are being retried (health), cleared by a success. */
  failing?: string | undefined;
}

/** An error answer from Graph, with its status and Graph's error code. */
export class GraphError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "GraphError";
  }
}

export class GraphMailbox implements Mailbox {
  readonly address: string;
  readonly ownAddresses: readonly string[];
  readonly stats: GraphStats = {
    requests: 0,
    throttled: 0,
    throttleWaitMs: 0,
    busyMs: 0,
    failing: undefined,
  };
  readonly #config: GraphConfig;
  readonly #tokens: TokenSource;
  readonly #client: Deno.HttpClient | undefined;
  readonly #sleep: typeof abortableSleep;
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];
  #pausedUntil = 0;

  private constructor(
    config: GraphConfig,
    tokens: TokenSource,
    client: Deno.HttpClient | undefined,
    sleep: typeof abortableSleep,
  ) {
    this.address = config.mailbox;
    this.ownAddresses = [config.mailbox.toLowerCase()];
    this.#config = config;
    this.#tokens = tokens;
    this.#client = client;
    this.#sleep = sleep;
  }

  static async fromConfig(
    config: GraphConfig,
    tokens: TokenSource,
    options: { sleep?: typeof abortableSleep } = {},
  ): Promise<GraphMailbox> {
    const caCerts = await caCertsFor(config.tls, "[graph] cafile");
    const client = httpClientFor(config.graphUrl, { caCerts, proxy: config.proxy });
    return new GraphMailbox(config, tokens, client, options.sleep ?? abortableSleep);
  }

  get #base(): string {
    return `${this.#config.graphUrl}/users/${encodeURIComponent(this.#config.mailbox)}`;
  }

  async *changes(
    folder: string,
    resume: string | undefined,
    signal?: AbortSignal,
  ): AsyncIterable<ChangePage> {
    let url = resume ??
      `${this.#base}/mailFolders/${
        encodeURIComponent(folder)
      }/messages/delta?$select=${DELTA_SELECT}`;
    for (;;) {
      let page: Record<string, unknown>;
      try {
        page = await this.#json("GET", url, { signal, pageSize: this.#config.pageSize });
      } catch (error) {
        if (
          resume && error instanceof GraphError &&
          (error.status === 410 || /syncStateNotFound|resyncRequired/i.test(error.code ?? ""))
        ) {
          throw new SyncReset(`The delta position for folder "${folder}" expired`, {
            cause: error,
          });
        }
        throw error;
      }
      const items = (page.value as Record<string, unknown>[] | undefined) ?? [];
      // Read at once: the concurrency limit keeps it to max_concurrency in flight.
      const messages = await this.#readEach(
        items.filter((item) => !item["@removed"]).map((item) => String(item.id)),
        signal,
      );
      const next = page["@odata.nextLink"] as string | undefined;
      const delta = page["@odata.deltaLink"] as string | undefined;
      if (!next && !delta) {
        throw new GraphError(
          `Graph's delta page for "${folder}" has neither nextLink nor deltaLink`,
          502,
        );
      }
      yield { messages, resume: (next ?? delta)!, last: !next };
      if (!next) return;
      url = next;
    }
  }

  async *receivedSince(
    folder: string,
    since: Date,
    signal?: AbortSignal,
  ): AsyncIterable<MailMessage[]> {
    const filter = encodeURIComponent(`receivedDateTime ge ${since.toISOString()}`);
    let url: string | undefined = `${this.#base}/mailFolders/${encodeURIComponent(folder)}` +
      `/messages?$select=id&$filter=${filter}&$orderby=receivedDateTime&$top=${this.#config.pageSize}`;
    while (url) {
      const page: Record<string, unknown> = await this.#json("GET", url, { signal });
      const ids = ((page.value as { id: string }[] | undefined) ?? []).map((m) => m.id);
      yield await this.#readEach(ids, signal);
      url = page["@odata.nextLink"] as string | undefined;
    }
  }

  async get(id: string, signal?: AbortSignal): Promise<MailMessage> {
    const raw = await this.#json<Record<string, unknown>>(
      "GET",
      `${this.#base}/messages/${encodeURIComponent(id)}?$select=${SELECT}&$expand=${EXPAND_SIZE}`,
      { signal },
    );
    return toMessage(raw);
  }

  /**
   * Messages by id. One that is gone (deleted or moved since the delta) is left out; one that
   * Graph refuses for good stands as unreadable, so that it fails alone; a failure that will
   * pass fails the page (it is read again).
   */
  async #readEach(ids: string[], signal?: AbortSignal): Promise<MailMessage[]> {
    const read = await Promise.all(ids.map((id) =>
      this.get(id, signal).catch((error) => {
        if (classify(error).transient || signal?.aborted) throw error;
        if (error instanceof GraphError && error.status === 404) return undefined;
        return unreadableMessage(id, (error as Error).message);
      })
    ));
    return read.filter((m): m is MailMessage => m !== undefined);
  }

  async attachments(messageId: string, signal?: AbortSignal): Promise<AttachmentInfo[]> {
    const out: AttachmentInfo[] = [];
    let url: string | undefined = `${this.#base}/messages/${encodeURIComponent(messageId)}` +
      // contentId is a fileAttachment property: $select takes it only cast to that type.
      `/attachments?$select=id,name,contentType,size,isInline,microsoft.graph.fileAttachment/contentId`;
    while (url) {
      const page: Record<string, unknown> = await this.#json("GET", url, { signal });
      for (const a of (page.value as Record<string, unknown>[] | undefined) ?? []) {
        // Item and reference attachments have no $value; only files are uploaded.
        if (a["@odata.type"] && a["@odata.type"] !== "#microsoft.graph.fileAttachment") continue;
        out.push({
          id: String(a.id),
          name: String(a.name ?? "attachment"),
          contentType: String(a.contentType ?? "application/octet-stream"),
          size: Number(a.size ?? 0),
          isInline: a.isInline === true,
          contentId: typeof a.contentId === "string" ? a.contentId : undefined,
        });
      }
      url = page["@odata.nextLink"] as string | undefined;
    }
    return out;
  }

  async attachmentContent(
    messageId: string,
    attachmentId: string,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const url = `${this.#base}/messages/${encodeURIComponent(messageId)}/attachments/` +
      `${encodeURIComponent(attachmentId)}/$value`;
    // The slot is held until the body is read: a stream counts as a request in flight.
    const { response, release } = await this.#send("GET", url, { signal, keepSlot: true });
    if (!response.body) {
      release();
      return new ReadableStream({ start: (c) => c.close() });
    }
    return response.body.pipeThrough(
      new TransformStream({ flush: release }),
      signal ? { signal } : {},
    );
  }

  async mark(
    messageId: string,
    options: { category: string; categories?: string[]; moveTo?: string | undefined },
    signal?: AbortSignal,
  ): Promise<void> {
    const url = `${this.#base}/messages/${encodeURIComponent(messageId)}`;
    const current = options.categories ?? (await this.#json<{ categories?: string[] }>(
      "GET",
      `${url}?$select=categories`,
      { signal },
    )).categories ?? [];
    const categories = [...new Set([...current, options.category])];
    await this.#json("PATCH", url, { signal, body: { categories } });
    if (options.moveTo) {
      await this.#json("POST", `${url}/move`, { signal, body: { destinationId: options.moveTo } });
    }
  }

  /**
   * createReply with the body, headers and the marker (a single-value extended property),
   * then send: the draft exists, marked, before it is sent, so `sentWith` can tell.
   */
  async reply(
    messageId: string,
    options: OutgoingMail & { replyAll?: boolean | undefined },
    signal?: AbortSignal,
  ): Promise<void> {
    const action = options.replyAll ? "createReplyAll" : "createReply";
    const draft = await this.#json<{ id?: string }>(
      "POST",
      `${this.#base}/messages/${encodeURIComponent(messageId)}/${action}`,
      { signal, body: { message: outgoing(options) } },
    );
    if (!draft.id) throw new GraphError(`Graph's ${action} answered without a draft id`, 502);
    await this.#attachAndSend(draft.id, options.attachments ?? [], signal);
  }

  async send(
    options: OutgoingMail & { to: string[]; cc?: string[] | undefined; subject: string },
    signal?: AbortSignal,
  ): Promise<void> {
    const recipients = (list: string[]) => list.map((address) => ({ emailAddress: { address } }));
    const draft = await this.#json<{ id?: string }>("POST", `${this.#base}/messages`, {
      signal,
      body: {
        ...outgoing(options),
        subject: options.subject,
        toRecipients: recipients(options.to),
        ccRecipients: recipients(options.cc ?? []),
      },
    });
    if (!draft.id) throw new GraphError("Graph made no draft for a new message", 502);
    await this.#attachAndSend(draft.id, options.attachments ?? [], signal);
  }

  /** Adds the files to a draft (Graph takes up to 3 MB each this way), then sends it. */
  async #attachAndSend(
    draftId: string,
    attachments: OutgoingAttachment[],
    signal?: AbortSignal,
  ): Promise<void> {
    for (const a of attachments) {
      await this.#json(
        "POST",
        `${this.#base}/messages/${encodeURIComponent(draftId)}/attachments`,
        {
          signal,
          body: {
            "@odata.type": "#microsoft.graph.fileAttachment",
            name: a.name,
            contentType: a.contentType,
            contentBytes: encodeBase64(a.bytes),
            isInline: a.contentId !== undefined,
            ...(a.contentId ? { contentId: a.contentId } : {}),
          },
        },
      );
    }
    await this.#send_(draftId, signal);
  }

  async sentWith(marker: string, signal?: AbortSignal): Promise<boolean> {
    const filter = encodeURIComponent(
      `singleValueExtendedProperties/Any(ep: ep/id eq '${MARKER_PROPERTY}' and ep/value eq '${
        marker.replaceAll("'", "''")
      }')`,
    );
    const find = async (folder: string) =>
      ((await this.#json<{ value?: { id: string }[] }>(
        "GET",
        `${this.#base}/mailFolders/${folder}/messages?$filter=${filter}&$select=id&$top=1`,
        { signal },
      )).value ?? [])[0];
    if (await find("sentitems")) return true;
    const draft = await find("drafts");
    if (!draft) return false;
    await this.#send_(draft.id, signal);
    return true;
  }

  async #send_(draftId: string, signal?: AbortSignal): Promise<void> {
    await this.#json("POST", `${this.#base}/messages/${encodeURIComponent(draftId)}/send`, {
      signal,
    });
  }

  async probe(signal?: AbortSignal): Promise<void> {
    const folder = encodeURIComponent(this.#config.folders[0] ?? "Inbox");
    await this.#json("GET", `${this.#base}/mailFolders/${folder}/messages?$top=1&$select=id`, {
      signal,
    });
  }

  async #json<T = Record<string, unknown>>(
    method: string,
    url: string,
    options: { signal?: AbortSignal | undefined; body?: unknown; pageSize?: number },
  ): Promise<T> {
    const { response } = await this.#send(method, url, options);
    const text = await response.text();
    if (!text) return {} as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new GraphError(
        `${method} ${redactUrl(url)}: Graph answered ${response.status} with a body that is not ` +
          `JSON: ${JSON.stringify(text.slice(0, 80))}`,
        502,
        undefined,
        { cause: error },
      );
    }
  }

  /** One request with the concurrency limit, the shared pause, 401 refresh and retries. */
  async #send(
    method: string,
    url: string,
    options: {
      signal?: AbortSignal | undefined;
      body?: unknown;
      pageSize?: number;
      keepSlot?: boolean;
    },
  ): Promise<{ response: Response; release: () => void }> {
    let forceToken = false;
    for (let attempt = 1;; attempt++) {
      await this.#acquire(options.signal);
      let released = false;
      const release = () => {
        if (!released) (released = true, this.#release());
      };
      let response: Response;
      try {
        await this.#waitForPause(options.signal);
        const token = await this.#tokens.token({ force: forceToken });
        const headers: Record<string, string> = {
          authorization: `Bearer ${token}`,
          prefer: `IdType="ImmutableId"` +
            (options.pageSize ? `, odata.maxpagesize=${options.pageSize}` : ""),
        };
        if (options.body !== undefined) headers["content-type"] = "application/json";
        const timeout = AbortSignal.timeout(this.#config.timeoutSeconds * 1000);
        this.stats.requests++;
        const sent = performance.now();
        response = await fetch(url, {
          method,
          headers,
          ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
          signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
          ...(this.#client ? { client: this.#client } : {}),
        });
        this.stats.busyMs += performance.now() - sent;
      } catch (error) {
        release();
        if (options.signal?.aborted || attempt >= MAX_ATTEMPTS || !worthRetrying(error)) {
          const tls = tlsErrorFrom(new URL(url).hostname, error);
          throw tls ?? wrap(method, url, error);
        }
        this.stats.failing = `Graph unreachable: ${(error as Error).message}`;
        logger.warning("Graph {method} failed ({error}); retrying", {
          method,
          error: (error as Error).message,
        });
        await this.#sleep(backoff(attempt), options.signal);
        continue;
      }
      if (response.ok) {
        this.stats.failing = undefined;
        if (!options.keepSlot) release();
        return { response, release };
      }
      const retryAfter = retryAfterMs(response.headers.get("retry-after"));
      const detail = await errorOf(response);
      release();
      if (response.status === 401 && !forceToken) {
        forceToken = true;
        continue;
      }
      const throttled = response.status === 429 || response.status === 503;
      const retry = throttled
        ? attempt < MAX_THROTTLED
        : (response.status === 502 || response.status === 504) && attempt < MAX_ATTEMPTS;
      if (retry) {
        const wait = retryAfter ?? backoff(attempt);
        if (throttled) {
          this.stats.throttled++;
          this.stats.throttleWaitMs += wait;
          this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + wait);
        }
        logger.info("Graph answered {status} to {method}; waiting {seconds} s", {
          status: response.status,
          method,
          seconds: Math.round(wait / 100) / 10,
        });
        if (!throttled) await this.#sleep(wait, options.signal);
        continue;
      }
      throw new GraphError(
        `${method} ${redactUrl(url)}: Graph answered ${response.status}` +
          (detail.code ? ` ${detail.code}` : "") + (detail.message ? `: ${detail.message}` : ""),
        response.status,
        detail.code,
      );
    }
  }

  async #waitForPause(signal?: AbortSignal): Promise<void> {
    const wait = this.#pausedUntil - Date.now();
    if (wait > 0) await this.#sleep(wait, signal);
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    if (this.#inFlight < this.#config.maxConcurrency) {
      this.#inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(grant);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(grant);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#inFlight--;
  }
}

function toMessage(raw: Record<string, unknown>): MailMessage {
  const headers: Record<string, string> = {};
  for (const h of (raw.internetMessageHeaders as { name: string; value: string }[]) ?? []) {
    headers[h.name.toLowerCase()] = h.value;
  }
  const body = raw.body as { contentType?: string; content?: string } | undefined;
  const unique = raw.uniqueBody as { contentType?: string; content?: string } | undefined;
  const importance = String(raw.importance ?? "normal").toLowerCase();
  return {
    id: String(raw.id),
    internetMessageId: String(raw.internetMessageId ?? ""),
    conversationId: String(raw.conversationId ?? ""),
    subject: String(raw.subject ?? ""),
    from: address(raw.from),
    fromAll: headerAddresses(headers["from"]),
    sender: raw.sender ? address(raw.sender) : undefined,
    to: ((raw.toRecipients as unknown[]) ?? []).map(address),
    cc: ((raw.ccRecipients as unknown[]) ?? []).map(address),
    receivedDateTime: String(raw.receivedDateTime ?? ""),
    importance: importance === "low" || importance === "high" ? importance : "normal",
    body: bodyOf(body),
    uniqueBody: unique?.content !== undefined ? bodyOf(unique) : undefined,
    headers,
    hasAttachments: raw.hasAttachments === true,
    categories: (raw.categories as string[] | undefined) ?? [],
    size: messageSize(raw),
  };
}

function messageSize(raw: Record<string, unknown>): number | undefined {
  const props = raw.singleValueExtendedProperties as { id?: string; value?: string }[] | undefined;
  const value = props?.find((p) => /^Integer 0x0?e08$/i.test(p.id ?? ""))?.value;
  const size = Number(value);
  return value !== undefined && Number.isFinite(size) ? size : undefined;
}

function bodyOf(body: { contentType?: string; content?: string } | undefined) {
  return {
    contentType: String(body?.contentType ?? "text").toLowerCase() === "html"
      ? "html" as const
      : "text" as const,
    content: String(body?.content ?? ""),
  };
}

/** The addresses in a raw From header (`Name <a@b>, c@d`). */
function headerAddresses(header: string | undefined): Address[] | undefined {
  if (!header) return undefined;
  const found = [...header.matchAll(/<([^<>\s]+@[^<>\s]+)>|([^\s<>,;"]+@[^\s<>,;"]+)/g)]
    .map((m) => ({ name: "", address: (m[1] ?? m[2] ?? "").toLowerCase() }));
  return found.length ? found : undefined;
}

function address(value: unknown): Address {
  const email = (value as { emailAddress?: { name?: string; address?: string } } | undefined)
    ?.emailAddress;
  return { name: email?.name ?? "", address: (email?.address ?? "").toLowerCase() };
}

async function errorOf(response: Response): Promise<{ code?: string; message?: string }> {
  const text = await response.text().catch(() => "");
  try {
    const error = JSON.parse(text).error ?? {};
    return { code: error.code, message: String(error.message ?? "").slice(0, 200) };
  } catch {
    return { message: text.slice(0, 200) };
  }
}

/** Retried at once: the network or a timeout (a certificate refused is the config's to fix). */
function worthRetrying(error: unknown): boolean {
  const verdict = classify(error);
  return verdict.transient && !verdict.credentials;
}

/** Jittered, so that several agents do not retry in step. */
function backoff(attempt: number): number {
  return backoffMs(attempt) * (0.75 + Math.random() / 2);
}

function wrap(method: string, url: string, error: unknown): Error {
  return new Error(`${method} ${redactUrl(url)} failed: ${(error as Error).message}`, {
    cause: error,
  });
}

/** Delta and skip tokens are long and mean nothing to a reader. */
function redactUrl(url: string): string {
  return url.replace(/(\$(delta|skip)token=)[^&]+/gi, "$1…").replace(/\?\$select=[^&]*/, "");
}

/** The parts of a message the bridge writes: body, its headers, its marker. */
function outgoing(options: OutgoingMail) {
  return {
    body: { contentType: "HTML", content: options.html },
    internetMessageHeaders: Object.entries({
      // Exchange: no out-of-office or other automatic answer to this mail.
      "X-Auto-Response-Suppress": "All",
      ...options.headers,
    }).map(([name, value]) => ({ name, value })),
    singleValueExtendedProperties: [{ id: MARKER_PROPERTY, value: options.marker }],
  };
}

function encodeBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
