/**
 * A fake Jira over HTTPS in either flavour, from the documented shapes: Cloud (REST v3,
 * ADF bodies, users by accountId, `/search/jql` with nextPageToken) or Server/DC (REST v2,
 * wiki text, users by name, `/search` with startAt, which cannot filter by or return entity
 * properties, as on a real Server/DC). Issues with entity properties (`?properties=` on GET),
 * comments with properties (`expand=properties`), multipart attachments (checked for
 * `X-Atlassian-Token: no-check`), `attachment/meta`, watchers, links, user search,
 * myself and projects. It validates what a real Jira rejects (an ADF description on v2,
 * a string on v3, ADF that Atlassian's published schema refuses, unknown projects, reporter
 * by the wrong kind of id). Fault injection
 * comes from HttpsFake.
 */
import { HttpsFake } from "./https_fake.ts";
import { adfProblem } from "./adf_schema.ts";

export interface FakeJiraUser {
  accountId: string;
  name: string;
  emailAddress: string;
  displayName: string;
}

export interface FakeIssue {
  id: string;
  key: string;
  fields: Record<string, unknown>;
  properties: Record<string, unknown>;
  comments: FakeComment[];
  attachments: {
    id: string;
    filename: string;
    size: number;
    mimeType: string;
    bytes?: Uint8Array;
  }[];
  watchers: string[];
  links: string[];
  created: string;
}

export interface FakeComment {
  id: string;
  body: unknown;
  properties: { key: string; value: unknown }[];
  /** Account id (Cloud) or name (Server/DC); the agent's own account when it wrote it. */
  author?: string;
  created?: string;
  visibility?: { type: "role" | "group"; value: string };
  /** The HTML Jira renders (expand=renderedBody); made from the body when not given. */
  html?: string;
}

export class FakeJira extends HttpsFake {
  readonly user = "bridge@example.com";
  readonly token = "jira-token-" + crypto.randomUUID().slice(0, 8);
  readonly issues = new Map<string, FakeIssue>();
  /** The account the agent uses (reporter of issues made without one). */
  readonly self: FakeJiraUser = {
    accountId: "557058:bridge",
    name: "bridge",
    emailAddress: "bridge@example.com",
    displayName: "Mail Bridge",
  };
  /** Every JQL query received. */
  readonly jqls: string[] = [];
  /** The account's time zone: JQL dates are read in it (as Jira does). */
  timeZone = "America/New_York";
  /** Files served under /secure/attachment/{id}/{name} (images in rendered comments). */
  readonly files = new Map<string, { bytes: Uint8Array<ArrayBuffer>; contentType: string }>();
  readonly users: FakeJiraUser[] = [
    {
      accountId: "557058:ann",
      name: "ann",
      emailAddress: "ann@example.com",
      displayName: "Ann Agent",
    },
    {
      accountId: "557058:bob",
      name: "bob",
      emailAddress: "bob@example.com",
      displayName: "Bob Builder",
    },
    {
      accountId: "557058:svc",
      name: "svc",
      emailAddress: "servicedesk@example.com",
      displayName: "Service Desk",
    },
  ];
  readonly projects = new Map<string, string[]>([
    ["SUP", ["Task", "Bug"]],
    ["OPS", ["Task"]],
  ]);
  uploadLimit = 10 * 1024 * 1024;
  /** Keep uploaded bytes (tests); benchmarks only count them. */
  keepAttachments = true;
  #ids = 10000;
  #numbers = new Map<string, number>();

