/**
 * A real SMTP server for tests (npm:smtp-server) on 127.0.0.1: plain or STARTTLS with a
 * test-CA certificate, optional AUTH, every accepted message captured raw, and switches to
 * reject recipients (5xx/4xx) or to go down and come back on the same port.
 */
import { SMTPServer } from "smtp-server";
import { type LeafName, testPki } from "./ca.ts";
import { freePort } from "./activemq.ts";
import { concatBytes } from "../../mod/text/bytes.ts";

/** A message as the server received it. */
export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
}

export interface SmtpServerOptions {
  /** Offer STARTTLS with this leaf (default: no TLS offered). */
  tls?: LeafName;
  /** Require AUTH PLAIN/LOGIN with these credentials. */
  auth?: { user: string; pass: string };
  /** TLS from the first byte (SMTPS, what use_ssl means) instead of STARTTLS. */
  implicitTls?: boolean;
}

export class TestSmtpServer {
  readonly messages: ReceivedMail[] = [];
  /** Answer RCPT TO with this (e.g. "550 mailbox unavailable"); undefined = accept. */
  rejectRecipients: { code: number; message: string } | undefined;
  connections = 0;
  port = 0;
  #server: SMTPServer | undefined;
  #options: SmtpServerOptions;
  #waiters: (() => void)[] = [];

  constructor(options: SmtpServerOptions = {}) {
    this.#options = options;
  }

  async start(port?: number): Promise<this> {
    this.port = port ?? this.port ?? 0;
    if (!this.port) this.port = freePort();
    const pki = await testPki();
    const leaf = this.#options.tls ? pki[this.#options.tls] : undefined;
    const auth = this.#options.auth;
    const server = new SMTPServer({
      logger: false,
      secure: this.#options.implicitTls === true,
      ...(leaf ? { key: leaf.key, cert: leaf.cert } : { hideSTARTTLS: true }),
      authOptional: !auth,
      ...(auth ? {} : { disabledCommands: ["AUTH"] }),
      onConnect: (_session, callback) => {
        this.connections++;
        callback();
      },
      onAuth: (login, _session, callback) => {
        if (auth && login.username === auth.user && login.password === auth.pass) {
          return callback(null, { user: login.username });
        }
        callback(Object.assign(new Error("Invalid username or password"), { responseCode: 535 }));
      },
      onRcptTo: (_address, _session, callback) => {
        const reject = this.rejectRecipients;
        if (reject) {
          return callback(Object.assign(new Error(reject.message), { responseCode: reject.code }));
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Uint8Array[] = [];
        stream.on("data", (chunk: Uint8Array) => chunks.push(chunk));
        stream.on("end", () => {
          const raw = new TextDecoder().decode(concatBytes(chunks));
          const envelope = session.envelope;
          this.messages.push({
            from: envelope.mailFrom ? envelope.mailFrom.address : "",
            to: envelope.rcptTo.map((r) => r.address),
            raw,
          });
          for (const wake of this.#waiters.splice(0)) wake();
          callback();
        });
      },
    });
    // One bad TLS handshake must not kill the test process.
    server.on("error", () => {});
    const listening = Promise.withResolvers<void>();
    server.listen(this.port, "127.0.0.1", () => listening.resolve());
    await listening.promise;
    this.#server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = Promise.withResolvers<void>();
    server.close(() => closed.resolve());
    // close() waits for clients to leave; pooled clients linger.
    const timer = setTimeout(() => closed.resolve(), 500);
    await closed.promise;
    clearTimeout(timer);
  }

  async waitForMessages(count: number, timeoutMs = 15_000): Promise<ReceivedMail[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} mails, got ${this.messages.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages;
  }
}
