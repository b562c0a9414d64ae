/**
 * `agent doctor`: for each configured system, DNS, TCP, TLS (chain, expiry, host name) and
 * the credentials, using the same clients the services use, so a pass here means the
 * service will get as far; plus the store, the config file's permissions and clock skew.
 * Nothing is changed anywhere: no mail is sent, no message is consumed (the STOMP check
 * subscribes with a selector that matches nothing), nothing is written to Jira.
 */
import { actionQueue } from "../action_module/message.ts";
import { stompLogin } from "../action_module/core.ts";
import { dirname } from "node:path";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { literalSecrets } from "../config/secrets.ts";
import { Client as StompClient, type IFrame } from "@stomp/stompjs";
import type { Config } from "../config/config.ts";
import { caCertsFor, type TlsTrust } from "../tls/trust.ts";
import { processorFiles, processorsDir } from "../actions/load.ts";
import { DenoStompSocket } from "../stomp/socket.ts";
import { SmtpAuthError } from "../smtp/types.ts";
import { Store } from "../store/store.ts";
import { Tokens } from "../ticket_api/tokens.ts";
import { SIGN_IN_COMMAND } from "../graph/types.ts";
import { checkEndpoint, type EndpointTls } from "./network.ts";
import type { Finding, Status } from "./report.ts";

/** What the checks share. */
interface Context {
  signal: AbortSignal | undefined;
  timeoutMs: number;
  now: () => number;
  /** Server clock minus ours, ms, per system that answered with a Date header. */
  clocks: { system: string; skewMs: number }[];
}

export interface DoctorOptions {
  signal?: AbortSignal | undefined;
  /** Per network step (default 10 s). */
  timeoutMs?: number;
  now?: () => number;
  /** Hears each finding as its system's checks finish. */
  onFinding?: (finding: Finding) => void;
}

/** Clock skew past this breaks tokens and TLS validity checks. */
const SKEW_FAIL_MS = 5 * 60_000;
const SKEW_WARN_MS = 30_000;

/** Runs every check the config calls for; the findings in a stable order. */
export async function runDoctor(config: Config, options: DoctorOptions = {}): Promise<Finding[]> {
  const ctx: Context = {
    signal: options.signal,
    timeoutMs: options.timeoutMs ?? 10_000,
    now: options.now ?? Date.now,
    clocks: [],
  };
  // Each system's rows are handed on as soon as its checks are done (the table grows as
  // the checks finish; a slow system does not hide the others).
  const done = (findings: Finding[]) => {
    for (const f of findings) options.onFinding?.(f);
    return findings;
  };
  const groups = await Promise.all([
    checkConfigFile(config).then(done),
    checkStore(config).then(done),
    config.resilient ? checkResilient(config, ctx).then(done) : [],
    config.taskcalendar ? checkSmtp(config, ctx).then(done) : [],
    config.graph ? checkGraph(config, ctx).then(done) : [],
    config.jira ? checkJira(config, ctx).then(done) : [],
    config.securechange ? checkSecureChange(config, ctx).then(done) : [],
    config.ticketApi ? checkTicketApi(config, ctx).then(done) : [],
  ]);
  return [...groups.flat(), ...done([clockFinding(ctx)])];
}

/** A finding builder for one system. */
function findingsOf(system: string) {
  const list: Finding[] = [];
  const add = (check: string, status: Status, detail: string, hint?: string) => {
    list.push({ system, check, status, detail, ...(hint ? { hint } : {}) });
  };
  return { list, add };
}

/** Runs `fn` with the doctor's time limit; a timeout becomes a clear error. */
async function limited<T>(ctx: Context, what: string, fn: (signal: AbortSignal) => Promise<T>) {
  const timeout = AbortSignal.timeout(ctx.timeoutMs);
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, timeout]) : timeout;
  try {
    return await fn(signal);
  } catch (error) {
    if (timeout.aborted) {
      throw new Error(`${what}: no answer within ${ctx.timeoutMs / 1000} s`, { cause: error });
    }
    throw error;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown }).status;
  return typeof status === "number" ? status : undefined;
}

