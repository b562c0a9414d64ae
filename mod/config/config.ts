/**
 * The agent's configuration: one INI file (compatible with resilient-circuits app.config),
 * validated once at start-up into typed objects.
 */
import type { ProxySettings } from "../net/http.ts";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { AgentLogLevel, LogFormat } from "../log/log.ts";
import { ConfigError, ConfigErrors } from "./errors.ts";
import type { TlsTrust } from "../tls/trust.ts";
import { type IniDocument, IniSyntaxError, parseIni } from "./ini.ts";
import { type EffectiveValue, type Env, sameKey, SectionReader } from "./reader.ts";
import { readTicketApi, type TicketApiConfig } from "./ticket_api.ts";
import {
  type GraphConfig,
  type JiraConfig,
  type MailBridgeConfig,
  readGraph,
  readJira,
  readMailBridge,
} from "./mail.ts";

export { ConfigError, ConfigErrors } from "./errors.ts";
export type { GraphConfig, JiraConfig, MailBridgeConfig } from "./mail.ts";
export type { TicketApiConfig } from "./ticket_api.ts";

/** Credentials for the Resilient REST API and the STOMP login. */
export type ResilientAuth =
  | { kind: "api_key"; id: string; secret: string }
  | { kind: "password"; email: string; password: string };

/** `[resilient]`: the platform, as resilient-circuits reads it. */
export interface ResilientConfig {
  host: string;
  port: number;
  org: string;
  auth: ResilientAuth;
  tls: TlsTrust;
  stompHost: string;
  stompPort: number;
  stompTls: TlsTrust;
  numWorkers: number;
  prefetch: number;
  /** ACK and reply in one STOMP transaction: exactly one reply per action, lower throughput. */
  stompTransactions: boolean;
  /** Action message bodies larger than this (KB) are refused unread. */
  stompMaxMessageKb: number;
  logdir?: string | undefined;
  logfile?: string | undefined;
  loglevel?: AgentLogLevel | undefined;
  componentsdir?: string | undefined;
  /** REST request timeout in seconds. */
  timeoutSeconds: number;
  /** `proxy_host`/`proxy_port`/`proxy_user`/`proxy_password`: the way out, for every system. */
  proxy?: ProxySettings | undefined;
}

/** `[taskcalendar]`: the calendar processor (keys of the old task-to-calendar example). */
export interface TaskCalendarConfig {
  queue: string;
  smtpserver?: string | undefined;
  smtpport: number;
  smtpfrom: string;
  smtpuser?: string | undefined;
  smtppw?: string | undefined;
  useStartTls: boolean;
  useSsl: boolean;
  smtpTls: TlsTrust;
  timezone: string;
  allDay: boolean;
  debounceSeconds: number;
  outboxDir: string;
}

/** `[securechange]`: the Tufin SecureChange REST API. */
export interface SecureChangeConfig {
  /** e.g. https://securechange.example.com */
  url: string;
  username: string;
  password: string;
  tls: TlsTrust;
  timeoutSeconds: number;
  proxy?: ProxySettings | undefined;
}

/** `[enrich]`: the SecureChange trigger's enrichment. */
export interface EnrichConfig {
  /** Integrations to run, in comment order; empty = the default set. */
  integrations: string[];
  /** Where user plugins live (`<name>.js` / `.ts` / `.mjs`, and `.py` with `python`). */
  integrationsDir?: string | undefined;
  /** The interpreter that runs the old add-on's Python integrations (opt-in). */
  python?: string | undefined;
  /** SCW_EVENT values to act on. */
  events: string[];
  /** Default time limit per plugin. */
  timeoutSeconds: number;
  maxCommentChars: number;
  /** Post plugin failures in the comment (they always go to the log). */
  postErrors: boolean;
  /** The memory guard: plugins still running are stopped when the agent passes this. */
  maxMemoryMb: number;
}

/** `[agent]`: the agent's own settings. */
export interface AgentSettings {
  store: string;
  logFormat?: LogFormat | undefined;
  logLevel?: AgentLogLevel | undefined;
  httpListen?: string | undefined;
  processorsDir?: string | undefined;
  healthIntervalMinutes: number;
}

/** The whole validated file. Sections that are absent are undefined. */
export interface Config {
  file: string;
  agent: AgentSettings;
  resilient?: ResilientConfig | undefined;
  taskcalendar?: TaskCalendarConfig | undefined;
  securechange?: SecureChangeConfig | undefined;
  enrich?: EnrichConfig | undefined;
  graph?: GraphConfig | undefined;
  jira?: JiraConfig | undefined;
  /** Present when [mail_bridge], [graph] or [jira] is. */
  mailBridge?: MailBridgeConfig | undefined;
  /** The ticket service, when [ticket_api] is present. */
  ticketApi?: TicketApiConfig | undefined;
  /** Sections later capabilities own, kept as raw key/values until they are read. */
  other: Record<string, Record<string, string>>;
  /** Every effective setting by section, for `agent config check`. */
  effective: Map<string, Map<string, EffectiveValue>>;
  /** Keys in the agent's sections that nothing reads (probably typos). */
  warnings: string[];
}

