/**
 * Mail delivery with nodemailer: a pooled SMTP transport (STARTTLS required and verified
 * when asked, implicit TLS, AUTH), temporary failures (4xx, connection refused, timeouts)
 * retried with backoff within a deadline, permanent ones (5xx, TLS trust, AUTH) reported
 * with the server's answer; or, with no SMTP server configured, .eml files in a folder.
 * Either way the message is composed once (./compose.ts) and goes out as those bytes.
 */
// @ts-types="@types/nodemailer"
import nodemailer from "nodemailer";
import { ConfigError, type TaskCalendarConfig } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { log } from "../log/log.ts";
import { abortableSleep } from "../async/delay.ts";
import { tlsErrorFrom } from "../tls/errors.ts";
import { composeInvite } from "./compose.ts";
import {
  type InviteMail,
  type Mailer,
  PermanentMailError,
  type SendResult,
  SmtpAuthError,
} from "./types.ts";

const logger = log("smtp");

/** Options for {@linkcode SmtpMailer}. */
export interface SmtpOptions {
  host: string;
  port: number;
  /** Implicit TLS (SMTPS, usually port 465). */
  secure: boolean;
  /** Require STARTTLS (fail when the server does not offer it). */
  requireStartTls: boolean;
  auth?: { user: string; pass: string } | undefined;
  /** PEM CA bundle to trust instead of the system roots. */
  ca?: string | undefined;
  /** Give up on a mail after this long (temporary failures are retried until then). */
  deadlineMs?: number;
  /** Backoff delays, ms; the last one repeats. */
  retryDelaysMs?: number[];
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  maxConnections?: number;
}

/** The part of a nodemailer transporter we use (its typings vary by transport kind). */
interface Transporter {
  /** `raw`: the composed message (./compose.ts), sent as it is to the envelope's address. */
  sendMail(mail: { envelope: { from: string; to: string[] }; raw: Uint8Array }): Promise<{
    response?: string;
    rejected?: unknown[];
  }>;
  /** Connects, EHLO, STARTTLS and AUTH as configured, then QUIT: no mail is sent. */
  verify(): Promise<true>;
  close(): void;
}

/** SMTP delivery (see module doc). */
export class SmtpMailer implements Mailer {
  readonly #o: SmtpOptions;
  readonly #transport: Transporter;

  constructor(options: SmtpOptions) {
    this.#o = options;
    const plain = !options.secure && !options.requireStartTls;
    this.#transport = nodemailer.createTransport({
      pool: true,
      maxConnections: options.maxConnections ?? 3,
      host: options.host,
      port: options.port,
      secure: options.secure,
      requireTLS: options.requireStartTls,
      // use_start_tls = false and use_ssl = false mean plain SMTP, as configured.
      ignoreTLS: plain,
      ...(options.auth ? { auth: options.auth } : {}),
      tls: {
        rejectUnauthorized: true,
        ...(options.ca ? { ca: [options.ca] } : {}),
        servername: options.host,
      },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    }) as unknown as Transporter;
  }

  /** From `[taskcalendar]`; undefined when no smtpserver is configured. */
  static async fromConfig(
    config: TaskCalendarConfig,
    file: string,
  ): Promise<SmtpMailer | undefined> {
    if (!config.smtpserver) return undefined;
    if ((config.useSsl || config.useStartTls) && isIp(config.smtpserver)) {
      // Deno's node:tls always sends the host as SNI, which TLS forbids for IP addresses.
      throw new ConfigError(
        { file, section: "taskcalendar", key: "smtpserver" },
        `"${config.smtpserver}" is an IP address; with TLS, give the host name the server's certificate names`,
      );
    }
    const ca = (await caCertsFor(config.smtpTls, "smtp_cafile"))?.[0];
    return new SmtpMailer({
      host: config.smtpserver,
      port: config.smtpport,
      secure: config.useSsl,
      requireStartTls: config.useStartTls,
      auth: config.smtpuser ? { user: config.smtpuser, pass: config.smtppw ?? "" } : undefined,
      ca,
    });
  }

  async send(mail: InviteMail, { signal }: { signal?: AbortSignal } = {}): Promise<SendResult> {
    const deadline = Date.now() + (this.#o.deadlineMs ?? 120_000);
    const delays = this.#o.retryDelaysMs ?? [1_000, 2_000, 4_000, 8_000, 15_000];
    const sleep = this.#o.sleep ?? abortableSleep;
    const server = `${this.#o.host}:${this.#o.port}`;
    for (let attempt = 0;; attempt++) {
      try {
        const info = await this.#transport.sendMail({
          // The SMTP envelope names the one recipient itself: whatever the headers say.
          envelope: { from: mail.from, to: [mail.to] },
          raw: composeInvite(mail),
        });
        if (info.rejected?.length) {
          throw new PermanentMailError(
            `SMTP server ${server} rejected ${mail.to}: ${info.response}`,
          );
        }
        return { kind: "smtp", detail: String(info.response ?? "accepted") };
      } catch (error) {
        const failure = classify(error, server, mail.to);
        if (failure instanceof PermanentMailError) throw failure;
        const delay = delays[Math.min(attempt, delays.length - 1)]!;
        if (signal?.aborted || Date.now() + delay > deadline) {
          throw new Error(`${failure.message}; gave up after ${attempt + 1} attempts`, {
            cause: error,
          });
        }
        logger.warn("{reason}; retrying in {delayMs} ms", {
          reason: failure.message,
          delayMs: delay,
        });
        await sleep(delay, signal);
      }
    }
  }

  /**
   * EHLO, STARTTLS and AUTH as configured, without sending mail (`agent doctor`). Resolves
   * to what was proven; throws the same errors `send` would, naming the server.
   */
  async verify(): Promise<string> {
    const server = `${this.#o.host}:${this.#o.port}`;
    try {
      await this.#transport.verify();
    } catch (error) {
      throw classify(error, server);
    }
    const tls = this.#o.secure ? "TLS" : this.#o.requireStartTls ? "STARTTLS" : "plain";
    return `${server}: EHLO, ${tls}` + (this.#o.auth ? `, AUTH as "${this.#o.auth.user}"` : "") +
      " accepted (no mail sent)";
  }

  close(): void {
    this.#transport.close();
  }
}