async function tlsOf(trust: TlsTrust, trustKey: string): Promise<EndpointTls> {
  return { ca: await caCertsFor(trust), insecure: trust.kind === "insecure", trustKey };
}

/** DNS/TCP/TLS of a URL's host; the findings go to `into`. */
async function checkUrl(
  ctx: Context,
  into: Finding[],
  spec: { system: string; url: string; urlKey: string; trust: TlsTrust; trustKey: string },
): Promise<boolean> {
  const url = new URL(spec.url);
  const tls = await tlsOf(spec.trust, spec.trustKey);
  const report = await checkEndpoint({
    system: spec.system,
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || (url.protocol === "http:" ? 80 : 443)),
    hostKey: spec.urlKey,
    tls: url.protocol === "https:" ? tls : undefined,
    timeoutMs: ctx.timeoutMs,
  }, ctx.signal);
  into.push(...report.findings);
  if (report.usable) await readClock(ctx, spec.system, spec.url, tls.ca);
  return report.usable;
}

/** The server's clock from its Date header (any answer has one). */
async function readClock(
  ctx: Context,
  system: string,
  url: string,
  ca: string[] | undefined,
) {
  const client = ca ? Deno.createHttpClient({ caCerts: ca }) : undefined;
  try {
    const sent = ctx.now();
    const response = await limited(ctx, "clock", (signal) =>
      fetch(new URL("/", url), {
        method: "HEAD",
        signal,
        ...(client ? { client } : {}),
      } as RequestInit));
    await response.body?.cancel();
    const date = Date.parse(response.headers.get("date") ?? "");
    // The Date header has whole seconds: compare with the middle of the round trip.
    if (!Number.isNaN(date)) {
      ctx.clocks.push({ system, skewMs: date + 500 - (sent + ctx.now()) / 2 });
    }
  } catch {
    // No clock from this one; the others may have one.
  } finally {
    client?.close();
  }
}

function clockFinding(ctx: Context): Finding {
  const system = "[agent] clock";
  if (!ctx.clocks.length) {
    return {
      system,
      check: "skew",
      status: "skip",
      detail: "no server answered with a Date header to compare with",
    };
  }
  const worst = ctx.clocks.reduce((a, b) => Math.abs(b.skewMs) > Math.abs(a.skewMs) ? b : a);
  const seconds = Math.round(Math.abs(worst.skewMs) / 1000);
  const detail = `largest difference ${seconds} s (${worst.system}); ` +
    `${ctx.clocks.length} server clock(s) compared`;
  const abs = Math.abs(worst.skewMs);
  if (abs > SKEW_FAIL_MS) {
    return {
      system,
      check: "skew",
      status: "fail",
      detail,
      hint: "synchronise this appliance's clock (NTP): tokens and certificates are time-bound",
    };
  }
  if (abs > SKEW_WARN_MS) {
    return { system, check: "skew", status: "warn", detail, hint: "enable NTP on this appliance" };
  }
  return { system, check: "skew", status: "pass", detail };
}

/** Secrets written into a file others can read. */
async function checkConfigFile(config: Config): Promise<Finding[]> {
  const { list, add } = findingsOf("[config] file");
  const literal = literalSecrets(config);
  try {
    const info = await Deno.stat(config.file);
    const mode = info.mode === null ? undefined : info.mode & 0o777;
    const octal = mode === undefined ? "unknown" : `0${mode.toString(8)}`;
    const holds = literal.length
      ? `holds secrets (${literal.join(", ")})`
      : "holds no secrets (they come from the environment)";
    if (mode !== undefined && mode & 0o004 && literal.length) {
      add(
        "permissions",
        "warn",
        `${config.file} is world-readable (mode ${octal}) and ${holds}`,
        `chmod 600 ${config.file}, or move the secrets to environment variables ($NAME)`,
      );
    } else {
      add("permissions", "pass", `${config.file}: mode ${octal}, ${holds}`);
    }
  } catch (error) {
    add("permissions", "fail", `cannot stat ${config.file}: ${message(error)}`);
  }
  for (const warning of config.warnings) {
    add("keys", "warn", warning, "remove the key or fix its spelling");
  }
  return list;
}