const LEVELS: readonly AgentLogLevel[] = ["debug", "info", "warning", "error"];
/** Sections whose every key the agent reads (unknown keys there are reported). */
const OWN_SECTIONS = [
  "agent",
  "resilient",
  "taskcalendar",
  "securechange",
  "enrich",
  "graph",
  "jira",
  "mail_bridge",
  "ticket_api",
];

/** Where the config file is: --config, then APP_CONFIG_FILE, ./app.config, ~/.resilient/app.config. */
export async function findConfigFile(
  explicit: string | undefined,
  env: Env = (n) => Deno.env.get(n),
): Promise<string | undefined> {
  if (explicit) return explicit;
  const fromEnv = env("APP_CONFIG_FILE");
  if (fromEnv) return fromEnv;
  const candidates = ["app.config", join(homedir(), ".resilient", "app.config")];
  for (const candidate of candidates) {
    if (await exists(candidate)) return candidate;
  }
  return undefined;
}

/** Reads and validates a config file. Throws ConfigError naming file, line, section and key. */
export async function loadConfig(
  file: string,
  options: { env?: Env } = {},
): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "no such file" : String(error);
    throw new ConfigError({ file }, `cannot read config: ${why}`, { cause: error });
  }
  return parseConfig(text, { file, ...options });
}

/** Validates config text (see {@linkcode loadConfig}). */
export function parseConfig(
  text: string,
  options: { file: string; env?: Env },
): Config {
  let doc: IniDocument;
  try {
    doc = parseIni(text, options.file);
  } catch (error) {
    if (error instanceof IniSyntaxError) {
      throw new ConfigError(
        { file: error.file, line: error.line },
        error.message.split(": ").slice(1).join(": "),
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const effective = new Map<string, Map<string, EffectiveValue>>();
  // Every problem of the file is collected, so that one run names them all.
  const problems: ConfigError[] = [];
  const reader = (section: string) => {
    const values = new Map<string, EffectiveValue>();
    effective.set(section, values);
    return new SectionReader(doc, section, { env, effective: values, problems });
  };
  /** A section read; a problem that stops it is collected, and the others are read. */
  const attempt = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      if (!problems.some((p) => sameKey(p, error))) problems.push(error);
      return undefined;
    }
  };

  // Under systemd (StateDirectory=, LogsDirectory=) what the agent writes defaults there,
  // never beside the config.
  const dirs = {
    state: env("STATE_DIRECTORY")?.split(":")[0] || undefined,
    logs: env("LOGS_DIRECTORY")?.split(":")[0] || undefined,
  };
  const readers = new Map(OWN_SECTIONS.map((name) => [name, reader(name)]));
  const agent = attempt(() => readAgent(readers.get("agent")!, options.file, dirs.state))!;
  const resilientReader = readers.get("resilient")!;
  const resilient = resilientReader.present
    ? attempt(() => readResilient(resilientReader, dirs.logs))
    : undefined;
  const calendarReader = readers.get("taskcalendar")!;
  const taskcalendar = calendarReader.present
    ? attempt(() => readTaskCalendar(calendarReader, dirs.state))
    : undefined;
  const scReader = readers.get("securechange")!;
  const securechange = scReader.present ? attempt(() => readSecureChange(scReader)) : undefined;
  const enrichReader = readers.get("enrich")!;
  const enrich = enrichReader.present ? attempt(() => readEnrich(enrichReader)) : undefined;
  const graphReader = readers.get("graph")!;
  const trustIn = (r: SectionReader) => (key: string) => readTrust(r, key, { kind: "system" });
  const graph = graphReader.present
    ? attempt(() => readGraph(graphReader, trustIn(graphReader)))
    : undefined;
  const jiraReader = readers.get("jira")!;
  const jira = jiraReader.present
    ? attempt(() => readJira(jiraReader, trustIn(jiraReader)))
    : undefined;
  // The proxy of [resilient] is every system's way out (resilient-circuits has one proxy).
  for (const system of [graph, jira, securechange]) {
    if (system && resilient?.proxy) system.proxy = resilient.proxy;
  }
  const bridgeReader = readers.get("mail_bridge")!;
  const ticketReader = readers.get("ticket_api")!;
  // The ticket service creates issues as the bridge does: it reads the bridge's settings
  // (projects, categories, labels) even when the bridge itself is not configured.
  const bridgeSettings = bridgeReader.present || graph || jira || ticketReader.present
    ? attempt(() => readMailBridge(bridgeReader, jira?.project ?? "MAIL", dirs.state))
    : undefined;
  const mailBridge = bridgeReader.present || graph || jira ? bridgeSettings : undefined;
  const ticketApi = ticketReader.present && bridgeSettings
    ? attempt(() => readTicketApi(ticketReader, bridgeSettings))
    : undefined;
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) throw new ConfigErrors(problems);
  for (const name of OWN_SECTIONS) if (!doc.sections.has(name)) effective.delete(name);

  const other: Record<string, Record<string, string>> = {};
  for (const [name, entries] of doc.sections) {
    if (OWN_SECTIONS.includes(name)) continue;
    other[name] = Object.fromEntries([...entries].map(([k, e]) => [k, e.value]));
  }
  const warnings = [...readers.values()].flatMap((r) =>
    r.present
      ? r.unusedKeys().map((k) =>
        `${options.file}:${k.line} ${r.section}.${k.key}: unknown key, ignored`
      )
      : []
  );
  return {
    file: options.file,
    agent,
    resilient,
    taskcalendar,
    securechange,
    enrich,
    graph,
    jira,
    mailBridge,
    ticketApi,
    other,
    effective,
    warnings,
  };
}

