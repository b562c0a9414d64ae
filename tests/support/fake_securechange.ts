/**
 * A fake Tufin SecureChange REST API over HTTPS, from the documented shapes: GET
 * tickets/{id} (with the JSON quirks as stored: bare objects, "" for empty) and POST
 * .../steps/{step}/tasks/{task}/comments, Basic auth. Fault injection from HttpsFake.
 */
import { HttpsFake } from "./https_fake.ts";
import type { RawTicket } from "../../mod/securechange/types.ts";

const BASE = "/securechangeworkflow/api/securechange";

export interface PostedComment {
  ticketId: number;
  stepId: number;
  taskId: number;
  content: string;
}

export class FakeSecureChange extends HttpsFake {
  readonly username = "sc-agent";
  readonly password = "sc-pass-" + crypto.randomUUID().slice(0, 8);
  readonly tickets = new Map<number, RawTicket>();
  readonly posted: PostedComment[] = [];

  constructor() {
    super();
    this.route("GET", `${BASE}/tickets/:id`, (req, p) => {
      if (!this.#authorized(req)) {
        return Response.json({ result: { code: "UNAUTHORIZED" } }, { status: 401 });
      }
      const ticket = this.tickets.get(Number(p.id));
      if (!ticket) {
        return Response.json({
          result: { code: "WEB_APPLICATION_ERROR", message: `Ticket ${p.id} not found` },
        }, { status: 404 });
      }
      return { ticket };
    });
    this.route("GET", `${BASE}/workflow_definitions`, (req) => {
      if (!this.#authorized(req)) {
        return Response.json({ result: { code: "UNAUTHORIZED" } }, { status: 401 });
      }
      return { workflows: { workflow: [{ id: 3, name: "Access Request" }] } };
    });
    this.route("POST", `${BASE}/tickets/:id/steps/:step/tasks/:task/comments`, (req, p, body) => {
      if (!this.#authorized(req)) {
        return Response.json({ result: { code: "UNAUTHORIZED" } }, { status: 401 });
      }
      const ticket = this.tickets.get(Number(p.id));
      if (!ticket) return Response.json({ message: "not found" }, { status: 404 });
      const content = JSON.parse(body).comment.content as string;
      this.posted.push({
        ticketId: Number(p.id),
        stepId: Number(p.step),
        taskId: Number(p.task),
        content,
      });
      // Stored as SecureChange returns it: one comment is a bare object, more are a list.
      const existing = ticket.comments && ticket.comments.comment;
      const list = existing ? (Array.isArray(existing) ? existing : [existing]) : [];
      const next = [...list, {
        content,
        type: "comment",
        user: this.username,
        created: new Date().toISOString(),
      }];
      ticket.comments = { comment: next.length === 1 ? next[0]! : next };
      return new Response(null, { status: 201 });
    });
  }

  #authorized(req: Request): boolean {
    return req.headers.get("authorization") ===
      `Basic ${btoa(`${this.username}:${this.password}`)}`;
  }
}
