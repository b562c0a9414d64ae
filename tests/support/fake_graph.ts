/**
 * A fake Microsoft 365 tenant over HTTPS, from the documented shapes: the Entra ID token
 * endpoint (client credentials) and the Graph mail API the bridge uses - delta queries
 * with nextLink/deltaLink and `Prefer: odata.maxpagesize`, messages with
 * internetMessageHeaders and uniqueBody, attachments and their `$value`, PATCH
 * categories, move, createReply (x- headers only, extended properties) and send into Sent
 * Items, a receivedDateTime filter and an extended-property filter. It counts requests in flight
 * per mailbox and answers 429 (MailboxConcurrency) above 4, like Graph. Fault injection
 * comes from HttpsFake; `expireDeltaTokens()` makes stored delta links answer 410.
 */
import { HttpsFake } from "./https_fake.ts";

export interface FakeAttachment {
  id: string;
  name: string;
  contentType: string;
  isInline: boolean;
  contentId?: string;
  /** Content, or a size to generate (large attachments are streamed, never held). */
  content?: Uint8Array<ArrayBuffer>;
  size: number;
}

export interface FakeMessage {
  id: string;
  internetMessageId: string;
  conversationId: string;
  subject: string;
  from: { name: string; address: string };
  /** The Sender, when it is not the From. */
  sender?: string;
  to: string[];
  cc: string[];
  receivedDateTime: string;
  importance: "low" | "normal" | "high";
  body: { contentType: "html" | "text"; content: string };
  uniqueBody?: { contentType: "html" | "text"; content: string };
  headers: Record<string, string>;
  attachments: FakeAttachment[];
  categories: string[];
  folder: string;
  /** Bumped on every change (delta). */
  changeSeq: number;
  /** The size Graph reports, when a test wants one larger than the content. */
  sizeOverride?: number;
  /** Single-value extended properties (the bridge's marker on what it sends). */
  extended?: { id: string; value: string }[];
  /** For replies the bridge wrote: the Message-ID it answers. */
  inReplyTo?: string;
}

export interface SentReply {
  /** The Message-ID it answers ("" for a new message). */
  messageId: string;
  body: string;
  headers: { name: string; value: string }[];
  to?: string[];
  cc?: string[];
  subject?: string;
  attachments?: { name: string; contentId?: string | undefined; bytes: number }[];
  /** The bridge's marker (single-value extended property). */
  marker?: string | undefined;
}

export interface NewMail {
  from: string;
  /** Sent by this address on behalf of `from` (the Sender header). */
  sender?: string;
  fromName?: string;
  subject: string;
  html?: string;
  text?: string;
  uniqueHtml?: string;
  to?: string[];
  cc?: string[];
  headers?: Record<string, string>;
  inReplyTo?: string;
  references?: string[];
  conversationId?: string;
  importance?: "low" | "normal" | "high";
  attachments?: Omit<FakeAttachment, "id">[];
  folder?: string;
  receivedDateTime?: string;
}

const GRAPH = "/v1.0/users/:mailbox";
const CONCURRENCY_LIMIT = 4;

export class FakeGraph extends HttpsFake {
  readonly tenantId = "11111111-2222-3333-4444-555555555555";
  readonly clientId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
  readonly clientSecret = "graph-secret-" + crypto.randomUUID().slice(0, 8);
  readonly mailbox = "helpdesk@example.com";
  readonly messages = new Map<string, FakeMessage>();
  readonly replies: SentReply[] = [];
  readonly tokensIssued: string[] = [];
  /** The most requests seen in flight at once for the mailbox. */
  maxInFlight = 0;
  /** Whether requests over 4 at once are refused with 429 (Graph does). */
  enforceConcurrency = true;
  #inFlight = 0;
  #seq = 0;
  #nextId = 1;
  #deltaEpoch = 1;
  #validTokens = new Set<string>();
  readonly #deviceCodes = new Map<string, { polls: number; scope: string }>();
  readonly #refreshTokens = new Set<string>();
  /** The signed-in user of the device code flow. */
  readonly user = { oid: "00000000-0000-0000-0000-0000000000aa", upn: "helpdesk@example.com" };
  /** Polls answered authorization_pending before the user "signs in". */
  pendingPolls = 1;
  /** Every refresh token issued so far stops working (inactivity, revocation). */
  expireRefreshTokens(): void {
    this.#refreshTokens.clear();
  }