/**
 * `[agent] store`: a file (relative to the config's folder), `:memory:`, or a KV Connect URL
 * (`https://.../connect`, a remote store shared by agents on several hosts), kept as a URL.
 */
function readStore(r: SectionReader, file: string, stateDir: string | undefined): string {
  const text = r.optional("store");
  if (text !== undefined && (/^https?:\/\//i.test(text) || text === ":memory:")) {
    if (/^http:/i.test(text) && !/^http:\/\/(localhost|127\.0\.0\.1|\[::1\])[:/]/i.test(text)) {
      throw r.error("store", `"${text}" is plain http: a remote store must be https`);
    }
    return text;
  }
  return r.pathWithDefault(
    "store",
    stateDir ? join(stateDir, "agent.kv") : join(dirname(file), "agent.kv"),
  );
}

function readAgent(r: SectionReader, file: string, stateDir: string | undefined): AgentSettings {
  const logFormat = r.optional("log_format");
  if (logFormat !== undefined && logFormat !== "text" && logFormat !== "json") {
    throw r.error("log_format", `"${logFormat}" is not one of text, json`);
  }
  return {
    store: readStore(r, file, stateDir),
    logFormat,
    logLevel: readLevel(r, "log_level"),
    httpListen: r.optional("http_listen"),
    processorsDir: r.path("processors_dir"),
    healthIntervalMinutes: r.int("health_interval_minutes", { default: 5, min: 0, max: 1440 }),
  };
}

function readResilient(r: SectionReader, logsDir: string | undefined): ResilientConfig {
  const host = r.required("host");
  const org = r.required("org");
  const tls = readTrust(r, "cafile", { kind: "system" });
  return {
    host,
    port: r.port("port", 443),
    org,
    auth: readAuth(r),
    tls,
    stompHost: r.withDefault("stomp_host", host),
    stompPort: r.port("stomp_port", 65001),
    stompTls: readTrust(r, "stomp_cafile", tls),
    numWorkers: r.int("num_workers", { default: 10, min: 1, max: 2000 }),
    prefetch: r.int("stomp_prefetch_limit", { default: 0, min: 0, max: 2000 }),
    stompTransactions: r.bool("stomp_transactions", false),
    stompMaxMessageKb: r.int("stomp_max_message_kb", { default: 1024, min: 16, max: 65536 }),
    // Under systemd a home-relative logdir (resilient-circuits' ~/.resilient/logs) cannot
    // be reached (ProtectHome, no home): the service's own log folder stands in for it.
    logdir: logsDir && /^\s*(~|\$HOME|\$\{HOME\})/.test(r.raw("logdir") ?? "")
      ? logsDir
      : r.path("logdir") ?? logsDir,
    logfile: r.optional("logfile"),
    loglevel: readLevel(r, "loglevel"),
    componentsdir: r.path("componentsdir"),
    timeoutSeconds: r.int("timeout", { default: 30, min: 1, max: 3600 }),
    proxy: readProxy(r),
  };
}

/** resilient-circuits' proxy keys: `proxy_host` (with or without http://), `proxy_port`, ... */
function readProxy(r: SectionReader): ProxySettings | undefined {
  const host = r.optional("proxy_host");
  const port = r.optional("proxy_port");
  const username = r.optional("proxy_user");
  const password = r.optional("proxy_password", { secret: true });
  if (!host) {
    if (port || username || password) {
      throw r.error(
        port ? "proxy_port" : "proxy_user",
        "set proxy_host too (the proxy's host name)",
      );
    }
    return undefined;
  }
  const url = host.includes("://") ? host : `http://${host}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw r.error("proxy_host", `"${host}" is not a host name`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw r.error("proxy_host", `"${host}": the proxy is spoken to over http or https`);
  }
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw r.error("proxy_port", `${port} is out of range (1..65535)`);
    }
    parsed.port = String(n);
  }
  return { url: `${parsed.protocol}//${parsed.host}`, username, password };
}

function readAuth(r: SectionReader): ResilientAuth {
  const id = r.optional("api_key_id");
  const secret = r.optional("api_key_secret", { secret: true });
  const email = r.optional("email");
  const password = r.optional("password", { secret: true });
  if (id && secret) return { kind: "api_key", id, secret };
  if (email && password) return { kind: "password", email, password };
  const none: ResilientAuth = { kind: "api_key", id: id ?? "", secret: secret ?? "" };
  if (id || secret || r.has("api_key_id") || r.has("api_key_secret")) {
    return r.problem(
      id ? "api_key_secret" : "api_key_id",
      "missing; api_key_id and api_key_secret go together",
      none,
    );
  }
  if (email || password) {
    return r.problem(
      email ? "password" : "email",
      "missing; email and password go together",
      none,
    );
  }
  return r.problem(
    undefined,
    "no credentials: set api_key_id and api_key_secret (or email and password)",
    none,
  );
}

function readTaskCalendar(r: SectionReader, stateDir: string | undefined): TaskCalendarConfig {
  const useSsl = r.bool("use_ssl", false);
  const useStartTls = r.bool("use_start_tls", false);
  if (useSsl && useStartTls) {
    throw r.error("use_start_tls", "use_ssl (implicit TLS) and use_start_tls cannot both be true");
  }
  const timezone = r.withDefault("timezone", "UTC");
  if (!isTimeZone(timezone)) throw r.error("timezone", `"${timezone}" is not an IANA time zone`);
  return {
    queue: r.withDefault("queue", "taskcalendar"),
    smtpserver: r.optional("smtpserver"),
    smtpport: r.port("smtpport", useSsl ? 465 : useStartTls ? 587 : 25),
    smtpfrom: r.required("smtpfrom"),
    smtpuser: r.optional("smtpuser"),
    smtppw: r.optional("smtppw", { secret: true }),
    useStartTls,
    useSsl,
    smtpTls: readTrust(r, "smtp_cafile", { kind: "system" }),
    timezone,
    allDay: r.bool("all_day", false),
    debounceSeconds: r.decimal("debounce_seconds", { default: 5, min: 0, max: 3600 }),
    outboxDir: r.pathWithDefault("outbox_dir", stateDir ? join(stateDir, "outbox") : "outbox"),
  };
}

function readSecureChange(r: SectionReader): SecureChangeConfig {
  const url = r.required("url");
  if (!/^https:\/\/[^/\s]+/i.test(url)) throw r.error("url", `"${url}" is not an https:// URL`);
  return {
    url,
    username: r.required("username"),
    password: r.required("password", { secret: true }),
    tls: readTrust(r, "cafile", { kind: "system" }),
    timeoutSeconds: r.int("timeout", { default: 30, min: 1, max: 600 }),
  };
}

function readEnrich(r: SectionReader): EnrichConfig {
  return {
    integrations: r.list("integrations"),
    integrationsDir: r.path("integrations_dir"),
    python: r.path("python"),
    events: r.list("events", ["CREATE"]).map((e) => e.toUpperCase()),
    timeoutSeconds: r.int("timeout_seconds", { default: 30, min: 1, max: 3600 }),
    maxCommentChars: r.int("max_comment_chars", { default: 10_000, min: 200, max: 1_000_000 }),
    postErrors: r.bool("post_errors", false),
    maxMemoryMb: r.int("max_memory_mb", { default: 1024, min: 64, max: 65536 }),
  };
}

function readTrust(r: SectionReader, key: string, fallback: TlsTrust): TlsTrust {
  const text = r.optional(key);
  if (text === undefined) return fallback;
  if (text.toLowerCase() === "false") return { kind: "insecure" };
  return { kind: "cafile", path: r.resolvePath(text) };
}

function readLevel(r: SectionReader, key: string): AgentLogLevel | undefined {
  const text = r.optional(key);
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  const level = lower === "warn" ? "warning" : lower === "critical" ? "error" : lower;
  const match = LEVELS.find((l) => l === level);
  if (!match) throw r.error(key, `"${text}" is not a log level (DEBUG, INFO, WARNING, ERROR)`);
  return match;
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