  constructor(readonly deployment: "cloud" | "server" = "cloud") {
    super();
    const api = `/rest/api/${deployment === "cloud" ? 3 : 2}`;
    this.route(
      "POST",
      `${api}/issue`,
      (req, _p, body) => this.#guard(req) ?? this.#create(JSON.parse(body)),
    );
    this.route("GET", `${api}/issue/:key`, (req, p) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const issue = this.issues.get(p.key!);
      if (!issue) {
        return Response.json({
          errorMessages: ["Issue does not exist or you do not have permission to see it."],
          errors: {},
        }, { status: 404 });
      }
      const url = new URL(req.url);
      const wanted = (url.searchParams.get("properties") ?? "").split(",").filter(Boolean);
      const rendered = (url.searchParams.get("expand") ?? "").includes("renderedFields");
      return {
        id: issue.id,
        key: issue.key,
        fields: this.#fieldsOf(issue),
        ...(rendered ? { renderedFields: this.#renderedOf(issue) } : {}),
        ...(wanted.length
          ? {
            properties: Object.fromEntries(
              wanted.filter((p) => p in issue.properties).map((p) => [p, issue.properties[p]]),
            ),
          }
          : {}),
      };
    });
    this.route("POST", `${api}/issue/:key/comment`, (req, p, body) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const issue = this.issues.get(p.key!);
      if (!issue) {
        return Response.json({ errorMessages: ["Issue does not exist"], errors: {} }, {
          status: 404,
        });
      }
      const parsed = JSON.parse(body);
      const bad = this.#badBody(parsed.body, "comment");
      if (bad) return bad;
      const comment: FakeComment = {
        id: String(this.#ids++),
        body: parsed.body,
        properties: parsed.properties ?? [],
        author: this.deployment === "cloud" ? this.self.accountId : this.self.name,
        created: new Date().toISOString(),
      };
      issue.comments.push(comment);
      issue.fields.updated = comment.created;
      return Response.json({ id: comment.id, body: comment.body }, { status: 201 });
    });
    this.route("GET", `${api}/issue/:key/comment`, (req, p) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const issue = this.issues.get(p.key!);
      if (!issue) {
        return Response.json({ errorMessages: ["Issue does not exist"] }, { status: 404 });
      }
      const url = new URL(req.url);
      const startAt = Number(url.searchParams.get("startAt") ?? 0);
      const max = Number(url.searchParams.get("maxResults") ?? 50);
      const expand = url.searchParams.get("expand") ?? "";
      const page = issue.comments.slice(startAt, startAt + max);
      return {
        startAt,
        maxResults: max,
        total: issue.comments.length,
        comments: page.map((c) => this.#commentJson(c, expand)),
      };
    });
    this.route("POST", `${api}/issue/:key/attachments`, async (req, p, _body, bytes) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      if (req.headers.get("x-atlassian-token") !== "no-check") {
        return Response.json({ message: "XSRF check failed" }, { status: 403 });
      }
      const issue = this.issues.get(p.key!);
      if (!issue) {
        return Response.json({ errorMessages: ["Issue does not exist"] }, { status: 404 });
      }
      const form = await new Response(bytes, {
        headers: { "content-type": req.headers.get("content-type") ?? "" },
      }).formData();
      const files = form.getAll("file").filter((f): f is File => f instanceof File);
      if (!files.length) return Response.json({ errorMessages: ["No file part"] }, { status: 400 });
      const out = [];
      for (const file of files) {
        if (file.size > this.uploadLimit) {
          return Response.json({ errorMessages: ["The file is too large"] }, { status: 413 });
        }
        const attachment = {
          id: String(this.#ids++),
          filename: file.name,
          size: file.size,
          mimeType: file.type,
          ...(this.keepAttachments ? { bytes: new Uint8Array(await file.arrayBuffer()) } : {}),
        };
        issue.attachments.push(attachment);
        out.push({ id: attachment.id, filename: attachment.filename, size: attachment.size });
      }
      return out;
    });
    this.route(
      "GET",
      `${api}/attachment/meta`,
      (req) => this.#guard(req) ?? { enabled: true, uploadLimit: this.uploadLimit },
    );
    this.route("POST", `${api}/issue/:key/watchers`, (req, p, body) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const issue = this.issues.get(p.key!);
      if (!issue) {
        return Response.json({ errorMessages: ["Issue does not exist"] }, { status: 404 });
      }
      const id = JSON.parse(body);
      if (!this.users.some((u) => (deployment === "cloud" ? u.accountId : u.name) === id)) {
        return Response.json({ errorMessages: [`User '${id}' does not exist.`] }, { status: 404 });
      }
      if (!issue.watchers.includes(id)) issue.watchers.push(id);
      return new Response(null, { status: 204 });
    });
    this.route("GET", `${api}/issue/:key/watchers`, (req, p) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const issue = this.issues.get(p.key!);
      if (!issue) {
        return Response.json({ errorMessages: ["Issue does not exist"] }, { status: 404 });
      }
      const watchers = issue.watchers.map((id) => this.#userObject(id)).filter(Boolean);
      return { isWatching: false, watchCount: watchers.length, watchers };
    });
    this.route("POST", `${api}/issueLink`, (req, _p, body) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const link = JSON.parse(body);
      const inward = this.issues.get(link.inwardIssue?.key);
      if (!inward || !this.issues.get(link.outwardIssue?.key)) {
        return Response.json({ errorMessages: ["Issue does not exist"] }, { status: 404 });
      }
      inward.links.push(`${link.type?.name}:${link.outwardIssue.key}`);
      return new Response(null, { status: 201 });
    });
    this.route("GET", `${api}/user/search`, (req) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const url = new URL(req.url);
      const q = (url.searchParams.get(deployment === "cloud" ? "query" : "username") ?? "")
        .toLowerCase();
      if (!q) return Response.json({ errorMessages: ["query is required"] }, { status: 400 });
      return this.users.filter((u) =>
        u.emailAddress === q || u.name === q || u.displayName.toLowerCase().includes(q)
      )
        .map((u) =>
          deployment === "cloud"
            ? {
              accountId: u.accountId,
              emailAddress: u.emailAddress,
              displayName: u.displayName,
              active: true,
            }
            : {
              name: u.name,
              key: u.name,
              emailAddress: u.emailAddress,
              displayName: u.displayName,
              active: true,
            }
        );
    });
    this.route("GET", `${api}/issue/:key/comment/:id`, (req, p) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const comment = this.issues.get(p.key!)?.comments.find((c) => c.id === p.id);
      if (!comment) return Response.json({ errorMessages: ["No comment"] }, { status: 404 });
      return this.#commentJson(comment, new URL(req.url).searchParams.get("expand") ?? "");
    });
    this.route(
      "GET",
      `${api}/myself`,
      (req) =>
        this.#guard(req) ?? {
          ...(this.deployment === "cloud"
            ? { accountId: this.self.accountId }
            : { name: this.self.name, key: this.self.name }),
          emailAddress: this.user,
          displayName: this.self.displayName,
          timeZone: this.timeZone,
        },
    );
    // Attachment files as Jira links them in rendered HTML.
    this.route("GET", "/secure/attachment/:id/:name", (req, p) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const file = this.files.get(p.id!);
      if (!file) return new Response("Not found", { status: 404 });
      return new Response(file.bytes, { headers: { "content-type": file.contentType } });
    });
    this.route("GET", `${api}/project/:key`, (req, p) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      const types = this.projects.get(p.key!);
      if (!types) {
        return Response.json(
          { errorMessages: [`No project could be found with key '${p.key}'.`] },
          { status: 404 },
        );
      }
      return { key: p.key, issueTypes: types.map((name) => ({ name })) };
    });
    this.route("GET", deployment === "cloud" ? `${api}/search/jql` : `${api}/search`, (req) => {
      const denied = this.#guard(req);
      if (denied) return denied;
      return this.#search(new URL(req.url));
    });
  }

  get api(): string {
    return `/rest/api/${this.deployment === "cloud" ? 3 : 2}`;
  }

  /** Issues whose entity property `agent.mail` names this Message-ID. */
  issuesForMessage(messageId: string): FakeIssue[] {
    return [...this.issues.values()].filter((i) =>
      (i.properties["agent.mail"] as { messageId?: string })?.messageId === messageId
    );
  }

  #guard(req: Request): Response | undefined {
    const auth = req.headers.get("authorization") ?? "";
    if (auth !== `Basic ${btoa(`${this.user}:${this.token}`)}`) {
      return new Response("Unauthorized", { status: 401 });
    }
    return undefined;
  }

  #badBody(body: unknown, what: string): Response | undefined {
    if (this.deployment === "cloud") {
      const doc = body as { type?: string; version?: number; content?: unknown[] };
      if (!doc || doc.type !== "doc" || doc.version !== 1 || !Array.isArray(doc.content)) {
        return Response.json({
          errorMessages: [],
          errors: {
            [what]:
              "Operation value must be an Atlassian Document (see the Atlassian Document Format)",
          },
        }, { status: 400 });
      }
      // Jira Cloud checks bodies against the published ADF schema.
      const bad = adfProblem(doc);
      if (bad) {
        return Response.json({
          errorMessages: [],
          errors: { [what]: `INVALID_INPUT: ${bad}` },
        }, { status: 400 });
      }
    } else if (typeof body !== "string") {
      return Response.json({
        errorMessages: [],
        errors: { [what]: "Operation value must be a string" },
      }, { status: 400 });
    }
    if (JSON.stringify(body).length > 32767 + 20000) {
      return Response.json({
        errorMessages: [],
        errors: { [what]: "The entered text is too long." },
      }, { status: 400 });
    }
    return undefined;
  }

  #create(
    body: { fields?: Record<string, unknown>; properties?: { key: string; value: unknown }[] },
  ): Response {
    const fields = body.fields ?? {};
    const project = (fields.project as { key?: string })?.key ?? "";
    const types = this.projects.get(project);
    if (!types) {
      return Response.json(
        { errorMessages: [], errors: { project: "valid project is required" } },
        { status: 400 },
      );
    }
    if (!types.includes((fields.issuetype as { name?: string })?.name ?? "")) {
      return Response.json({
        errorMessages: [],
        errors: { issuetype: "valid issue type is required" },
      }, { status: 400 });
    }
    if (
      !fields.summary || String(fields.summary).length > 255 ||
      /[\r\n]/.test(String(fields.summary))
    ) {
      return Response.json({
        errorMessages: [],
        errors: { summary: "Summary must be less than 255 characters and one line." },
      }, { status: 400 });
    }
    const bad = this.#badBody(fields.description, "description");
    if (bad) return bad;
    const reporter = fields.reporter as { accountId?: string; name?: string } | undefined;
    if (reporter) {
      const ok = this.deployment === "cloud"
        ? this.users.some((u) => u.accountId === reporter.accountId)
        : this.users.some((u) => u.name === reporter.name);
      if (!ok) {
        return Response.json({
          errorMessages: [],
          errors: { reporter: "Specified reporter does not exist" },
        }, { status: 400 });
      }
    }
    const n = (this.#numbers.get(project) ?? 0) + 1;
    this.#numbers.set(project, n);
    const key = `${project}-${n}`;
    const id = String(this.#ids++);
    this.issues.set(key, {
      id,
      key,
      fields: {
        ...fields,
        status: { name: "To Do" },
        reporter: fields.reporter ??
          (this.deployment === "cloud"
            ? { accountId: this.self.accountId }
            : { name: this.self.name }),
        created: new Date().toISOString(),
        updated: new Date().toISOString(),
      },
      properties: Object.fromEntries((body.properties ?? []).map((p) => [p.key, p.value])),
      comments: [],
      attachments: [],
      watchers: [],
      links: [],
      created: new Date().toISOString(),
    });
    return Response.json({ id, key, self: `${this.url}${this.api}/issue/${id}` }, { status: 201 });
  }

  #search(url: URL): Response {
    const jql = url.searchParams.get("jql") ?? "";
    const properties = (url.searchParams.get("properties") ?? "").split(",").filter(Boolean);
    const max = Number(url.searchParams.get("maxResults") ?? 50);
    let query: ReturnType<typeof parseJql>;
    try {
      query = parseJql(jql);
    } catch (error) {
      return Response.json({ errorMessages: [(error as Error).message], errors: {} }, {
        status: 400,
      });
    }
    this.jqls.push(jql);
    const all = [...this.issues.values()]
      .filter((i) => query.clauses.every((c) => this.#matches(i, c)))
      .sort((a, b) =>
        (a.fields.created as string).localeCompare(b.fields.created as string) ||
        Number(a.id) - Number(b.id)
      );
    if (query.descending) all.reverse();
    const start = this.deployment === "cloud"
      ? Number(url.searchParams.get("nextPageToken") ?? 0)
      : Number(url.searchParams.get("startAt") ?? 0);
    // Cloud's search returns the entity properties asked for; Server/DC's cannot.
    const page = all.slice(start, start + max).map((i) => ({
      id: i.id,
      key: i.key,
      fields: this.#fieldsOf(i),
      ...(this.deployment === "cloud"
        ? {
          properties: Object.fromEntries(
            properties.filter((p) => p in i.properties).map((p) => [p, i.properties[p]]),
          ),
        }
        : {}),
    }));
    const more = start + max < all.length;
    return Response.json(
      this.deployment === "cloud"
        ? { issues: page, isLast: !more, ...(more ? { nextPageToken: String(start + max) } : {}) }
        : { startAt: start, maxResults: max, total: all.length, issues: page },
    );
  }

  /**
   * A person comments in Jira (not through the agent): `author` a user's e-mail, or the
   * agent's own account; `internal` marks a Jira Service Management internal comment.
   */
  commentAs(
    key: string,
    c: {
      author: string;
      text: string;
      html?: string;
      visibility?: FakeComment["visibility"];
      internal?: boolean;
      properties?: { key: string; value: unknown }[];
    },
  ): FakeComment {
    const issue = this.issues.get(key);
    if (!issue) throw new Error(`no issue ${key}`);
    const user = [...this.users, this.self].find((u) => u.emailAddress === c.author);
    if (!user) throw new Error(`no user ${c.author}`);
    const comment: FakeComment = {
      id: String(this.#ids++),
      body: this.deployment === "cloud"
        ? {
          type: "doc",
          version: 1,
          content: [{ type: "paragraph", content: [{ type: "text", text: c.text }] }],
        }
        : c.text,
      properties: [
        ...(c.properties ?? []),
        ...(c.internal !== undefined
          ? [{ key: "sd.public.comment", value: { internal: c.internal } }]
          : []),
      ],
      author: this.deployment === "cloud" ? user.accountId : user.name,
      created: new Date().toISOString(),
      ...(c.visibility ? { visibility: c.visibility } : {}),
      ...(c.html ? { html: c.html } : {}),
    };
    issue.comments.push(comment);
    issue.fields.updated = comment.created;
    return comment;
  }

  #commentJson(c: FakeComment, expand: string): Record<string, unknown> {
    const text = typeof c.body === "string" ? c.body : JSON.stringify(c.body);
    return {
      id: c.id,
      body: c.body,
      author: c.author ? this.#userObject(c.author) : undefined,
      created: c.created,
      updated: c.created,
      ...(c.visibility ? { visibility: c.visibility } : {}),
      ...(expand.includes("properties") ? { properties: c.properties } : {}),
      ...(expand.includes("renderedBody")
        ? {
          renderedBody: c.html ??
            `<p>${text.replace(/[&<>]/g, (x) => `&#${x.charCodeAt(0)};`)}</p>`,
        }
        : {}),
    };
  }

  /** Whether an issue satisfies one clause of the JQL subset parseJql reads. */
  #matches(issue: FakeIssue, clause: JqlClause): boolean {
    const f = issue.fields;
    const userId = (u: unknown) => {
      const o = u as { accountId?: string; name?: string } | undefined;
      return this.deployment === "cloud" ? o?.accountId : o?.name;
    };
    const values = clause.values;
    switch (clause.field) {
      case "project":
        return values.includes((f.project as { key?: string })?.key ?? "");
      case "labels":
        return ((f.labels as string[]) ?? []).some((l) => values.includes(l));
      case "reporter":
        return values.includes(userId(f.reporter) ?? "");
      case "assignee":
        return values.includes(userId(f.assignee) ?? "");
      case "watcher":
        return issue.watchers.some((w) => values.includes(w));
      case "status":
        return values.some((v) =>
          v.toLowerCase() === String((f.status as { name?: string })?.name).toLowerCase()
        );
      case "created": {
        const days = Number(/^-(\d+)d$/.exec(values[0] ?? "")?.[1] ?? NaN);
        return Date.parse(f.created as string) >= Date.now() - days * 86_400_000;
      }
      case "updated":
        // "yyyy/MM/dd HH:mm", read in the account's time zone (as Jira reads JQL dates).
        return Date.parse(f.updated as string) >= wallTime(values[0]!, this.timeZone);
      case "text": {
        const text = [
          String(f.summary ?? ""),
          JSON.stringify(f.description ?? ""),
          ...issue.comments.map((c) => JSON.stringify(c.body)),
        ].join(" ").toLowerCase();
        return values[0]!.toLowerCase().split(/\s+/).filter(Boolean).every((w) => text.includes(w));
      }
    }
  }

  /** The issue's fields as Jira returns them: users as objects, attachments listed. */
  #fieldsOf(issue: FakeIssue): Record<string, unknown> {
    const fields: Record<string, unknown> = {
      ...issue.fields,
      attachment: issue.attachments.map(({ bytes: _b, ...a }) => a),
    };
    for (const name of ["reporter", "assignee"]) {
      const ref = fields[name] as { accountId?: string; name?: string } | undefined;
      if (ref) fields[name] = this.#userObject(ref.accountId ?? ref.name ?? "") ?? ref;
    }
    return fields;
  }

  #renderedOf(issue: FakeIssue): Record<string, unknown> {
    const text = typeof issue.fields.description === "string"
      ? issue.fields.description
      : JSON.stringify(issue.fields.description ?? "");
    return { description: `<p>${text.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`)}</p>` };
  }

  /** A user as Jira returns one (Cloud keeps e-mail addresses; this fake shows them). */
  #userObject(id: string): Record<string, unknown> | undefined {
    const user = [...this.users, this.self].find((u) => u.accountId === id || u.name === id);
    if (!user) return undefined;
    return this.deployment === "cloud"
      ? {
        accountId: user.accountId,
        displayName: user.displayName,
        emailAddress: user.emailAddress,
        active: true,
      }
      : {
        name: user.name,
        key: user.name,
        displayName: user.displayName,
        emailAddress: user.emailAddress,
        active: true,
      };
  }
}

interface JqlClause {
  field:
    | "project"
    | "labels"
    | "reporter"
    | "assignee"
    | "watcher"
    | "status"
    | "created"
    | "updated"
    | "text";
  values: string[];
}

/**
 * The JQL subset the agent writes: clauses joined by AND (`field = "v"`, `field in ("a",
 * "b")`, `text ~ "v"`, `created >= -14d`), then `ORDER BY created ASC|DESC`. String
 * literals with \" and \\ escapes, as Jira reads them. Anything else is a 400, as a real
 * Jira answers JQL it cannot parse, so a value that escaped its quotes fails the test.
 */
export function parseJql(jql: string): { clauses: JqlClause[]; descending: boolean } {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`Error in the JQL Query: ${what} at character ${i}`);
  };
  const space = () => {
    while (jql[i] === " ") i++;
  };
  const word = () => {
    space();
    const m = /^[A-Za-z]+|^-\d+d|^>=|^=|^~|^\(|^\)|^,/.exec(jql.slice(i));
    if (!m) fail("unexpected text");
    i += m![0].length;
    return m![0];
  };
  const literal = () => {
    space();
    if (jql[i] !== '"') return word();
    let out = "";
    for (i++; i < jql.length; i++) {
      if (jql[i] === "\\") {
        out += jql[++i];
        continue;
      }
      if (jql[i] === '"') {
        i++;
        return out;
      }
      out += jql[i];
    }
    return fail("unterminated string");
  };
  const clauses: JqlClause[] = [];
  let descending = false;
  for (;;) {
    const field = word().toLowerCase();
    if (field === "order") {
      if (word().toLowerCase() !== "by" || !/^(created|updated)$/i.test(word())) fail("ORDER BY");
      descending = word().toUpperCase() === "DESC";
      break;
    }
    if (
      ![
        "project",
        "labels",
        "reporter",
        "assignee",
        "watcher",
        "status",
        "created",
        "updated",
        "text",
      ].includes(field)
    ) fail(`field ${field}`);
    const op = word().toLowerCase();
    const values: string[] = [];
    if (op === "in") {
      if (word() !== "(") fail("(");
      for (;;) {
        values.push(literal());
        const next = word();
        if (next === ")") break;
        if (next !== ",") fail(",");
      }
    } else if (op === "=" || op === "~" || op === ">=") values.push(literal());
    else fail(`operator ${op}`);
    clauses.push({ field: field as JqlClause["field"], values });
    space();
    if (i >= jql.length) break;
    const joiner = word().toUpperCase();
    if (joiner === "ORDER") {
      if (word().toLowerCase() !== "by" || !/^(created|updated)$/i.test(word())) fail("ORDER BY");
      descending = word().toUpperCase() === "DESC";
      break;
    }
    if (joiner !== "AND") fail(`expected AND, not ${joiner}`);
  }
  space();
  if (i < jql.length) fail("text after the query");
  return { clauses, descending };
}

/** The `[jira]` section for a fake Jira. */
export function jiraSection(
  fake: FakeJira,
  caCertFile: string,
  extra: Record<string, string> = {},
): string {
  const lines = {
    url: fake.url,
    deployment: fake.deployment,
    user: fake.user,
    api_token: fake.token,
    project: "SUP",
    cafile: caCertFile,
    ...extra,
  };
  return `[jira]\n${Object.entries(lines).map(([k, v]) => `${k} = ${v}`).join("\n")}\n`;
}

/** "yyyy/MM/dd HH:mm" as a wall time in `timeZone`, in epoch ms. */
export function wallTime(text: string, timeZone: string): number {
  const m = /^(\d{4})[/-](\d{2})[/-](\d{2}) (\d{2}):(\d{2})$/.exec(text);
  if (!m) throw new Error(`Date value '${text}' for field 'updated' is invalid`);
  const asUtc = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!);
  // The zone's offset at that moment: format the UTC guess in the zone and compare.
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  }).formatToParts(new Date(asUtc));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const shown = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"));
  return asUtc - (shown - asUtc);
}