  constructor() {
    super();
    this.route("POST", "/:tenant/oauth2/v2.0/token", (_req, p, body) => {
      const form = new URLSearchParams(body);
      if (p.tenant !== this.tenantId) {
        return Response.json({
          error: "invalid_tenant",
          error_description: `AADSTS90002: Tenant '${p.tenant}' not found.`,
        }, { status: 400 });
      }
      const grant = form.get("grant_type");
      // MSAL says "device_code" (the RFC 8628 name is the URN); both are taken.
      if (
        grant === "device_code" || grant === "urn:ietf:params:oauth:grant-type:device_code" ||
        grant === "refresh_token"
      ) {
        return this.#delegatedToken(form);
      }
      if (
        form.get("client_id") !== this.clientId || form.get("client_secret") !== this.clientSecret
      ) {
        return Response.json({
          error: "invalid_client",
          error_description: "AADSTS7000215: Invalid client secret provided.",
        }, { status: 401 });
      }
      if (form.get("grant_type") !== "client_credentials") {
        return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
      }
      const token = "eyJ0eXAi." + crypto.randomUUID().replaceAll("-", "") + ".sig";
      this.tokensIssued.push(token);
      this.#validTokens.add(token);
      return {
        token_type: "Bearer",
        expires_in: 3599,
        ext_expires_in: 3599,
        access_token: token,
      };
    });
    // The device code flow (public client): a code for the user, then the polls.
    this.route("POST", "/:tenant/oauth2/v2.0/devicecode", (_req, p, body) => {
      const form = new URLSearchParams(body);
      if (p.tenant !== this.tenantId || form.get("client_id") !== this.clientId) {
        return Response.json({
          error: "invalid_client",
          error_description: "AADSTS700016: Application not found in the directory.",
        }, { status: 400 });
      }
      const deviceCode = `device-${crypto.randomUUID()}`;
      this.#deviceCodes.set(deviceCode, { polls: 0, scope: form.get("scope") ?? "" });
      return {
        device_code: deviceCode,
        user_code: "ABCD-1234",
        verification_uri: "https://microsoft.com/devicelogin",
        expires_in: 900,
        interval: 1,
        message:
          "To sign in, use a web browser to open the page https://microsoft.com/devicelogin " +
          "and enter the code ABCD-1234 to authenticate.",
      };
    });
    this.route("GET", `${GRAPH}/mailFolders/:folder/messages/delta`, (req) => this.#delta(req));
    this.route(
      "GET",
      `${GRAPH}/mailFolders/:folder/messages`,
      (req, p) => this.#list(req, p.folder!),
    );
    this.route("GET", `${GRAPH}/messages/:id`, (req, p) => {
      const m = this.messages.get(p.id!);
      if (!m) return notFound(p.id!);
      const expand = new URL(req.url).searchParams.get("$expand") ?? "";
      return this.#json(
        m,
        /singleValueExtendedProperties\(\$filter=id eq 'Integer 0x0E08'\)/i.test(expand),
      );
    });
    this.route("PATCH", `${GRAPH}/messages/:id`, (_req, p, body) => {
      const m = this.messages.get(p.id!);
      if (!m) return notFound(p.id!);
      const patch = JSON.parse(body);
      if (Array.isArray(patch.categories)) m.categories = patch.categories;
      m.changeSeq = ++this.#seq;
      return this.#json(m);
    });
    this.route("POST", `${GRAPH}/messages/:id/move`, (_req, p, body) => {
      const m = this.messages.get(p.id!);
      if (!m) return notFound(p.id!);
      m.folder = String(JSON.parse(body).destinationId).toLowerCase();
      m.changeSeq = ++this.#seq;
      return this.#json(m);
    });
    for (const action of ["createReply", "createReplyAll"] as const) {
      this.route("POST", `${GRAPH}/messages/:id/${action}`, (_req, p, body) => {
        const m = this.messages.get(p.id!);
        if (!m) return notFound(p.id!);
        const message = JSON.parse(body || "{}").message ?? {};
        const bad = badHeader(message);
        if (bad) return bad;
        const everyone = [...m.to, ...m.cc].filter((a) => a.toLowerCase() !== this.mailbox);
        return this.#draft({
          ...m,
          subject: `RE: ${m.subject}`,
          to: [m.from.address],
          cc: action === "createReplyAll" ? everyone : [],
          inReplyTo: m.internetMessageId,
        }, message);
      });
    }
    // A new message (a draft in Drafts), as POST /messages makes one.
    this.route("POST", `${GRAPH}/messages`, (_req, _p, body) => {
      const message = JSON.parse(body || "{}");
      const bad = badHeader(message);
      if (bad) return bad;
      const addresses = (list?: { emailAddress: { address: string } }[]) =>
        (list ?? []).map((r) => r.emailAddress.address);
      return this.#draft({
        conversationId: `conv-${crypto.randomUUID()}`,
        subject: String(message.subject ?? ""),
        to: addresses(message.toRecipients),
        cc: addresses(message.ccRecipients),
        receivedDateTime: new Date().toISOString(),
        importance: "normal",
        hasAttachments: false,
      } as unknown as FakeMessage, message);
    });
    // An attachment added to a draft (inline ones carry a contentId).
    this.route("POST", `${GRAPH}/messages/:id/attachments`, (_req, p, body) => {
      const m = this.messages.get(p.id!);
      if (!m || m.folder !== "drafts") return notFound(p.id!);
      const a = JSON.parse(body);
      if (a["@odata.type"] !== "#microsoft.graph.fileAttachment" || !a.contentBytes) {
        return Response.json({
          error: { code: "ErrorInvalidRequest", message: "a fileAttachment with contentBytes" },
        }, { status: 400 });
      }
      const content = Uint8Array.from(atob(a.contentBytes), (c) => c.charCodeAt(0));
      const attachment: FakeAttachment = {
        id: `${m.id}-att${m.attachments.length}`,
        name: a.name,
        contentType: a.contentType,
        isInline: a.isInline === true,
        ...(a.contentId ? { contentId: a.contentId } : {}),
        content,
        size: content.length,
      };
      m.attachments.push(attachment);
      return Response.json({ id: attachment.id, name: a.name }, { status: 201 });
    });
    this.route("POST", `${GRAPH}/messages/:id/send`, (_req, p) => {
      const m = this.messages.get(p.id!);
      if (!m || m.folder !== "drafts") return notFound(p.id!);
      m.folder = "sentitems";
      m.changeSeq = ++this.#seq;
      this.replies.push({
        messageId: m.inReplyTo ?? "",
        body: m.body.content,
        headers: Object.entries(m.headers).map(([name, value]) => ({ name, value })),
        to: m.to,
        cc: m.cc,
        subject: m.subject,
        attachments: m.attachments.map((a) => ({
          name: a.name,
          contentId: a.contentId,
          bytes: a.content?.length ?? a.size,
        })),
        marker: m.extended?.[0]?.value,
      });
      return new Response(null, { status: 202 });
    });
    this.route("GET", `${GRAPH}/messages/:id/attachments`, (req, p) => {
      const m = this.messages.get(p.id!);
      if (!m) return notFound(p.id!);
      // Like Graph: $select names attachment properties; contentId belongs to fileAttachment
      // and is a 400 unless cast (microsoft.graph.fileAttachment/contentId).
      const select = (new URL(req.url).searchParams.get("$select") ?? "").split(",")
        .filter(Boolean);
      const known = ["id", "name", "contentType", "size", "isInline", "lastModifiedDateTime"];
      const bad = select.find((f) =>
        !known.includes(f) && f !== "microsoft.graph.fileAttachment/contentId"
      );
      if (bad) {
        return Response.json({
          error: {
            code: "RequestBroker--ParseUri",
            message:
              `Could not find a property named '${bad}' on type 'microsoft.graph.attachment'.`,
          },
        }, { status: 400 });
      }
      const cast = !select.length || select.includes("microsoft.graph.fileAttachment/contentId");
      return {
        value: m.attachments.map((a) => ({
          "@odata.type": "#microsoft.graph.fileAttachment",
          id: a.id,
          name: a.name,
          contentType: a.contentType,
          size: a.size,
          isInline: a.isInline,
          ...(cast ? { contentId: a.contentId ?? null } : {}),
        })),
      };
    });
    this.route("GET", `${GRAPH}/messages/:id/attachments/:aid/$value`, (_req, p) => {
      const a = this.messages.get(p.id!)?.attachments.find((x) => x.id === p.aid);
      if (!a) return notFound(p.aid!);
      return new Response(a.content ?? generated(a.size), {
        headers: { "content-type": a.contentType },
      });
    });
  }

  /** The token endpoint for the device code and refresh token grants. */
  #delegatedToken(form: URLSearchParams): Response {
    if (form.get("client_id") !== this.clientId) {
      return Response.json({ error: "invalid_client" }, { status: 400 });
    }
    if (form.get("client_secret")) {
      return Response.json({
        error: "invalid_request",
        error_description: "AADSTS90023: Public clients can't send a client secret.",
      }, { status: 400 });
    }
    let scope: string;
    if (form.get("grant_type") === "refresh_token") {
      const refresh = form.get("refresh_token") ?? "";
      if (!this.#refreshTokens.has(refresh)) {
        return Response.json({
          error: "invalid_grant",
          error_description: "AADSTS700082: The refresh token has expired due to inactivity.",
          error_codes: [700082],
          suberror: "bad_token",
        }, { status: 400 });
      }
      scope = form.get("scope") ?? "";
    } else {
      const code = this.#deviceCodes.get(form.get("device_code") ?? "");
      if (!code) return Response.json({ error: "expired_token" }, { status: 400 });
      if (code.polls++ < this.pendingPolls) {
        return Response.json({
          error: "authorization_pending",
          error_description: "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",
        }, { status: 400 });
      }
      scope = code.scope;
    }
    const token = "eyJ0eXAi." + crypto.randomUUID().replaceAll("-", "") + ".sig";
    this.tokensIssued.push(token);
    this.#validTokens.add(token);
    const refresh = `refresh-${crypto.randomUUID()}`;
    this.#refreshTokens.add(refresh);
    const b64 = (v: unknown) =>
      btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const now = Math.floor(Date.now() / 1000);
    const idToken = `${b64({ typ: "JWT", alg: "none" })}.${
      b64({
        aud: this.clientId,
        iss: `${this.url}/${this.tenantId}/v2.0`,
        iat: now,
        nbf: now,
        exp: now + 3600,
        oid: this.user.oid,
        sub: "subject-aa",
        tid: this.tenantId,
        preferred_username: this.user.upn,
        name: "Helpdesk",
        ver: "2.0",
      })
    }.sig`;
    return Response.json({
      token_type: "Bearer",
      scope: scope.split(" ").filter((x) =>
        x !== "offline_access" && x !== "openid" && x !== "profile"
      )
        .join(" "),
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: token,
      refresh_token: refresh,
      id_token: idToken,
      client_info: b64({ uid: this.user.oid, utid: this.tenantId }),
    });
  }

  /** Stores a draft made from `base` and the request's `message` (body, headers, marker). */
  #draft(
    base: FakeMessage,
    message: {
      body?: { content?: string };
      internetMessageHeaders?: { name: string; value: string }[];
      singleValueExtendedProperties?: { id: string; value: string }[];
    },
  ): Response {
    const id = `AAMkDraft${String(this.#nextId++).padStart(6, "0")}=`;
    const draft: FakeMessage = {
      ...base,
      id,
      internetMessageId: `<${crypto.randomUUID()}@outlook.example.com>`,
      from: { name: "", address: this.mailbox },
      body: { contentType: "html", content: message.body?.content ?? "" },
      headers: Object.fromEntries(
        (message.internetMessageHeaders ?? []).map((h) => [h.name, h.value]),
      ),
      attachments: [],
      categories: [],
      folder: "drafts",
      changeSeq: ++this.#seq,
      extended: message.singleValueExtendedProperties ?? [],
    };
    this.messages.set(id, draft);
    return Response.json(this.#plain(draft), { status: 201 });
  }

  /** Delivers a mail to the mailbox; resolves to the stored message. */
  deliver(mail: NewMail): FakeMessage {
    const id = `AAMkAD${String(this.#nextId++).padStart(6, "0")}=`;
    const internetMessageId = `<${crypto.randomUUID()}@mail.example.com>`;
    const headers: Record<string, string> = { ...mail.headers };
    if (mail.inReplyTo) headers["In-Reply-To"] = mail.inReplyTo;
    if (mail.references) headers["References"] = mail.references.join(" ");
    headers["Message-ID"] = internetMessageId;
    const body = mail.html !== undefined
      ? { contentType: "html" as const, content: mail.html }
      : { contentType: "text" as const, content: mail.text ?? "" };
    const message: FakeMessage = {
      id,
      internetMessageId,
      conversationId: mail.conversationId ?? `conv-${crypto.randomUUID()}`,
      subject: mail.subject,
      from: { name: mail.fromName ?? "", address: mail.from },
      ...(mail.sender ? { sender: mail.sender } : {}),
      to: mail.to ?? [this.mailbox],
      cc: mail.cc ?? [],
      receivedDateTime: mail.receivedDateTime ??
        new Date(Date.now() + this.#nextId).toISOString().replace(/\.\d+Z$/, "Z"),
      importance: mail.importance ?? "normal",
      body,
      ...(mail.uniqueHtml !== undefined
        ? { uniqueBody: { contentType: "html" as const, content: mail.uniqueHtml } }
        : {}),
      headers,
      attachments: (mail.attachments ?? []).map((a, i) => ({ ...a, id: `${id}-att${i}` })),
      categories: [],
      folder: (mail.folder ?? "inbox").toLowerCase(),
      changeSeq: ++this.#seq,
    };
    this.messages.set(id, message);
    return message;
  }

  /** A reply to `original` in the same conversation. */
  replyTo(original: FakeMessage, mail: Omit<NewMail, "inReplyTo" | "conversationId">): FakeMessage {
    return this.deliver({
      ...mail,
      inReplyTo: original.internetMessageId,
      references: [
        ...(original.headers["References"]?.split(" ") ?? []),
        original.internetMessageId,
      ],
      conversationId: original.conversationId,
    });
  }

  /** Stored delta links stop working (Graph: 410 Gone, syncStateNotFound). */
  expireDeltaTokens(): void {
    this.#deltaEpoch++;
  }

  /** The request counter wraps every Graph answer (the token endpoint is Entra ID's). */
  protected override async handle(request: Request): Promise<Response> {
    const graph = new URL(request.url).pathname.startsWith("/v1.0/");
    if (!graph) return await super.handle(request);
    const auth = request.headers.get("authorization") ?? "";
    if (!this.#validTokens.has(auth.replace(/^Bearer /, ""))) {
      return Response.json({
        error: { code: "InvalidAuthenticationToken", message: "Access token is empty or invalid." },
      }, { status: 401 });
    }
    this.#inFlight++;
    try {
      this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
      if (this.enforceConcurrency && this.#inFlight > CONCURRENCY_LIMIT) {
        return Response.json({
          error: { code: "ApplicationThrottled", message: "MailboxConcurrency limit exceeded" },
        }, { status: 429, headers: { "retry-after": "1" } });
      }
      return await super.handle(request);
    } finally {
      this.#inFlight--;
    }
  }

  /** Every issued token stops working (the next request gets 401). */
  revokeTokens(): void {
    this.#validTokens.clear();
  }

  #delta(req: Request): Response {
    const url = new URL(req.url);
    const folder = decodeURIComponent(url.pathname.split("/mailFolders/")[1]!.split("/")[0]!)
      .toLowerCase();
    const pageSize = Number(
      /odata\.maxpagesize=(\d+)/.exec(req.headers.get("prefer") ?? "")?.[1] ?? 10,
    );
    const deltaToken = url.searchParams.get("$deltatoken");
    const skipToken = url.searchParams.get("$skiptoken");
    // Tokens: "<epoch>.<since>" (delta) and "<epoch>.<since>.<until>.<after>" (next page):
    // changes after `since` up to the snapshot `until`, continuing after change `after`.
    let since = 0;
    let until = this.#seq;
    let after = 0;
    const token = deltaToken ?? skipToken;
    if (token) {
      const [epoch, a, b, c] = token.split(".").map(Number);
      if (epoch !== this.#deltaEpoch) {
        return Response.json({
          error: { code: "SyncStateNotFound", message: "The sync state generation is not found." },
        }, { status: 410 });
      }
      if (deltaToken) since = a!;
      else (since = a!, until = b!, after = c!);
    }
    const changed = [...this.messages.values()]
      .filter((m) =>
        m.folder === folder && m.changeSeq > Math.max(since, after) && m.changeSeq <= until
      )
      .sort((x, y) => x.changeSeq - y.changeSeq);
    const page = changed.slice(0, pageSize);
    const base = `${url.origin}${url.pathname}`;
    const more = changed.length > pageSize;
    const last = page[page.length - 1]?.changeSeq ?? after;
    return Response.json({
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
      value: page.map((m) => ({
        "@odata.type": "#microsoft.graph.message",
        id: m.id,
        internetMessageId: m.internetMessageId,
        receivedDateTime: m.receivedDateTime,
      })),
      ...(more
        ? { "@odata.nextLink": `${base}?$skiptoken=${this.#deltaEpoch}.${since}.${until}.${last}` }
        : { "@odata.deltaLink": `${base}?$deltatoken=${this.#deltaEpoch}.${until}` }),
    });
  }

  #list(req: Request, folder: string): Response {
    const url = new URL(req.url);
    const filter = url.searchParams.get("$filter") ?? "";
    const property =
      /^singleValueExtendedProperties\/Any\(ep: ep\/id eq '([^']+)' and ep\/value eq '((?:[^']|'')*)'\)$/
        .exec(filter);
    if (filter.startsWith("singleValueExtendedProperties") && !property) {
      return Response.json({ error: { code: "BadRequest", message: "Invalid filter clause" } }, {
        status: 400,
      });
    }
    if (property) {
      const [, id, value] = property;
      const hits = [...this.messages.values()].filter((m) =>
        m.folder === folder.toLowerCase() &&
        (m.extended ?? []).some((e) =>
          e.id.toLowerCase() === id!.toLowerCase() && e.value === value!.replaceAll("''", "'")
        )
      );
      return Response.json({ value: hits.map((m) => ({ id: m.id })) });
    }
    const since = /receivedDateTime ge (\S+)/.exec(filter)?.[1];
    const top = Number(url.searchParams.get("$top") ?? 10);
    const skip = Number(url.searchParams.get("$skip") ?? 0);
    const all = [...this.messages.values()]
      .filter((m) => m.folder === folder.toLowerCase() && (!since || m.receivedDateTime >= since))
      .sort((a, b) => a.receivedDateTime.localeCompare(b.receivedDateTime));
    const page = all.slice(skip, skip + top);
    const next = skip + top < all.length
      ? `${url.origin}${url.pathname}?${new URLSearchParams({
        ...Object.fromEntries(url.searchParams),
        $skip: String(skip + top),
      })}`
      : undefined;
    return Response.json({
      value: page.map((m) => ({ id: m.id })),
      ...(next ? { "@odata.nextLink": next } : {}),
    });
  }

  /** What Graph's PR_MESSAGE_SIZE would say: headers, body and attachments. */
  sizeOf(m: FakeMessage): number {
    return m.sizeOverride ?? (JSON.stringify(m.headers).length + m.body.content.length +
      m.attachments.reduce((n, a) => n + a.size, 0));
  }

  #plain(m: FakeMessage): Record<string, unknown> {
    return { id: m.id, subject: m.subject, internetMessageId: m.internetMessageId };
  }

  #json(m: FakeMessage, withSize = false): Response {
    const address = (a: string, name = "") => ({ emailAddress: { name, address: a } });
    return Response.json({
      "@odata.type": "#microsoft.graph.message",
      id: m.id,
      internetMessageId: m.internetMessageId,
      conversationId: m.conversationId,
      subject: m.subject,
      from: address(m.from.address, m.from.name),
      sender: m.sender ? address(m.sender) : address(m.from.address, m.from.name),
      toRecipients: m.to.map((a) => address(a)),
      ccRecipients: m.cc.map((a) => address(a)),
      receivedDateTime: m.receivedDateTime,
      importance: m.importance,
      body: m.body,
      uniqueBody: m.uniqueBody ?? m.body,
      internetMessageHeaders: Object.entries(m.headers).map(([name, value]) => ({ name, value })),
      hasAttachments: m.attachments.some((a) => !a.isInline),
      categories: m.categories,
      isRead: false,
      ...(withSize
        ? {
          singleValueExtendedProperties: [{ id: "Integer 0xe08", value: String(this.sizeOf(m)) }],
        }
        : {}),
    });
  }
}

