/**
 * The ticket service's shapes, once: these zod schemas validate requests and, through
 * @hono/zod-openapi's registry, make the OpenAPI 3.1 document. Field names and rules are the
 * Ticket Manager's (title and body at least 5 characters, priority low|high, ...).
 */
import { z } from "@hono/zod-openapi";

const email = z.string().trim().toLowerCase().pipe(
  z.email({ message: "must be an e-mail address" }).max(254),
);

/** A Jira issue key, `SUP-12`. */
export const KEY_PATTERN = /^[A-Z][A-Z0-9_]{0,19}-[1-9][0-9]{0,9}$/;

export const TicketKeyParam = z.object({
  key: z.string().regex(KEY_PATTERN, "must be an issue key such as SUP-12").openapi({
    param: { name: "key", in: "path" },
    example: "SUP-12",
  }),
});

/** A ticket as the Ticket Manager returned one: the issue's fields, id, key, url. */
export const Ticket = z.object({
  id: z.string(),
  key: z.string(),
  url: z.string().openapi({ description: "The issue's page in Jira" }),
  summary: z.string().optional(),
  reporter: z.object({ emailAddress: z.string().optional() }).passthrough().optional(),
  rendered: z.record(z.string(), z.unknown()).optional().openapi({
    description: "Jira's renderedFields (HTML), with fields=rendered",
  }),
  watchers: z.array(z.record(z.string(), z.unknown())).optional().openapi({
    description: "With fields=watchers",
  }),
}).passthrough().openapi("Ticket", {
  description: "The Jira issue's fields, plus id, key, url and reporter.emailAddress",
});

const title = z.string().trim().min(5, "must be at least 5 characters").max(255);
const body = z.string().trim().min(5, "must be at least 5 characters").max(30_000);

export const NewTicket = z.object({
  title,
  body,
  reporter: email.openapi({
    description: "The requester's e-mail; their Jira user when there is one, else named in " +
      "the text",
  }),
  board: z.string().trim().toUpperCase().optional().openapi({
    description: "A supported board (Jira project); default: the first",
  }),
  category: z.string().trim().optional().openapi({
    description: "A supported category; default: the default category",
  }),
  priority: z.enum(["low", "high"]).optional(),
  watchers: z.array(email).max(50).optional().openapi({
    description: "E-mails of people to add as watchers (when Jira allows it)",
  }),
}).strict().openapi("NewTicket");

export const NewComment = z.object({
  body,
  author: email.openapi({ description: "Who is commenting (named in the comment)" }),
}).strict().openapi("NewComment");

/** Files in a multipart request: the same fields, plus `attachments`. */
const files = z.array(z.string().openapi({ format: "binary" })).optional().openapi({
  description: "Files, uploaded to the issue",
});
export const NewTicketForm = NewTicket.extend({ attachments: files }).openapi("NewTicketForm");
export const NewCommentForm = NewComment.extend({ attachments: files }).openapi(
  "NewCommentForm",
);

const list = (description: string) =>
  z.union([z.string(), z.array(z.string())]).optional().transform((v) =>
    v === undefined
      ? []
      : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(
        Boolean,
      )
  ).openapi({ description, type: "array", items: { type: "string" } });

export const TicketSearch = z.object({
  boards: list("Boards to search (repeatable; default: all supported)"),
  categories: list("Categories (repeatable; any of them)"),
  reporter: email.optional(),
  assignee: email.optional(),
  watcher: email.optional(),
  status: z.string().trim().min(1).max(100).optional(),
  q: z.string().trim().min(1).max(500).optional().openapi({ description: "Words to search" }),
  fields: list("Extra fields: rendered, watchers"),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  sort: z.enum(["created", "-created"]).default("-created").openapi({
    description: "created (oldest first) or -created (newest first)",
  }),
  cursor: z.string().max(2000).optional().openapi({
    description: "From the Link header's rel=next; opaque",
  }),
});

export const TicketFields = z.object({
  fields: list("Extra fields: rendered, watchers"),
});

export const Comment = z.object({
  id: z.string(),
  author: z.record(z.string(), z.unknown()).optional(),
  body: z.unknown(),
  created: z.string().optional(),
}).passthrough().openapi("Comment");

export const StringList = z.array(z.string()).openapi("StringList");

export const Mail = z.object({
  id: z.string().openapi({ description: "The ledger's key (the normalised Message-ID)" }),
  mailbox: z.string(),
  state: z.string(),
  key: z.string().optional(),
  kind: z.string().optional(),
  from: z.string(),
  subject: z.string(),
  received: z.string(),
  updated: z.string().optional(),
  reason: z.string().optional(),
  error: z.string().optional(),
}).openapi("Mail");

export const MailSearch = z.object({
  state: z.enum(["seen", "creating", "created", "attachments_done", "marked", "skipped", "failed"])
    .optional(),
  from: email.optional(),
  key: z.string().regex(KEY_PATTERN).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(2000).optional(),
});

export const MailIdParam = z.object({
  id: z.string().min(1).max(1000).openapi({ param: { name: "id", in: "path" } }),
});

export const DeadLetterSearch = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const DeadLetter = z.object({
  kind: z.enum(["action", "mail"]),
  id: z.string(),
  reason: z.string(),
  at: z.string().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
}).openapi("DeadLetter");

/** RFC 9457 problem details; `errors` names each field that is wrong. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
}).openapi("Problem");

/** The parts of Jira's webhook payload the way back reads (the rest is ignored). */
export const JiraWebhook = z.object({
  webhookEvent: z.string().max(100),
  issue: z.object({ key: z.string().regex(KEY_PATTERN) }).passthrough().optional(),
  comment: z.object({ id: z.coerce.string().regex(/^[0-9]{1,19}$/) }).passthrough().optional(),
}).passthrough().openapi("JiraWebhook");
