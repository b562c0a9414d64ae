/**
 * The mail bridge's sections: `[graph]` (the Microsoft 365 mailbox), `[jira]` and
 * `[mail_bridge]` (what turns a mail into an issue). Read by config.ts.
 */
import type { ProxySettings } from "../net/http.ts";
import type { SectionReader } from "./reader.ts";
import type { TlsTrust } from "../tls/trust.ts";

/** `[graph]`: the mailbox, read with application permissions (client credentials). */
export interface GraphConfig {
  tenantId: string;
  clientId: string;
  /**
   * `app`: the app's own identity (client credentials; application permissions). `delegated`:
   * a user signed in once with the device code flow (`agent authorize --device-code`), and
   * the bridge acts as that user (delegated permissions).
   */
  auth: "app" | "delegated";
  /** The app's credential (auth = app). */
  credential?:
    | { kind: "secret"; secret: string }
    | { kind: "certificate"; thumbprint: string; privateKeyFile: string }
    | undefined;
  /** Delegated permissions asked for (auth = delegated). */
  scopes: string[];
  /** e.g. https://login.microsoftonline.com (national clouds and test fakes differ). */
  authorityHost: string;
  /** e.g. https://graph.microsoft.com/v1.0 */
  graphUrl: string;
  tls: TlsTrust;
  mailbox: string;
  folders: string[];
  pageSize: number;
  pollSeconds: number;
  /** Graph allows 4 concurrent requests per app and mailbox. */
  maxConcurrency: number;
  timeoutSeconds: number;
  /** From `[resilient] proxy_*`. */
  proxy?: ProxySettings | undefined;
}

/** `[jira]`: Jira Cloud (REST v3, ADF) or Server/Data Center (REST v2, wiki markup). */
export interface JiraConfig {
  url: string;
  deployment: "cloud" | "server";
  auth:
    | { kind: "basic"; user: string; token: string }
    | { kind: "bearer"; token: string };
  project: string;
  issueType: string;
  tls: TlsTrust;
  timeoutSeconds: number;
  /** From `[resilient] proxy_*`. */
  proxy?: ProxySettings | undefined;
}

/** `[mail_bridge]`: filters, threading and content rules. */
export interface MailBridgeConfig {
  labels: string[];
  /** Put on every issue the bridge creates; crash recovery searches by it. */
  bridgeLabel: string;
  categories: string[];
  defaultCategory?: string | undefined;
  /** Recipient address (lower case) -> project key. */
  projects: Map<string, string>;
  /** Project keys a subject tag `[KEY]` may pick (the configured ones). */
  projectKeys: string[];
  allowedDomains: string[];
  blockedAddresses: string[];
  defaultReporter?: string | undefined;
  watchersFromCc: boolean;
  /** Outlook importance (low/high) -> Jira priority name. */
  priorities: Map<string, string>;
  ackMail: boolean;
  /** `{key}` is replaced by the issue key. */
  markCategory: string;
  moveTo?: string | undefined;
  maxSummary: number;
  maxMailBytes: number;
  /** How far back crash recovery searches for an issue created but not recorded. */
  reconcileDays: number;
  /**
   * How long a mail is reserved for the agent working on it (agents sharing a store); after
   * a crash its mails wait this long. 0: no reservation (one bridge per mailbox).
   */
  claimSeconds: number;
  /** The header the bridge puts on its own mail, so it never ingests it. */
  ownHeader: string;
  /** More addresses that are the bridge's own (the mailbox's aliases, a shared address). */
  ownAddresses: string[];
  /** The way back: public comments go to the sender as replies in the thread. */
  replies: boolean;
  /** Replies go to the original Cc's too. */
  replyCc: boolean;
  /** Shared secret of Jira's comment webhook (POST <context>/webhooks/jira). */
  webhookSecret?: string | undefined;
  /** Embedded defaults without [graph]/[jira]: a folder of .eml files, issues as JSON. */
  mailDir: string;
  issuesDir: string;
}

export function readGraph(r: SectionReader, trust: (key: string) => TlsTrust): GraphConfig {
  const secret = r.optional("client_secret", { secret: true });
  const certificate = r.path("certificate_file");
  const thumbprint = r.optional("certificate_thumbprint");
  let credential: GraphConfig["credential"];
  if (secret) credential = { kind: "secret", secret };
  else if (certificate && thumbprint) {
    credential = { kind: "certificate", thumbprint, privateKeyFile: certificate };
  } else if (certificate || thumbprint) {
    throw r.error(
      certificate ? "certificate_thumbprint" : "certificate_file",
      "missing; certificate_file and certificate_thumbprint go together",
    );
  }
  const auth = r.oneOf("auth", ["app", "delegated"] as const, credential ? "app" : "delegated");
  if (auth === "app" && !credential) {
    throw r.error(
      undefined,
      "no credentials: set client_secret (or certificate_file and certificate_thumbprint), " +
        "or auth = delegated to sign in as a user (agent authorize --device-code)",
    );
  }
  if (auth === "delegated" && credential) {
    throw r.error(
      "auth",
      "delegated sign-in is a public client: remove client_secret / certificate_file, or " +
        "use auth = app",
    );
  }
  const scopes = r.list("scopes", ["Mail.ReadWrite", "Mail.Send", "offline_access"]);
  return {
    tenantId: r.required("tenant_id"),
    clientId: r.required("client_id"),
    auth,
    credential,
    scopes,
    authorityHost: httpsUrl(r, "authority_host", "https://login.microsoftonline.com"),
    graphUrl: httpsUrl(r, "graph_url", "https://graph.microsoft.com/v1.0"),
    tls: trust("cafile"),
    mailbox: r.required("mailbox"),
    folders: r.list("folders", ["Inbox"]),
    pageSize: r.int("page_size", { default: 50, min: 1, max: 1000 }),
    pollSeconds: r.decimal("poll_seconds", { default: 30, min: 1, max: 86400 }),
    maxConcurrency: r.int("max_concurrency", { default: 4, min: 1, max: 4 }),
    timeoutSeconds: r.int("timeout", { default: 30, min: 1, max: 600 }),
  };
}

