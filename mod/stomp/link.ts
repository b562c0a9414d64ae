/**
 * One STOMP connection that stays up: @stomp/stompjs over {@linkcode DenoStompSocket},
 * reconnecting forever with jittered backoff (about 1 s, 4 s, 16 s, then every 60 s),
 * re-subscribing after every reconnect, and failing for good only on errors that retrying
 * cannot fix (TLS verification, and a refused login before the first connect).
 */
import { Client, type IFrame, type IMessage, type StompHeaders } from "@stomp/stompjs";
import { log } from "../log/log.ts";
import { AuthError } from "./errors.ts";
import { type TlsError, tlsErrorFrom } from "../tls/errors.ts";
import { abortableSleep } from "../async/delay.ts";
import { DenoStompSocket, type SocketFailure, type SocketTarget } from "./socket.ts";
import { useFastFrameParser } from "./frame_parser.ts";
import { frameBytes } from "./frame_writer.ts";
import type { Delivery, OutgoingFrame, StompTransport, SubscriptionSpec } from "./types.ts";

/** Options for {@linkcode StompLink}. */
export interface StompLinkOptions {
  target: SocketTarget;
  login: string;
  passcode: string;
  /** The CONNECT `host` header; defaults to the target host name. */
  vhost?: string;
  /** Heartbeat asked of the broker, ms (Resilient: 15000). Dead after 2x silence. */
  heartbeatIncomingMs?: number;
  /** Reconnect delays before jitter, ms; the last one repeats. */
  backoffMs?: number[];
  connectTimeoutMs?: number;
  /** Waits `ms` (tests pass a fake clock). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
  logCategory?: string;
}

// stompjs reads incoming frames a byte at a time; ./frame_parser.ts gives it the same frames.
useFastFrameParser();

const DEFAULT_BACKOFF = [1_000, 4_000, 16_000, 60_000];
/** How long sent frames wait before the broker is asked to confirm them. */
const CONFIRM_DELAY_MS = 200;

/** A self-healing STOMP connection (see module doc). */
export class StompLink implements StompTransport {
  readonly #options: StompLinkOptions;
  readonly #client: Client;
  readonly #subscriptions: SubscriptionSpec[] = [];
  readonly #stopping = new AbortController();
  readonly #logger;
  #generation = 0;
  #connected = false;
  #everConnected = false;
  #attempt = 0;
  #lastError: unknown;
  #started?: PromiseWithResolvers<void>;
  #fatal: Error | undefined;
  #reconnects = 0;
  readonly #connectListeners: (() => void)[] = [];
  readonly #disconnectListeners: (() => void)[] = [];
  readonly #fatalListeners: ((error: Error) => void)[] = [];

