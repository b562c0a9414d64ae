/**
 * The network half of `agent doctor`: DNS, TCP and TLS for one endpoint. node:tls (not
 * Deno.connectTls) because only it shows the peer certificate: its expiry date, its names
 * and its issuer, also when verification fails, so the report can say why.
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import tls from "node:tls";
import type { Finding } from "./report.ts";

/** How to check an endpoint's TLS. */
export interface EndpointTls {
  ca?: string[] | undefined;
  /** Verification switched off in the config (reported as a warning). */
  insecure?: boolean;
  /** Speak SMTP up to STARTTLS before the handshake. */
  startTls?: "smtp";
  /** e.g. "[resilient] stomp_cafile": where the CA bundle is set. */
  trustKey: string;
}

/** One endpoint to check, with the config keys a hint should name. */
export interface Endpoint {
  system: string;
  host: string;
  port: number;
  /** e.g. "[resilient] host": where the host name comes from. */
  hostKey: string;
  /** Undefined: plain TCP, no TLS. */
  tls?: EndpointTls | undefined;
  timeoutMs: number;
}

/** The findings, and whether the endpoint can be used for the checks that follow. */
export interface EndpointReport {
  findings: Finding[];
  usable: boolean;
}

/** Certificates expiring sooner than this are a warning. */
const EXPIRY_WARNING_DAYS = 14;

export async function checkEndpoint(
  endpoint: Endpoint,
  signal?: AbortSignal,
): Promise<EndpointReport> {
  const findings: Finding[] = [];
  const found = (check: string, status: Finding["status"], detail: string, hint?: string) =>
    findings.push({ system: endpoint.system, check, status, detail, ...(hint ? { hint } : {}) });
  const { host, port } = endpoint;

  if (net.isIP(host)) {
    found("dns", "pass", `${host} is an address (no lookup)`);
  } else {
    try {
      const addresses = await lookup(host, { all: true });
      found("dns", "pass", `${host} -> ${addresses.map((a) => a.address).join(", ")}`);
    } catch (error) {
      found(
        "dns",
        "fail",
        `${host} does not resolve (${(error as { code?: string }).code ?? error})`,
        `check ${endpoint.hostKey} and the appliance's DNS servers`,
      );
      return { findings, usable: false };
    }
  }

  const started = performance.now();
  let socket: net.Socket;
  try {
    socket = await connectTcp(host, port, endpoint.timeoutMs, signal);
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === "ECONNREFUSED"
      ? "connection refused: nothing listens there"
      : code === "ETIMEDOUT"
      ? `no answer within ${endpoint.timeoutMs / 1000} s`
      : (error as Error).message;
    found(
      "tcp",
      "fail",
      `${host}:${port}: ${why}`,
      code === "ECONNREFUSED"
        ? `is the service running on port ${port}? check ${endpoint.hostKey} and its port`
        : "a firewall on the way, or the wrong port",
    );
    return { findings, usable: false };
  }
  found(
    "tcp",
    "pass",
    `${host}:${port} connected in ${Math.round(performance.now() - started)} ms`,
  );
  if (!endpoint.tls) {
    socket.destroy();
    return { findings, usable: true };
  }

  try {
    if (endpoint.tls.startTls === "smtp") await smtpStartTls(socket, endpoint.timeoutMs);
    const peer = await handshake(socket, endpoint, signal);
    const tlsFinding = judgeCertificate(endpoint, peer);
    findings.push(tlsFinding);
    return { findings, usable: tlsFinding.status !== "fail" };
  } catch (error) {
    found(
      "tls",
      "fail",
      `${host}:${port}: TLS handshake failed: ${(error as Error).message}`,
      endpoint.tls.startTls
        ? "the server must offer STARTTLS, or set use_start_tls = false (plain SMTP)"
        : "is this port TLS? check the port and that the server speaks TLS there",
    );
    return { findings, usable: false };
  } finally {
    socket.destroy();
  }
}

function connectTcp(
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    const abort = () => {
      socket.destroy();
      reject(signal?.reason ?? new Error("aborted"));
    };
    signal?.addEventListener("abort", abort, { once: true });
    socket.once("connect", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      reject(error);
    });
  });
}

/** Greeting, EHLO, STARTTLS: the plain part of an SMTP session, up to the handshake. */
async function smtpStartTls(socket: net.Socket, timeoutMs: number): Promise<void> {
  const replies = smtpReplies(socket, timeoutMs);
  const expect = async (code: string, after: string) => {
    const reply = await replies.next();
    if (!reply.startsWith(code)) {
      throw new Error(`the server answered ${after} with "${reply.split("\n").pop()}"`);
    }
    return reply;
  };
  await expect("220", "the connection");
  socket.write("EHLO agent-doctor\r\n");
  const ehlo = await expect("250", "EHLO");
  if (!/^250[ -]STARTTLS/im.test(ehlo)) throw new Error("the server does not offer STARTTLS");
  socket.write("STARTTLS\r\n");
  await expect("220", "STARTTLS");
  replies.stop();
}

