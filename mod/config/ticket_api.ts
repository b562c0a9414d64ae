/**
 * `[ticket_api]`: the ticket service (the Ticket Manager's REST API). Its boards are the
 * Jira projects the mail bridge may create in, its categories the bridge's categories; the
 * section may narrow both. Read by config.ts.
 */
import type { MailBridgeConfig } from "./mail.ts";
import type { SectionReader } from "./reader.ts";

export interface TicketApiConfig {
  /** `host:port` to listen on. */
  listen: { hostname: string; port: number };
  /** The path every route is under, `/api/tickets/v1`: no trailing slash. */
  context: string;
  tls?: { certFile: string; keyFile: string } | undefined;
  /** Jira projects tickets may be created in and searched; the first is the default. */
  boards: string[];
  /** Labels a ticket may carry as its category; `defaultCategory` when none is given. */
  categories: string[];
  defaultCategory?: string | undefined;
  maxRequestBytes: number;
  /** Deadline of one request, Jira's retries included. */
  timeoutSeconds: number;
  /** How long a ticket read from Jira is served from the store. */
  cacheSeconds: number;
  /** The bridge's settings tickets are made with (labels, priorities, issues_dir). */
  bridge: MailBridgeConfig;
}

export function readTicketApi(
  r: SectionReader,
  bridge: MailBridgeConfig,
): TicketApiConfig {
  const listenText = r.withDefault("listen", "127.0.0.1:5000");
  const m = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d+)$/.exec(listenText.trim());
  const port = Number(m?.[3]);
  if (!m || !(port >= 1 && port <= 65535)) {
    throw r.error("listen", `"${listenText}" is not host:port (e.g. 127.0.0.1:5000)`);
  }
  const context = r.withDefault("context", "/api/tickets/v1").replace(/\/+$/, "");
  if (!/^(\/[A-Za-z0-9._~-]+)*$/.test(context)) {
    throw r.error("context", `"${context}" is not a path such as /api/tickets/v1`);
  }
  const certFile = r.path("tls_cert");
  const keyFile = r.path("tls_key");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw r.error(
      certFile ? "tls_key" : "tls_cert",
      "tls_cert and tls_key go together (the certificate chain and its private key, PEM)",
    );
  }
  const allBoards = bridge.projectKeys;
  const boards = r.list("boards", allBoards).map((b) => b.toUpperCase());
  const strangers = boards.filter((b) => !allBoards.includes(b));
  if (strangers.length) {
    throw r.error(
      "boards",
      `${strangers.join(", ")} ${strangers.length > 1 ? "are" : "is"} not among the projects ` +
        `the bridge may create in (${allBoards.join(", ")}: [jira] project, [mail_bridge] ` +
        `projects and project_keys)`,
    );
  }
  const allCategories = [
    ...new Set([...bridge.categories, ...(bridge.defaultCategory ? [bridge.defaultCategory] : [])]),
  ];
  const categories = r.list("categories", allCategories);
  const unknown = categories.filter((c) => allCategories.length && !allCategories.includes(c));
  if (unknown.length) {
    throw r.error(
      "categories",
      `${unknown.join(", ")}: not among [mail_bridge] categories (${allCategories.join(", ")})`,
    );
  }
  const defaultCategory = bridge.defaultCategory && categories.includes(bridge.defaultCategory)
    ? bridge.defaultCategory
    : categories[0];
  return {
    listen: { hostname: m[1] ?? (m[2] || "127.0.0.1"), port },
    context,
    ...(certFile && keyFile ? { tls: { certFile, keyFile } } : {}),
    boards,
    categories,
    defaultCategory,
    maxRequestBytes: r.int("max_request_mb", { default: 25, min: 1, max: 1024 }) * 1024 * 1024,
    timeoutSeconds: r.int("timeout_seconds", { default: 10, min: 1, max: 300 }),
    cacheSeconds: r.int("cache_seconds", { default: 30, min: 0, max: 86400 }),
    bridge,
  };
}