function notFound(id: string): Response {
  return Response.json({
    error: {
      code: "ErrorItemNotFound",
      message: `The specified object ${id} was not found in the store.`,
    },
  }, { status: 404 });
}

/** `size` bytes generated as they are read. */
function generated(size: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  let left = size;
  return new ReadableStream({
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(left, chunk.length);
      controller.enqueue(chunk.slice(0, n));
      left -= n;
    },
  });
}

/** The `[graph]` section for a fake tenant. */
export function graphSection(
  fake: FakeGraph,
  caCertFile: string,
  extra: Record<string, string> = {},
): string {
  const lines = {
    tenant_id: fake.tenantId,
    client_id: fake.clientId,
    client_secret: fake.clientSecret,
    authority_host: fake.url,
    graph_url: `${fake.url}/v1.0`,
    cafile: caCertFile,
    mailbox: fake.mailbox,
    ...extra,
  };
  return `[graph]\n${Object.entries(lines).map(([k, v]) => `${k} = ${v}`).join("\n")}\n`;
}

/** Graph takes only x- headers on a message (InvalidInternetMessageHeader otherwise). */
function badHeader(
  message: { internetMessageHeaders?: { name: string }[] },
): Response | undefined {
  const bad = (message.internetMessageHeaders ?? []).find((h) => !/^x-/i.test(h.name));
  if (!bad) return undefined;
  return Response.json({
    error: {
      code: "InvalidInternetMessageHeader",
      message: `The internet message header name '${bad.name}' should start with 'x-' or 'X-'.`,
    },
  }, { status: 400 });
}