/** Reads SMTP replies (multi-line ones joined) from a plain socket. */
function smtpReplies(socket: net.Socket, timeoutMs: number) {
  let buffer = "";
  let lines: string[] = [];
  const complete: string[] = [];
  let waiting: ((reply: string) => void) | undefined;
  const onData = (chunk: Uint8Array | string) => {
    buffer += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    let end: number;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        complete.push(lines.join("\n"));
        lines = [];
      }
    }
    if (waiting && complete.length) {
      const resolve = waiting;
      waiting = undefined;
      resolve(complete.shift()!);
    }
  };
  socket.on("data", onData);
  return {
    next(): Promise<string> {
      if (complete.length) return Promise.resolve(complete.shift()!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no SMTP reply within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
        waiting = (reply) => {
          clearTimeout(timer);
          resolve(reply);
        };
      });
    },
    stop() {
      socket.off("data", onData);
    },
  };
}

interface Peer {
  certificate: tls.DetailedPeerCertificate;
  authorizationError: string | undefined;
  protocol: string | null;
}

/** The handshake without verification, so that a failing certificate can still be read. */
function handshake(socket: net.Socket, endpoint: Endpoint, signal?: AbortSignal): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      ...(net.isIP(endpoint.host) ? {} : { servername: endpoint.host }),
      ...(endpoint.tls?.ca ? { ca: endpoint.tls.ca } : {}),
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new Error(`no handshake within ${endpoint.timeoutMs / 1000} s`));
    }, endpoint.timeoutMs);
    const abort = () => secure.destroy();
    signal?.addEventListener("abort", abort, { once: true });
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      const error = secure.authorizationError as Error | string | null | undefined;
      resolve({
        certificate: secure.getPeerCertificate(true),
        authorizationError: error ? String((error as Error).message ?? error) : undefined,
        protocol: secure.getProtocol(),
      });
      secure.destroy();
    });
    secure.once("error", (error) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      reject(error);
    });
  });
}

/** Trust, expiry and host name of the peer's certificate, as one finding. */
export function judgeCertificate(endpoint: Endpoint, peer: Peer, now = Date.now()): Finding {
  const { certificate: cert } = peer;
  const trustKey = endpoint.tls?.trustKey ?? "the CA bundle";
  const base = { system: endpoint.system, check: "tls" };
  const subject = cert.subject?.CN ?? "(no CN)";
  const issuer = cert.issuer?.CN ?? "(no CN)";
  const names = (cert.subjectaltname ?? "").replace(/IP Address:/g, "IP:") || `CN=${subject}`;
  const notAfter = Date.parse(cert.valid_to);
  const notBefore = Date.parse(cert.valid_from);
  const where = `${endpoint.host}:${endpoint.port}`;
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

  if (endpoint.tls?.insecure) {
    return {
      ...base,
      status: "warn",
      detail: `${where}: certificate NOT verified (insecure trust in the config); it is for ` +
        `${names}, issued by ${issuer}, valid until ${day(notAfter)}`,
      hint: `set ${trustKey} to the CA that issued it instead of switching verification off`,
    };
  }
  if (notAfter < now) {
    return {
      ...base,
      status: "fail",
      detail: `${where}: the certificate (${names}) expired on ${day(notAfter)}`,
      hint: `renew the certificate on ${endpoint.host}; the agent refuses expired ones`,
    };
  }
  if (notBefore > now) {
    return {
      ...base,
      status: "fail",
      detail: `${where}: the certificate is not valid before ${new Date(notBefore).toISOString()}`,
      hint: "check the clock of this appliance (and of the server)",
    };
  }
  const identity = tls.checkServerIdentity(endpoint.host, cert);
  if (identity) {
    return {
      ...base,
      status: "fail",
      detail: `${where}: the certificate is for ${names}, not "${endpoint.host}"`,
      hint: `set ${endpoint.hostKey} to a name the certificate lists, or reissue the certificate`,
    };
  }
  if (peer.authorizationError) {
    return {
      ...base,
      status: "fail",
      detail: `${where}: the certificate (${names}) is issued by "${issuer}", ` +
        `which is not trusted (${peer.authorizationError})`,
      hint: `set ${trustKey} to a PEM file with the CA that issued it`,
    };
  }
  const daysLeft = Math.floor((notAfter - now) / 86_400_000);
  const detail = `${where}: ${peer.protocol ?? "TLS"}, certificate for ${names} ` +
    `issued by "${issuer}", valid until ${day(notAfter)} (${daysLeft} days)`;
  if (daysLeft < EXPIRY_WARNING_DAYS) {
    return { ...base, status: "warn", detail, hint: `renew the certificate on ${endpoint.host}` };
  }
  return { ...base, status: "pass", detail };
}