/**
 * Writes each mail as an .eml file (the embedded default when no SMTP server is set), with a
 * synchronous write on the event loop. An asynchronous one hands the write to a thread of
 * Deno's blocking pool, but first checks its path on the event loop, and that check waits for
 * the folder's lock while other writes create files in it: ten at once held the event loop
 * longer (48-200 us per file) and cost the process more CPU (140-550 us with the thread
 * hand-offs) than writing each at once (37-93 us, 95-145 us; measured here on ext4, settled
 * and right after a mass deletion).
 */
export class FileMailer implements Mailer {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  send(mail: InviteMail): Promise<SendResult> {
    try {
      const message = composeInvite(mail);
      const name = `${new Date().toISOString().replace(/[:.]/g, "-")}-${
        safeName(mail.messageId)
      }.eml`;
      const path = `${this.#dir}/${name}`;
      try {
        Deno.writeFileSync(path, message, { mode: 0o640 });
      } catch (error) {
        // The folder is made when the first mail finds it missing (or someone removed it).
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        Deno.mkdirSync(this.#dir, { recursive: true });
        Deno.writeFileSync(path, message, { mode: 0o640 });
      }
      return Promise.resolve({ kind: "file", detail: path });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): void {}
}

interface SmtpFailure {
  code?: string;
  responseCode?: number;
  response?: string;
  message?: string;
}

/** A send's or a session's failure; `to` names the recipient when a mail was being sent. */
function classify(error: unknown, server: string, to?: string): PermanentMailError | Error {
  const e = (error ?? {}) as SmtpFailure;
  if (error instanceof PermanentMailError) return error;
  const answer = (e.response ?? e.message ?? String(error)).trim();
  // Before the status check: a refused login is a 5xx too, but not about the recipient.
  if (e.code === "EAUTH") {
    return new SmtpAuthError(`SMTP server ${server} refused the login: ${answer}`);
  }
  if (typeof e.responseCode === "number" && e.responseCode >= 500) {
    return new PermanentMailError(
      to === undefined
        ? `SMTP server ${server} refused the session: ${answer}`
        : `SMTP server ${server} refused the invite to ${to}: ${answer}`,
    );
  }
  if (tlsErrorFrom(server, error)) {
    return new PermanentMailError(
      `TLS verification of SMTP server ${server} failed: ${answer} (set smtp_cafile to the CA that signed it)`,
    );
  }
  if (/STARTTLS|requireTLS/i.test(answer) && e.code === "ETLS") {
    return new PermanentMailError(
      `SMTP server ${server} does not offer STARTTLS, which use_start_tls requires`,
    );
  }
  return new Error(`SMTP server ${server} is unavailable: ${answer}`);
}

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

function safeName(text: string): string {
  return text.replace(/^<|>$/g, "").replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80);
}
