/**
 * An in-memory StompTransport for fast unit tests of the action core: deliveries are
 * handed to the subscription at once, ACKs and sent frames are kept in lists, and the
 * broker's receipts come at once or only when the test says (`holdReceipts`). The
 * connection can be dropped and made again, as the real link does (a new generation: ACKs
 * for the old one's deliveries are refused, subscriptions stay).
 */
import type {
  Delivery,
  OutgoingFrame,
  StompTransport,
  SubscriptionSpec,
} from "../../mod/stomp/types.ts";

export class MemoryTransport implements StompTransport {
  connected = true;
  reconnects = 0;
  /** Message ids acknowledged, in order. */
  readonly acks: string[] = [];
  /** Frames sent (replies, statuses), in order. */
  readonly sent: OutgoingFrame[] = [];
  /** When true, receipts wait for confirm(). */
  holdReceipts = false;
  readonly #subscriptions = new Map<string, SubscriptionSpec>();
  readonly #connected: (() => void)[] = [];
  readonly #disconnected: (() => void)[] = [];
  #held: (() => void)[] = [];
  #generation = 1;
  #seq = 0;

  subscribe(spec: SubscriptionSpec): void {
    this.#subscriptions.set(spec.destination, spec);
  }

  /** The headers a destination was subscribed with. */
  subscriptionHeaders(destination: string): Record<string, string> | undefined {
    return this.#subscriptions.get(destination)?.headers;
  }

  /** Delivers a message as the broker would; returns its message id. */
  deliver(
    destination: string,
    body: unknown,
    headers: Record<string, string> = {},
  ): string {
    const spec = this.#subscriptions.get(destination);
    if (!spec) throw new Error(`nothing subscribed to ${destination}`);
    const messageId = headers["message-id"] ?? `ID:memory-${++this.#seq}`;
    const bytes = body instanceof Uint8Array
      ? body
      : new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
    const queue = destination.split(".").slice(2).join(".");
    spec.onMessage({
      headers: {
        destination: `/queue/${destination}`,
        "message-id": messageId,
        ack: messageId,
        subscription: destination,
        "reply-to": `/queue/acks.${destination.split(".")[1]}.${queue}`,
        "correlation-id": `corr-${messageId}`,
        ...headers,
      },
      body: bytes,
      generation: this.#generation,
    });
    return messageId;
  }

  publish(frame: OutgoingFrame, onReceipt?: () => void): void {
    if (!this.connected) throw new Error("not connected");
    this.sent.push(frame);
    if (onReceipt) this.#receipt(onReceipt);
  }

  ackAndSend(
    items: { delivery: Delivery; reply?: OutgoingFrame | undefined }[],
    options: { transaction?: boolean; onSent?: () => void } = {},
  ): boolean[] {
    const sendable = items.map(({ delivery }) =>
      this.connected && delivery.generation === this.#generation
    );
    items.forEach(({ delivery, reply }, i) => {
      if (!sendable[i]) return;
      this.acks.push(delivery.headers["message-id"]!);
      if (reply) this.sent.push(reply);
    });
    if (options.onSent && sendable.some(Boolean)) this.#receipt(options.onSent);
    return sendable;
  }

  /** Lets held receipts through. */
  confirm(): void {
    for (const receipt of this.#held.splice(0)) receipt();
  }

  /** The connection is lost: held receipts never come. */
  drop(): void {
    this.connected = false;
    this.#held = [];
    for (const listener of this.#disconnected) listener();
  }

  /** Connected again (a new generation). */
  reconnect(): void {
    this.connected = true;
    this.#generation++;
    this.reconnects++;
    for (const listener of this.#connected) listener();
  }

  onConnected(listener: () => void): void {
    this.#connected.push(listener);
  }

  onDisconnected(listener: () => void): void {
    this.#disconnected.push(listener);
  }

  stop(): Promise<void> {
    this.connected = false;
    return Promise.resolve();
  }

  /** Replies sent to a correlation id. */
  repliesTo(messageId: string): { message_type: number; message: string }[] {
    return this.sent
      .filter((f) => f.headers?.["correlation-id"] === `corr-${messageId}`)
      .map((f) => JSON.parse(f.body));
  }

  #receipt(callback: () => void): void {
    if (this.holdReceipts) this.#held.push(callback);
    else queueMicrotask(callback);
  }
}