/**
 * The store, without changing it: a copy of the file is opened and written (it is a store
 * Deno KV can use), the file itself only opened for writing; a store not made yet is looked
 * for a place. A remote store is read.
 */
async function checkStore(config: Config): Promise<Finding[]> {
  const { list, add } = findingsOf("[agent] store");
  const path = config.agent.store;
  const hint = "check [agent] store: the folder must exist and be writable by the agent's user";
  try {
    if (/^https?:\/\//.test(path)) {
      const store = await Store.open(path);
      try {
        await store.get(["doctor", "probe"]);
      } finally {
        store.close();
      }
      add("readable", "pass", `remote KV ${path} answers`);
      return list;
    }
    const exists = await Deno.stat(path).then(() => true, () => false);
    if (!exists) {
      const where = await writableFolder(dirname(path));
      add("writable", "pass", `${path} does not exist yet; it will be made in ${where}`);
      return list;
    }
    (await Deno.open(path, { read: true, write: true })).close();
    await withStoreCopy(path, async (store) => {
      const key = ["doctor", crypto.randomUUID()];
      await store.set(key, Date.now());
      await store.delete(key);
    });
    const size = await fileSize(path);
    add(
      "writable",
      "pass",
      `${path} writable` + (size === undefined ? "" : `, ${(size / 1024 / 1024).toFixed(1)} MB`),
    );
  } catch (error) {
    add("writable", "fail", `${path}: ${message(error)}`, hint);
  }
  return list;
}

/**
 * Runs `fn` on the store to read it: a copy of a local file (the store itself is never
 * written), a remote store as it is; undefined when the local file does not exist yet.
 */
async function readStore<T>(
  path: string,
  fn: (store: Store) => Promise<T>,
): Promise<T | undefined> {
  if (/^https?:\/\//.test(path)) {
    const store = await Store.open(path);
    try {
      return await fn(store);
    } finally {
      store.close();
    }
  }
  if (!(await Deno.stat(path).then(() => true, () => false))) return undefined;
  return await withStoreCopy(path, fn);
}

