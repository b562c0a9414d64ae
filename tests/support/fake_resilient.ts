/**
 * A fake IBM Resilient / SOAR REST API over HTTPS, from the documented shapes: session
 * (API key Basic auth or email/password with JSESSIONID + X-sess-id), orgs, rules
 * (`/actions`), users, groups, incidents with 409 on stale PUTs. Fault injection comes
 * from HttpsFake.
 */
import { HttpsFake } from "./https_fake.ts";

export interface FakeUser {
  id: number;
  email?: string | null;
  fname?: string;
  lname?: string;
}

export class FakeResilient extends HttpsFake {
  readonly orgId: number;
  readonly orgName: string;
  readonly apiKeyId = "test-key-id";
  readonly apiKeySecret = "test-key-secret-" + crypto.randomUUID().slice(0, 8);
  readonly email = "integration@example.com";
  readonly password = "pw-" + crypto.randomUUID().slice(0, 8);
  readonly users = new Map<number, FakeUser>();
  readonly groups = new Map<number, { id: number; name: string }>();
  readonly rules = new Map<number, string>();
  readonly incidents = new Map<number, Record<string, unknown> & { vers: number }>();
  /** Field definitions by type name (`incident`, `actioninvocation`). */
  readonly fields = new Map<string, { name: string; input_type: string }[]>();
  /** Notes (comments) and artifacts posted to incidents, with the context token they came with. */
  readonly notes: { incidentId: number; text: unknown; contextToken: string | null }[] = [];
  readonly artifacts: { incidentId: number; artifact: unknown; contextToken: string | null }[] = [];
  #sessions = new Map<string, string>();
  /** What GET /rest/orgs/{id} says about the org's Action Module. */
  actionsFrameworkEnabled = true;

  constructor(options: { orgId?: number; orgName?: string } = {}) {
    super();
    this.orgId = options.orgId ?? 201;
    this.orgName = options.orgName ?? "Test Org";
    const orgs = () => [
      { id: this.orgId, name: this.orgName, enabled: true },
      { id: 999, name: "Disabled Org", enabled: false },
    ];
    this.route("POST", "/rest/session", (_req, _p, body) => {
      const { email, password } = JSON.parse(body || "{}");
      if (email !== this.email || password !== this.password) {
        return Response.json({ message: "The user name or password is incorrect" }, {
          status: 401,
        });
      }
      const session = crypto.randomUUID();
      const csrf = crypto.randomUUID();
      this.#sessions.set(session, csrf);
      return Response.json({ csrf_token: csrf, orgs: orgs(), user_id: 1 }, {
        headers: { "set-cookie": `JSESSIONID=${session}; Path=/; Secure; HttpOnly` },
      });
    });
    this.route(
      "GET",
      "/rest/session",
      (req) => this.#authorized(req) ?? { orgs: orgs(), user_id: 1 },
    );
    this.route(
      "GET",
      "/rest/orgs/:org/actions",
      (req) =>
        this.#authorized(req) ??
          { entities: [...this.rules].map(([id, name]) => ({ id, name, enabled: true })) },
    );
    this.route("GET", "/rest/orgs/:org", (req, p) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      const org = orgs().find((o) => String(o.id) === p.org);
      if (!org) return Response.json({ message: "Org not found" }, { status: 404 });
      return { ...org, actions_framework_enabled: this.actionsFrameworkEnabled };
    });
    this.route("GET", "/rest/const", (req) =>
      this.#authorized(req) ?? {
        server_version: {
          major: 51,
          minor: 0,
          build_number: 8083,
          version: "51.0.0.8083",
        },
      });
    this.route("GET", "/rest/orgs/:org/users/:id", (req, p) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      const user = this.users.get(Number(p.id));
      if (!user) {
        return Response.json({ success: false, message: `User ${p.id} not found` }, {
          status: 404,
        });
      }
      return {
        display_name: `${user.fname ?? ""} ${user.lname ?? ""}`.trim(),
        enabled: true,
        ...user,
      };
    });
    this.route("GET", "/rest/orgs/:org/groups/:id", (req, p) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      const group = this.groups.get(Number(p.id));
      return group ?? Response.json({ message: `Group ${p.id} not found` }, { status: 404 });
    });
    this.route("GET", "/rest/orgs/:org/incidents/:id", (req, p) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      return this.incidents.get(Number(p.id)) ??
        Response.json({ message: "not found" }, { status: 404 });
    });
    this.route("GET", "/rest/orgs/:org/types/:type/fields", (req, p) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      return this.fields.get(p.type!) ??
        Response.json({ message: `Type ${p.type} not found` }, { status: 404 });
    });
    this.route("POST", "/rest/orgs/:org/incidents/:id/comments", (req, p, body) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      if (!this.incidents.has(Number(p.id))) {
        return Response.json({ message: "not found" }, { status: 404 });
      }
      const { text } = JSON.parse(body);
      this.notes.push({
        incidentId: Number(p.id),
        text,
        contextToken: req.headers.get("x-co3contexttoken"),
      });
      return { id: 1000 + this.notes.length, inc_id: Number(p.id), text };
    });
    this.route("POST", "/rest/orgs/:org/incidents/:id/artifacts", (req, p, body) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      const artifact = JSON.parse(body);
      this.artifacts.push({
        incidentId: Number(p.id),
        artifact,
        contextToken: req.headers.get("x-co3contexttoken"),
      });
      return [{ id: 2000 + this.artifacts.length, inc_id: Number(p.id), ...artifact }];
    });
    this.route("PUT", "/rest/orgs/:org/incidents/:id", (req, p, body) => {
      const denied = this.#authorized(req);
      if (denied) return denied;
      const current = this.incidents.get(Number(p.id));
      if (!current) return Response.json({ message: "not found" }, { status: 404 });
      const update = JSON.parse(body);
      if (update.vers !== current.vers) {
        return Response.json({ message: "Conflict: the incident was changed" }, { status: 409 });
      }
      const next = { ...update, vers: current.vers + 1 };
      this.incidents.set(Number(p.id), next);
      return next;
    });
  }

  /** undefined when the request carries valid credentials, else a 401 response. */
  #authorized(req: Request): Response | undefined {
    const auth = req.headers.get("authorization");
    if (auth === `Basic ${btoa(`${this.apiKeyId}:${this.apiKeySecret}`)}`) return undefined;
    const cookie = /JSESSIONID=([^;]+)/.exec(req.headers.get("cookie") ?? "")?.[1];
    if (cookie && this.#sessions.get(cookie) === req.headers.get("x-sess-id")) return undefined;
    return Response.json({ message: "Unauthorized" }, { status: 401 });
  }

  /** Expires every session (the next request gets 401). */
  expireSessions(): void {
    this.#sessions.clear();
  }
}

/**
 * The `[resilient]` section for an agent under test: this fake's REST API and the broker's
 * STOMP+SSL port, the secret read from $SOAR_SECRET (so it stays out of the file).
 */
export function resilientSection(
  fake: FakeResilient,
  stomp: { sslPort: number; caCertFile: string; stompCaFile?: string },
  extra = "",
): string {
  return `[resilient]
host = 127.0.0.1
port = ${fake.port}
org = ${fake.orgName}
api_key_id = ${fake.apiKeyId}
api_key_secret = $SOAR_SECRET
cafile = ${stomp.caCertFile}
stomp_port = ${stomp.sslPort}
stomp_cafile = ${stomp.stompCaFile ?? stomp.caCertFile}
num_workers = 4
${extra}`;
}