export function readJira(r: SectionReader, trust: (key: string) => TlsTrust): JiraConfig {
  const deployment = r.oneOf("deployment", ["cloud", "server"] as const, "cloud");
  const pat = r.optional("personal_access_token", { secret: true });
  const user = r.optional("user");
  const token = r.optional("api_token", { secret: true });
  let auth: JiraConfig["auth"];
  if (pat) auth = { kind: "bearer", token: pat };
  else if (user && token) auth = { kind: "basic", user, token };
  else if (user || token) {
    throw r.error(user ? "api_token" : "user", "missing; user and api_token go together");
  } else {
    throw r.error(undefined, "no credentials: set user and api_token (or personal_access_token)");
  }
  return {
    url: httpsUrl(r, "url").replace(/\/+$/, ""),
    deployment,
    auth,
    project: r.required("project"),
    issueType: r.withDefault("issue_type", "Task"),
    tls: trust("cafile"),
    timeoutSeconds: r.int("timeout", { default: 30, min: 1, max: 600 }),
  };
}

export function readMailBridge(
  r: SectionReader,
  defaultProject: string,
  stateDir?: string | undefined,
): MailBridgeConfig {
  const projects = new Map<string, string>();
  for (const entry of r.list("projects")) {
    const [address, key] = entry.split(/\s*[=:]\s*(?=[A-Z][A-Z0-9_]*$)/);
    if (!address || !key || !address.includes("@")) {
      throw r.error("projects", `"${entry}" is not "address = PROJECTKEY"`);
    }
    projects.set(address.toLowerCase(), key);
  }
  const priorities = new Map<string, string>();
  for (const entry of r.list("priorities", ["high:High", "low:Low"])) {
    const [importance, name] = entry.split(/\s*:\s*/, 2);
    if (!importance || !name || !["low", "normal", "high"].includes(importance.toLowerCase())) {
      throw r.error("priorities", `"${entry}" is not "low|normal|high:Priority name"`);
    }
    priorities.set(importance.toLowerCase(), name);
  }
  const categories = r.list("categories");
  const defaultCategory = r.optional("default_category");
  if (defaultCategory && categories.length && !categories.includes(defaultCategory)) {
    throw r.error("default_category", `"${defaultCategory}" is not one of the categories`);
  }
  const ownHeader = r.withDefault("own_header", "X-Agent-Mail-Bridge");
  if (!/^x-[a-z0-9-]+$/i.test(ownHeader)) {
    throw r.error(
      "own_header",
      `"${ownHeader}" must be an X- header name (Graph allows only those)`,
    );
  }
  return {
    labels: r.list("labels"),
    bridgeLabel: r.withDefault("bridge_label", "mail-bridge"),
    categories,
    defaultCategory,
    projects,
    projectKeys: [...new Set([defaultProject, ...projects.values(), ...r.list("project_keys")])],
    allowedDomains: r.list("allowed_domains").map((d) => d.toLowerCase().replace(/^@/, "")),
    blockedAddresses: r.list("blocked_addresses").map((a) => a.toLowerCase()),
    ownAddresses: r.list("own_addresses").map((a) => a.toLowerCase()),
    defaultReporter: r.optional("default_reporter"),
    watchersFromCc: r.bool("watchers_from_cc", true),
    priorities,
    ackMail: r.bool("ack_mail", true),
    markCategory: r.withDefault("mark_category", "Jira: {key}"),
    moveTo: r.optional("move_to"),
    maxSummary: r.int("max_summary", { default: 200, min: 20, max: 255 }),
    maxMailBytes: r.int("max_mail_mb", { default: 25, min: 1, max: 1024 }) * 1024 * 1024,
    reconcileDays: r.int("reconcile_days", { default: 14, min: 1, max: 365 }),
    claimSeconds: r.int("claim_seconds", { default: 120, min: 0, max: 86400 }),
    ownHeader,
    replies: r.bool("replies", true),
    replyCc: r.bool("reply_cc", false),
    webhookSecret: r.optional("webhook_secret", { secret: true }),
    mailDir: r.pathWithDefault("mail_dir", "mail"),
    issuesDir: r.pathWithDefault("issues_dir", stateDir ? `${stateDir}/issues` : "issues"),
  };
}

function httpsUrl(r: SectionReader, key: string, fallback?: string): string {
  const url = fallback === undefined ? r.required(key) : r.withDefault(key, fallback);
  if (!/^https:\/\/[^/\s]+/i.test(url)) throw r.error(key, `"${url}" is not an https:// URL`);
  return url.replace(/\/+$/, "");
}