/** Runs `fn` on a copy of the store file (the store itself is never written). */
async function withStoreCopy<T>(path: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const copy = await Deno.makeTempDir({ prefix: "agent-doctor-" });
  try {
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.copyFile(`${path}${suffix}`, `${copy}/store${suffix}`).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
    const store = await Store.open(`${copy}/store`);
    try {
      return await fn(store);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(copy, { recursive: true }).catch(() => {});
  }
}

/**
 * The ticket API: its address (free, or already served by an agent), its TLS pair (the
 * certificate and key go together, and when it expires), and that a token exists.
 */
async function checkTicketApi(config: Config, ctx: Context): Promise<Finding[]> {
  const settings = config.ticketApi!;
  const { list, add } = findingsOf("[ticket_api]");
  const { hostname, port } = settings.listen;
  const scheme = settings.tls ? "https" : "http";
  try {
    Deno.listen({ hostname, port }).close();
    add("listen", "pass", `${hostname}:${port} is free to listen on`);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      const url = `${scheme}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}` +
        `${settings.context}/openapi.json`;
      // Who answers there? Only the document's title is looked at: the certificate is the
      // tls row's business (node:https, because fetch cannot skip verification).
      const ours = await limited(ctx, "ticket API", async (signal) => {
        const get = settings.tls ? httpsGet : httpGet;
        // A `ca` of our own keeps node:tls from loading the system's (which needs sys access).
        const ca = settings.tls ? [await Deno.readTextFile(settings.tls.certFile)] : undefined;
        const text = await new Promise<string>((resolve, reject) => {
          const request = get(url, { rejectUnauthorized: false, ca, signal }, (response) => {
            let body = "";
            response.setEncoding("utf8");
            response.on("data", (chunk: string) => (body += chunk));
            response.on("end", () => resolve(body));
            response.on("error", reject);
          });
          request.on("error", reject);
        });
        return (JSON.parse(text) as { info?: { title?: string } }).info?.title === "Tickets API";
      }).catch(() => false);
      if (ours) add("listen", "pass", `${hostname}:${port}: an agent serves the ticket API there`);
      else {
        add(
          "listen",
          "fail",
          `${hostname}:${port} is taken by something else`,
          "choose another [ticket_api] listen, or stop what uses the port",
        );
      }
    } else {
      add(
        "listen",
        "fail",
        `cannot listen on ${hostname}:${port}: ${message(error)}`,
        "[ticket_api] listen must be an address of this host",
      );
    }
  }
  if (settings.tls) {
    try {
      const cert = await Deno.readTextFile(settings.tls.certFile);
      const key = await Deno.readTextFile(settings.tls.keyFile);
      // The pair must make a TLS listener: a key that is not the certificate's fails here.
      Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key }).close();
      const { X509Certificate } = await import("node:crypto");
      const x509 = new X509Certificate(cert);
      const days = Math.floor((Date.parse(x509.validTo) - ctx.now()) / 86_400_000);
      const names = x509.subjectAltName ?? x509.subject;
      if (days < 0) {
        add("tls", "fail", `${settings.tls.certFile} expired on ${x509.validTo}`, "renew it");
      } else {
        add(
          "tls",
          days < 14 ? "warn" : "pass",
          `certificate for ${names}, valid until ${x509.validTo} (${days} days)`,
          days < 14 ? "renew it soon" : undefined,
        );
      }
    } catch (error) {
      add(
        "tls",
        "fail",
        `${settings.tls.certFile} / ${settings.tls.keyFile}: ${message(error)}`,
        "tls_cert is the PEM certificate chain, tls_key its PEM private key",
      );
    }
  }
  try {
    const count = await readStore(config.agent.store, (store) => new Tokens(store).count()) ?? 0;
    if (count) add("tokens", "pass", `${count} token(s)`);
    else {
      add(
        "tokens",
        "fail",
        "no token: every route but the Swagger UI answers 401",
        "make one: agent ticket-api token create NAME (--scope read for read-only clients)",
      );
    }
  } catch (error) {
    add("tokens", "fail", `cannot read the tokens: ${message(error)}`);
  }
  return list;
}

/**
 * The folder where `path` would be made: its nearest existing ancestor, proven writable by
 * a file made and removed there (no folder is created). Throws naming why not.
 */