  constructor(options: StompLinkOptions) {
    this.#options = options;
    this.#logger = log(options.logCategory ?? "stomp");
    const { target } = options;
    const heartbeat = options.heartbeatIncomingMs ?? 15_000;
    this.#client = new Client({
      webSocketFactory: () => new DenoStompSocket(target),
      connectHeaders: {
        login: options.login,
        passcode: options.passcode,
        host: options.vhost ?? target.hostname,
      },
      heartbeatIncoming: heartbeat,
      heartbeatOutgoing: 0,
      heartbeatToleranceMultiplier: 2,
      discardWebsocketOnCommFailure: true,
      connectionTimeout: options.connectTimeoutMs ?? 15_000,
      // Our own backoff runs in beforeConnect; stompjs only needs to keep retrying.
      reconnectDelay: 1,
      beforeConnect: () => this.#beforeConnect(),
      onConnect: () => this.#onConnect(),
      onStompError: (frame) => this.#onStompError(frame),
      onWebSocketError: (event) => this.#onSocketError(event),
      onWebSocketClose: () => this.#onClose(),
      debug: () => {},
      // stompjs builds a debug line for every frame, a received one's headers escaped all over
      // again (`${frame}`), whether debug logs or not; with this it passes the raw text
      // instead, which costs one decode per chunk read (its debug is still a no-op here).
      logRawCommunication: true,
    });
  }

  get connected(): boolean {
    return this.#connected;
  }

  get reconnects(): number {
    return this.#reconnects;
  }

  /** Connects; resolves on the first connect, rejects on a fatal error (TLS, login). */
  start(signal?: AbortSignal): Promise<void> {
    this.#started = Promise.withResolvers<void>();
    signal?.addEventListener("abort", () => void this.stop(), { once: true });
    this.#client.activate();
    return this.#started.promise;
  }

  /** Called after every (re)connect, after the subscriptions are re-made. */
  onConnected(listener: () => void): void {
    this.#connectListeners.push(listener);
  }

  /** Called when an established connection is lost. */
  onDisconnected(listener: () => void): void {
    this.#disconnectListeners.push(listener);
  }

  /** Called once if the link gives up for good (TLS trust, a refused first login). */
  onFatal(listener: (error: Error) => void): void {
    this.#fatalListeners.push(listener);
  }

  /** Adds a subscription (made now if connected, and after every reconnect). */
  subscribe(spec: SubscriptionSpec): void {
    this.#subscriptions.push(spec);
    if (this.#connected) this.#subscribeOne(spec);
  }

  /**
   * Sends a frame. With `onReceipt`, asks the broker for a RECEIPT and calls back when it
   * arrives. Throws when not connected (callers keep an outbox).
   */
  publish(
    frame: { destination: string; headers?: Record<string, string>; body: string },
    onReceipt?: () => void,
  ): void {
    if (!this.#connected) throw new Error("STOMP link is not connected");
    const headers: StompHeaders = { ...frame.headers };
    if (onReceipt) {
      const receipt = crypto.randomUUID();
      headers.receipt = receipt;
      this.#client.watchForReceipt(receipt, () => onReceipt());
    }
    this.#send(frame.destination, headers, frame.body);
  }

  /**
   * A SEND, written straight to the socket (./frame_writer.ts) on a STOMP 1.2 connection
   * (ActiveMQ's); through stompjs on an older one, where stompjs does not escape headers.
   */
  #send(destination: string, headers: Record<string, string>, body: string): void {
    const socket = this.#client.webSocket;
    if (socket && this.#client.connectedVersion === "1.2") {
      socket.send(frameBytes("SEND", { destination, ...headers }, body));
    } else this.#client.publish({ destination, headers, body });
  }

  /** An ACK, as #send writes a SEND. */
  #ack(id: string, subscription: string, headers: Record<string, string>): void {
    const socket = this.#client.webSocket;
    if (socket && this.#client.connectedVersion === "1.2") {
      socket.send(frameBytes("ACK", { ...headers, id, subscription }));
    } else this.#client.ack(id, subscription, headers);
  }

  /**
   * ACKs deliveries and sends their replies as one batch, and returns per item whether it
   * went out (not when the delivery came on an earlier connection: the broker redelivers it).
   *
   * - `transaction: true`: inside one STOMP transaction (BEGIN, ACK, SEND, ..., COMMIT), so
   *   the broker applies all of it or none. A redelivery says the COMMIT did not happen, so
   *   no receipt is needed. ActiveMQ syncs its journal per commit, so this is slower.
   * - otherwise SENDs then ACKs; `onSent` runs once the broker has confirmed it (see
   *   {@linkcode StompLink.#requestConfirmation}).
   */
  ackAndSend(
    items: { delivery: Delivery; reply?: OutgoingFrame | undefined }[],
    options: { transaction?: boolean; onSent?: () => void } = {},
  ): boolean[] {
    const sendable = items.map(({ delivery }) =>
      this.#connected && delivery.generation === this.#generation &&
      (delivery.headers["ack"] ?? delivery.headers["message-id"]) !== undefined
    );
    if (!sendable.some(Boolean)) return sendable;
    const tx = options.transaction ? this.#client.begin() : undefined;
    const inTx: Record<string, string> = tx ? { transaction: tx.id } : {};
    // The reply before its ACK: the broker handles one connection's frames in order, so an
    // ACK it has means it has the reply too, and a message whose ACK was lost with the
    // connection comes back (for the ledger to recognise, or to be handled again).
    items.forEach(({ delivery, reply }, i) => {
      if (!sendable[i]) return;
      if (reply) this.#send(reply.destination, { ...reply.headers, ...inTx }, reply.body);
      const id = delivery.headers["ack"] ?? delivery.headers["message-id"]!;
      this.#ack(id, delivery.headers["subscription"] ?? "", inTx);
    });
    tx?.commit();
    if (options.onSent && !tx) this.#awaitConfirmation(options.onSent);
    return sendable;
  }

  /** Callbacks for frames sent on this connection that the broker has not confirmed yet. */
  #unconfirmed: (() => void)[] = [];
  #confirmTimer: ReturnType<typeof setTimeout> | undefined;

  #awaitConfirmation(callback: () => void): void {
    this.#unconfirmed.push(callback);
    this.#confirmTimer ??= setTimeout(() => this.#requestConfirmation(), CONFIRM_DELAY_MS);
  }

  /**
   * Asks the broker to confirm everything sent so far: an empty transaction whose BEGIN
   * carries a receipt (frames on one connection are handled in order). Done at most every
   * CONFIRM_DELAY_MS rather than per batch: one receipt covers every batch sent meanwhile, and
   * each RECEIPT is one more frame the broker must send (see the EOL that answers it).
   */
  #requestConfirmation(): void {
    this.#confirmTimer = undefined;
    const callbacks = this.#unconfirmed;
    this.#unconfirmed = [];
    if (!this.#connected || callbacks.length === 0) return; // the caller's outbox resends
    const transaction = `confirm-${crypto.randomUUID()}`;
    const receipt = `receipt-${transaction}`;
    this.#client.watchForReceipt(receipt, () => {
      // An EOL (what STOMP allows between frames) at once: the TCP ACK of the RECEIPT rides
      // on it. Nothing else would answer the RECEIPT, so that ACK would wait for the kernel's
      // delayed-ACK timer (40 ms), and with it the broker's next MESSAGE (Nagle): the first
      // action after a quiet moment took 40 ms more.
      this.#client.webSocket?.send("\n");
      for (const callback of callbacks) callback();
    });
    if (!this.#transmit("BEGIN", { transaction, receipt })) {
      this.#logger.warn(
        "Cannot ask the broker for a receipt; replies stay in the outbox until reconnect",
      );
      return;
    }
    this.#client.abort(transaction);
  }

  /**
   * Sends a raw frame. stompjs's begin() cannot carry a receipt header; its handler's
   * _transmit can. Checked at run time: false if stompjs's internals changed.
   */
  #transmit(command: string, headers: Record<string, string>): boolean {
    const handler =
      (this.#client as unknown as { _stompHandler?: { _transmit?: unknown } })._stompHandler;
    if (!handler || typeof handler._transmit !== "function") return false;
    (handler._transmit as (params: { command: string; headers: Record<string, string> }) => void)
      .call(handler, {
        command,
        headers,
      });
    return true;
  }

  /**
   * Disconnects (DISCONNECT, waiting up to `graceMs` for the broker's receipt, then drops
   * the socket) and stops reconnecting.
   */
  async stop(graceMs = 2_000): Promise<void> {
    this.#stopping.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const polite = this.#client.deactivate({ force: !this.#connected });
    const late = new Promise<"late">((
      resolve,
    ) => (timer = setTimeout(() => resolve("late"), graceMs)));
    if ((await Promise.race([polite, late])) === "late") {
      await this.#client.deactivate({ force: true });
    }
    clearTimeout(timer);
    this.#connected = false;
  }

  async #beforeConnect(): Promise<void> {
    if (this.#fatal) {
      await this.#client.deactivate({ force: true });
      return;
    }
    if (this.#attempt === 0) {
      this.#attempt++;
      return;
    }
    const steps = this.#options.backoffMs ?? DEFAULT_BACKOFF;
    const base = steps[Math.min(this.#attempt - 1, steps.length - 1)]!;
    const random = this.#options.random ?? Math.random;
    const delay = Math.round(base * (0.8 + 0.4 * random()));
    this.#attempt++;
    this.#logger.info("Reconnecting to {url} in {delayMs} ms (attempt {attempt})", {
      url: this.#url(),
      delayMs: delay,
      attempt: this.#attempt - 1,
    });
    const sleep = this.#options.sleep ?? abortableSleep;
    await sleep(delay, this.#stopping.signal).catch(() => {});
  }

  #onConnect(): void {
    this.#generation++;
    this.#connected = true;
    if (this.#everConnected) this.#reconnects++;
    this.#everConnected = true;
    this.#attempt = 1;
    this.#lastError = undefined;
    this.#logger.info("Connected to {url} (STOMP {stomp})", {
      url: this.#url(),
      stomp: this.#client.connectedVersion,
      generation: this.#generation,
    });
    for (const spec of this.#subscriptions) this.#subscribeOne(spec);
    for (const listener of this.#connectListeners) listener();
    this.#started?.resolve();
  }

  #subscribeOne(spec: SubscriptionSpec): void {
    const generation = this.#generation;
    this.#client.subscribe(spec.destination, (message: IMessage) => {
      spec.onMessage({ headers: { ...message.headers }, body: message.binaryBody, generation });
    }, { ...spec.headers });
    this.#logger.info("Subscribed to {destination}", { destination: spec.destination });
  }

  #onStompError(frame: IFrame): void {
    const message = frame.headers["message"] ?? "ERROR frame";
    const firstLine = frame.body?.trim().split("\n")[0] ?? "";
    const detail = firstLine && !message.includes(firstLine) ? `${message}: ${firstLine}` : message;
    if (
      /password is invalid|authentication|not authorized|login|credentials|User name/i.test(detail)
    ) {
      const error = new AuthError(`The broker at ${this.#url()} refused the login: ${detail}`);
      if (!this.#everConnected) this.#failFatally(error);
      else this.#logger.error("{error}; will keep retrying", { error: error.message });
      return;
    }
    this.#logger.error("Broker error from {url}: {detail}", { url: this.#url(), detail });
  }

  #onSocketError(event: unknown): void {
    const error = (event as SocketFailure | undefined)?.error ?? event;
    const tls = tlsErrorFrom(this.#options.target.hostname, error);
    if (tls) {
      this.#failFatally(tls);
      return;
    }
    this.#lastError = error;
  }

  #onClose(): void {
    const wasConnected = this.#connected;
    this.#connected = false;
    // Not confirmed on this connection: the caller's outbox sends them again.
    this.#unconfirmed = [];
    clearTimeout(this.#confirmTimer);
    this.#confirmTimer = undefined;
    if (this.#fatal || this.#stopping.signal.aborted) return;
    const reason = this.#lastError instanceof Error ? this.#lastError.message : "connection closed";
    if (wasConnected) {
      this.#logger.warn("Lost connection to {url}: {reason}", { url: this.#url(), reason });
      for (const listener of this.#disconnectListeners) listener();
    } else if (this.#attempt <= 2 || this.#attempt % 10 === 0) {
      this.#logger.warn("Cannot connect to {url}: {reason}", { url: this.#url(), reason });
    }
  }

  #failFatally(error: TlsError | AuthError): void {
    if (this.#fatal) return;
    this.#fatal = error;
    this.#logger.error("{error}", { error: error.message });
    this.#stopping.abort();
    void this.#client.deactivate({ force: true });
    if (this.#started) this.#started.reject(error);
    for (const listener of this.#fatalListeners) listener(error);
  }

  #url(): string {
    const { target } = this.#options;
    return `${target.tls ? "stomp+ssl" : "stomp"}://${target.hostname}:${target.port}`;
  }
}