async function writableFolder(path: string): Promise<string> {
  let dir = path;
  while (!(await Deno.stat(dir).then((i) => i.isDirectory, () => false))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no folder of ${path} exists`);
    dir = up;
  }
  const probe = `${dir}/.agent-doctor-${crypto.randomUUID()}`;
  await Deno.writeTextFile(probe, "", { createNew: true });
  await Deno.remove(probe);
  return dir;
}

async function fileSize(path: string): Promise<number | undefined> {
  let total = 0;
  // SQLite keeps recent writes in the -wal file beside the store.
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      total += (await Deno.stat(file)).size;
    } catch { /* absent */ }
  }
  return total || undefined;
}

/** REST (login, org, Action Module enabled) and STOMP (login, a subscription per queue). */
async function checkResilient(config: Config, ctx: Context): Promise<Finding[]> {
  const r = config.resilient!;
  const rest = findingsOf("[resilient] REST");
  const restUsable = await checkUrl(ctx, rest.list, {
    system: "[resilient] REST",
    url: `https://${r.host}:${r.port}`,
    urlKey: "[resilient] host",
    trust: r.tls,
    trustKey: "[resilient] cafile",
  });
  let orgId: number | undefined;
  if (restUsable) {
    const who = r.auth.kind === "api_key" ? `API key "${r.auth.id}"` : `"${r.auth.email}"`;
    try {
      const { RestClient } = await import("../resilient/rest.ts");
      const client = await limited(ctx, "login", (signal) => RestClient.fromConfig(r, { signal }));
      orgId = client.orgId;
      rest.add("login", "pass", `${who} logged in; org "${r.org}" is id ${orgId}`);
      const org = await limited(
        ctx,
        "org",
        (signal) =>
          client.get<{ actions_framework_enabled?: boolean }>(`/rest/orgs/${orgId}`, { signal }),
      );
      // The version is a nicety for the row: no answer is not a failure.
      const version = await limited(
        ctx,
        "const",
        (signal) =>
          client.get<{ server_version?: { version?: string } }>("/rest/const", { signal }),
      ).then((c) => c.server_version?.version, () => undefined);
      const on = version ? ` (platform ${version})` : "";
      if (org.actions_framework_enabled === false) {
        rest.add(
          "action module",
          "fail",
          `org "${r.org}" has the Action Module (actions framework) switched off${on}`,
          "ask the platform administrator to enable it for the org",
        );
      } else {
        rest.add("action module", "pass", `enabled for org "${r.org}"${on}`);
      }
    } catch (error) {
      const status = statusOf(error);
      rest.add(
        "login",
        "fail",
        message(error),
        status === 401 || status === 403
          ? r.auth.kind === "api_key"
            ? "check [resilient] api_key_id and api_key_secret (the key may be deleted or expired)"
            : "check [resilient] email and password"
          : /Org "/.test(message(error))
          ? "check [resilient] org: it must be the org's name exactly"
          : undefined,
      );
    }
  }

  const stomp = findingsOf("[resilient] STOMP");
  const report = await checkEndpoint({
    system: "[resilient] STOMP",
    host: r.stompHost,
    port: r.stompPort,
    hostKey: "[resilient] stomp_host",
    tls: await tlsOf(r.stompTls, "[resilient] stomp_cafile"),
    timeoutMs: ctx.timeoutMs,
  }, ctx.signal);
  stomp.list.push(...report.findings);
  if (report.usable) {
    if (orgId === undefined) {
      stomp.add("subscribe", "skip", "needs the org id from a REST login, which failed");
    } else {
      const queues = await actionQueues(config);
      stomp.list.push(...await stompSubscribe(config, orgId, queues, ctx));
    }
  }
  return [...rest.list, ...stomp.list];
}

/** The queues the action service would listen on. */
async function actionQueues(config: Config): Promise<string[]> {
  const queues = new Set<string>();
  if (config.taskcalendar) queues.add(config.taskcalendar.queue);
  const dir = processorsDir(config);
  if (dir) {
    try {
      for (const name of (await processorFiles(dir)).keys()) {
        // A processor's own default queue is in its module; the config's key wins over it,
        // and loading user code just to learn the name is more than a check should do.
        queues.add(config.other[name]?.["queue"] || name);
      }
    } catch { /* the processors check of `agent actions list` reports this */ }
  }
  return [...queues];
}

/** Logs in over STOMP and subscribes to each queue without taking a message. */
async function stompSubscribe(
  config: Config,
  orgId: number,
  queues: string[],
  ctx: Context,
): Promise<Finding[]> {
  const r = config.resilient!;
  const { list, add } = findingsOf("[resilient] STOMP");
  const login = stompLogin(r);
  const ca = await caCertsFor(r.stompTls);
  const errors: string[] = [];
  const connected = Promise.withResolvers<void>();
  const client = new StompClient({
    webSocketFactory: () =>
      new DenoStompSocket({ hostname: r.stompHost, port: r.stompPort, tls: { caCerts: ca } }),
    connectHeaders: { ...login, host: r.stompHost },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectionTimeout: ctx.timeoutMs,
    onConnect: () => connected.resolve(),
    onStompError: (frame: IFrame) => {
      const why = frame.headers["message"] ?? frame.body ?? "ERROR frame";
      errors.push(why);
      connected.reject(new Error(why));
    },
    onWebSocketClose: () => connected.reject(new Error(errors.at(-1) ?? "connection closed")),
    debug: () => {},
  });
  client.activate();
  try {
    await limited(ctx, "STOMP login", () => connected.promise);
    add("login", "pass", `"${login.login}" logged in to the broker`);
  } catch (error) {
    add(
      "login",
      "fail",
      `the broker refused the login of "${login.login}": ${message(error)}`,
      "the STOMP login is the [resilient] API key (or email/password); check it",
    );
    await client.deactivate();
    return list;
  }
  if (!queues.length) {
    add("subscribe", "skip", "no action queues configured ([taskcalendar] or processors_dir)");
  }
  for (const queue of queues) {
    const destination = actionQueue(orgId, queue);
    const receipt = `doctor-${crypto.randomUUID()}`;
    const confirmed = Promise.withResolvers<void>();
    client.watchForReceipt(receipt, () => confirmed.resolve());
    const before = errors.length;
    try {
      const subscription = client.subscribe(destination, () => {}, {
        id: `doctor-${queue}`,
        ack: "client-individual",
        // Matches no message: the check proves the right to read without taking anything.
        selector: "1 = 0",
        receipt,
      });
      await limited(ctx, `subscribe ${destination}`, () =>
        Promise.race([
          confirmed.promise,
          connected.promise.then(() => new Promise<never>(() => {})),
        ]));
      subscription.unsubscribe();
      if (errors.length > before) throw new Error(errors.at(-1));
      add("queue", "pass", `subscribed to ${destination}`);
    } catch (error) {
      add(
        "queue",
        "fail",
        `cannot subscribe to ${destination}: ${errors.at(-1) ?? message(error)}`,
        `does the platform have a message destination "${queue}" the API key may read?`,
      );
    }
  }
  await client.deactivate();
  return list;
}

/** SMTP: the endpoint (STARTTLS handshake included), then EHLO/STARTTLS/AUTH by nodemailer. */
async function checkSmtp(config: Config, ctx: Context): Promise<Finding[]> {
  const c = config.taskcalendar!;
  const { list, add } = findingsOf("[taskcalendar] SMTP");
  if (!c.smtpserver) {
    try {
      const where = await writableFolder(c.outboxDir);
      add(
        "outbox",
        "pass",
        `no smtpserver: invites are written to ${c.outboxDir} (` +
          (where === c.outboxDir ? "writable)" : `to be made in ${where}, writable)`),
      );
    } catch (error) {
      add("outbox", "fail", `${c.outboxDir}: ${message(error)}`, "check [taskcalendar] outbox_dir");
    }
    return list;
  }
  const report = await checkEndpoint({
    system: "[taskcalendar] SMTP",
    host: c.smtpserver,
    port: c.smtpport,
    hostKey: "[taskcalendar] smtpserver",
    tls: c.useSsl || c.useStartTls
      ? {
        ...await tlsOf(c.smtpTls, "[taskcalendar] smtp_cafile"),
        ...(c.useSsl ? {} : { startTls: "smtp" as const }),
      }
      : undefined,
    timeoutMs: ctx.timeoutMs,
  }, ctx.signal);
  list.push(...report.findings);
  if (!report.usable) return list;
  const { SmtpMailer } = await import("../smtp/mailer.ts");
  let mailer: Awaited<ReturnType<typeof SmtpMailer.fromConfig>>;
  try {
    mailer = await SmtpMailer.fromConfig(c, config.file);
  } catch (error) {
    add("session", "fail", message(error));
    return list;
  }
  try {
    add("session", "pass", await limited(ctx, "SMTP", () => mailer!.verify()));
  } catch (error) {
    const refusedLogin = error instanceof SmtpAuthError;
    add(
      refusedLogin ? "auth" : "session",
      "fail",
      message(error),
      refusedLogin ? "check [taskcalendar] smtpuser and smtppw" : undefined,
    );
  } finally {
    mailer?.close();
  }
  return list;
}

/** Graph: the token endpoint and Graph itself, a token, one read of the mailbox. */
async function checkGraph(config: Config, ctx: Context): Promise<Finding[]> {
  const g = config.graph!;
  const { list, add } = findingsOf("[graph]");
  const [authority, graph] = await Promise.all([
    checkUrl(ctx, list, {
      system: "[graph]",
      url: g.authorityHost,
      urlKey: "[graph] authority_host",
      trust: g.tls,
      trustKey: "[graph] cafile",
    }),
    new URL(g.graphUrl).host === new URL(g.authorityHost).host
      ? Promise.resolve(true)
      : checkUrl(ctx, list, {
        system: "[graph]",
        url: g.graphUrl,
        urlKey: "[graph] graph_url",
        trust: g.tls,
        trustKey: "[graph] cafile",
      }),
  ]);
  if (!authority) return list;
  if (g.auth === "delegated") {
    // The sign-in lives in the store: checked on a copy of it (nothing written).
    const checked = await readStore(
      config.agent.store,
      (store) => checkGraphWith(g, ctx, list, add, graph, store),
    );
    if (!checked) {
      add("sign-in", "fail", "nobody has signed in yet (no store)", `run: ${SIGN_IN_COMMAND}`);
    }
    return list;
  }
  return await checkGraphWith(g, ctx, list, add, graph, undefined);
}

async function checkGraphWith(
  g: NonNullable<Config["graph"]>,
  ctx: Context,
  list: Finding[],
  add: ReturnType<typeof findingsOf>["add"],
  graph: boolean,
  store: Store | undefined,
): Promise<Finding[]> {
  const { MsalTokenSource, signInOf, REFRESH_TOKEN_IDLE_DAYS } = await import("../graph/token.ts");
  const { GraphMailbox } = await import("../graph/client.ts");
  if (store) {
    const signIn = await signInOf(store, g);
    if (!signIn) {
      add("sign-in", "fail", "nobody has signed in yet", `run: ${SIGN_IN_COMMAND}`);
      return list;
    }
    const idle = Math.floor((ctx.now() - Date.parse(signIn.refreshedAt)) / 86_400_000);
    const left = REFRESH_TOKEN_IDLE_DAYS - idle;
    add(
      "sign-in",
      left <= 0 ? "fail" : left <= 14 ? "warn" : "pass",
      `${signIn.username}, signed in ${signIn.signedInAt.slice(0, 10)}, token last refreshed ` +
        `${idle} day(s) ago` + (left <= 14
          ? ` (the refresh token lapses after ${REFRESH_TOKEN_IDLE_DAYS} idle days)`
          : ""),
      left <= 14 ? `run: ${SIGN_IN_COMMAND}` : undefined,
    );
  }
  const tokens = await MsalTokenSource.fromConfig(g, { store });
  try {
    await limited(ctx, "token", () => tokens.token({ force: true }));
    add(
      "token",
      "pass",
      g.auth === "delegated"
        ? `a token for the signed-in user from tenant ${g.tenantId}`
        : `app ${g.clientId} got a token from tenant ${g.tenantId}`,
    );
  } catch (error) {
    add(
      "token",
      "fail",
      message(error),
      g.auth === "delegated"
        ? `sign in again: ${SIGN_IN_COMMAND}`
        : g.credential?.kind === "secret"
        ? "check [graph] tenant_id, client_id and client_secret (secrets expire)"
        : "check [graph] tenant_id, client_id and the certificate's thumbprint and key",
    );
    return list;
  }
  if (!graph) return list;
  try {
    const mailbox = await GraphMailbox.fromConfig(g, tokens);
    await limited(ctx, "mailbox", (signal) => mailbox.probe(signal));
    add("mailbox", "pass", `read ${g.mailbox} (${g.folders.join(", ")})`);
  } catch (error) {
    const status = statusOf(error);
    add(
      "mailbox",
      "fail",
      message(error),
      status === 403
        ? g.auth === "delegated"
          ? "the signed-in user needs access to this mailbox (its own, or Full Access)"
          : "grant the app Mail.ReadWrite (application) with admin consent, and check any " +
            "application access policy that limits it to some mailboxes"
        : status === 404
        ? "check [graph] mailbox and folders"
        : undefined,
    );
  }
  return list;
}

/** Jira: who the credentials are, and each project the bridge may create in, with its type. */
async function checkJira(config: Config, ctx: Context): Promise<Finding[]> {
  const j = config.jira!;
  const { list, add } = findingsOf("[jira]");
  if (
    !await checkUrl(ctx, list, {
      system: "[jira]",
      url: j.url,
      urlKey: "[jira] url",
      trust: j.tls,
      trustKey: "[jira] cafile",
    })
  ) return list;
  const { JiraTracker } = await import("../jira/client.ts");
  const jira = await JiraTracker.fromConfig(j);
  try {
    const me = await limited(ctx, "Jira", (signal) => jira.whoami(signal));
    add("auth", "pass", `${j.deployment === "cloud" ? "Cloud" : "Server/DC"}: logged in as ${me}`);
  } catch (error) {
    const status = statusOf(error);
    add(
      "auth",
      "fail",
      message(error),
      status === 401 || status === 403
        ? j.auth.kind === "basic"
          ? "check [jira] user and api_token (Cloud: an API token, not the password)"
          : "check [jira] personal_access_token"
        : "is [jira] url the base URL (https://example.atlassian.net or the Server context)?",
    );
    return list;
  }
  const bridge = config.mailBridge;
  const projects = new Set([
    j.project,
    ...(bridge?.projectKeys ?? []),
    ...(bridge?.projects.values() ?? []),
  ]);
  for (const project of projects) {
    try {
      const types = await limited(ctx, "Jira", (signal) => jira.issueTypes(project, signal));
      if (types.some((t) => t.toLowerCase() === j.issueType.toLowerCase())) {
        add(`project ${project}`, "pass", `exists, with issue type "${j.issueType}"`);
      } else {
        add(
          `project ${project}`,
          "fail",
          `has no issue type "${j.issueType}" (it has: ${types.join(", ") || "none"})`,
          "set [jira] issue_type to one of those",
        );
      }
    } catch (error) {
      const status = statusOf(error);
      add(
        `project ${project}`,
        "fail",
        status === 404
          ? `project "${project}" does not exist, or the account cannot see it`
          : message(error),
        status === 404
          ? "check the project key in [jira] project / [mail_bridge], and the account's project permissions"
          : undefined,
      );
    }
  }
  return list;
}

/** SecureChange: one authenticated read. */
async function checkSecureChange(config: Config, ctx: Context): Promise<Finding[]> {
  const s = config.securechange!;
  const { list, add } = findingsOf("[securechange]");
  if (
    !await checkUrl(ctx, list, {
      system: "[securechange]",
      url: s.url,
      urlKey: "[securechange] url",
      trust: s.tls,
      trustKey: "[securechange] cafile",
    })
  ) return list;
  const { SecureChangeClient } = await import("../securechange/client.ts");
  const client = new SecureChangeClient({
    url: s.url,
    username: s.username,
    password: s.password,
    caCerts: await caCertsFor(s.tls),
    proxy: s.proxy,
    timeoutMs: ctx.timeoutMs,
  });
  try {
    const workflows = await limited(ctx, "SecureChange", (signal) => client.probe({ signal }));
    add("auth", "pass", `"${s.username}" logged in; ${workflows} workflow(s) visible`);
  } catch (error) {
    const status = statusOf(error);
    add(
      "auth",
      "fail",
      message(error),
      status === 401
        ? "check [securechange] username and password"
        : status === 403
        ? "the user needs API access in SecureChange"
        : undefined,
    );
  }
  return list;
}
