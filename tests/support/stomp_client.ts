/**
 * The platform's side of the Action Module, for tests: publishes action messages with
 * real-shaped headers to ActiveMQ, collects the agent's replies from the acks queue, and
 * reads exact queue sizes from the statistics plugin.
 */
import { Client, type IMessage } from "@stomp/stompjs";
import { DenoStompSocket } from "../../mod/stomp/socket.ts";
import type { Broker } from "./activemq.ts";

/** A reply as the platform receives it. */
export interface ReceivedReply {
  correlationId: string;
  headers: Record<string, string>;
  body: string;
  json: { message_type: number; message: string; complete: boolean } | undefined;
  /** performance.now() when it arrived. */
  at: number;
}

export class PlatformClient {
  readonly #client: Client;
  readonly replies: ReceivedReply[] = [];
  readonly #subscriptions: (() => void)[] = [];
  #waiters: (() => void)[] = [];
  #seq = 0;
  readonly #seenIds = new Set<string>();

  private constructor(client: Client) {
    this.#client = client;
  }

  static async connect(broker: Broker): Promise<PlatformClient> {
    const client = new Client({
      webSocketFactory: () =>
        new DenoStompSocket({ hostname: "127.0.0.1", port: broker.stompPort }),
      connectHeaders: { login: broker.user, passcode: broker.password, host: "localhost" },
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      reconnectDelay: 200,
      debug: () => {},
    });
    const platform = new PlatformClient(client);
    const connected = Promise.withResolvers<void>();
    client.onConnect = () => {
      // stompjs does not re-subscribe after a reconnect.
      for (const subscribe of platform.#subscriptions) subscribe();
      connected.resolve();
    };
    client.activate();
    await connected.promise;
    return platform;
  }

  /** Starts collecting replies from `/queue/acks.<org>.<queue>`. */
  listenForReplies(org: number, queue: string): void {
    const subscribe = () => this.#subscribeReplies(org, queue);
    this.#subscriptions.push(subscribe);
    if (this.#client.connected) subscribe();
  }

  #subscribeReplies(org: number, queue: string): void {
    // Client acks, and duplicates (a redelivery after a lost ACK) dropped by message-id: a
    // reply in flight when the broker stops is not lost to the platform side.
    this.#client.subscribe(`/queue/acks.${org}.${queue}`, (message: IMessage) => {
      const brokerId = message.headers["message-id"] ?? "";
      message.ack();
      if (this.#seenIds.has(brokerId)) return;
      this.#seenIds.add(brokerId);
      let json: ReceivedReply["json"];
      try {
        json = JSON.parse(message.body);
      } catch {
        json = undefined;
      }
      this.replies.push({
        correlationId: message.headers["correlation-id"] ?? "",
        headers: { ...message.headers },
        body: message.body,
        json,
        at: performance.now(),
      });
      for (const wake of this.#waiters.splice(0)) wake();
    }, { ack: "client-individual" });
  }

  /** Publishes an action message as the platform does; returns its correlation id. */
  sendAction(
    org: number,
    queue: string,
    body: unknown | Uint8Array | string,
    options: { correlationId?: string; payload?: string } = {},
  ): string {
    const correlationId = options.correlationId ?? `invid:${++this.#seq}`;
    const headers = {
      "reply-to": `/queue/acks.${org}.${queue}`,
      "correlation-id": correlationId,
      "Co3ContextToken": `ctx-${correlationId}`,
      "Co3MessagePayload": options.payload ?? "ActionDataDTO",
      "Co3ContentType": "application/json",
      persistent: "true",
      priority: "4",
    };
    const destination = `/queue/actions.${org}.${queue}`;
    if (body instanceof Uint8Array) {
      this.#client.publish({ destination, headers, binaryBody: body });
    } else {this.#client.publish({
        destination,
        headers,
        body: typeof body === "string" ? body : JSON.stringify(body),
      });}
    return correlationId;
  }

  /** Waits until `predicate(replies)` holds. */
  async waitFor(
    predicate: (replies: ReceivedReply[]) => boolean,
    timeoutMs = 30_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.replies)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for replies (have ${this.replies.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Waits until the broker has handled everything sent so far: frames on one connection are
   * handled in order, so a receipt for a last frame covers all before it.
   */
  async sync(): Promise<void> {
    const receipt = `sync-${crypto.randomUUID()}`;
    const done = Promise.withResolvers<void>();
    this.#client.watchForReceipt(receipt, () => done.resolve());
    this.#client.publish({ destination: "/topic/agent.test.sync", headers: { receipt }, body: "" });
    await done.promise;
  }

  /**
   * Messages still on a queue (not yet acknowledged; at most 400, ActiveMQ's browse page),
   * counted by browsing it: ActiveMQ
   * sends every stored message to a `browser: true` subscription, then one marked
   * `browser: end`.
   */
  async queueSize(queue: string): Promise<number> {
    const done = Promise.withResolvers<number>();
    let count = 0;
    const sub = this.#client.subscribe(`/queue/${queue}`, (message) => {
      if (message.headers["browser"] === "end") done.resolve(count);
      else count++;
    }, { browser: "true", ack: "auto" });
    const timer = setTimeout(
      () => done.reject(new Error(`browsing ${queue} did not finish`)),
      10_000,
    );
    try {
      return await done.promise;
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
  }

  async close(): Promise<void> {
    await this.#client.deactivate();
  }
}

/** A task action message as the platform sends for a task rule. */
export function taskAction(
  task: Partial<
    {
      id: number;
      inc_id: number;
      name: string;
      owner_id: number | null;
      due_date: number | null;
      status: string;
    }
  > = {},
  extra: Record<string, unknown> = {},
) {
  const t = {
    id: 80,
    inc_id: 2095,
    name: "Investigate",
    owner_id: 4,
    due_date: null,
    status: "O",
    ...task,
  };
  return {
    action_id: 11,
    object_type: 1,
    operation_type: "modified",
    incident: { id: t.inc_id, name: "Phishing campaign" },
    task: {
      inc_name: "Phishing campaign",
      description: null,
      instr_text: "<div>Check the mail headers</div>",
      init_date: 1_700_000_000_000,
      closed_date: null,
      owner_fname: "Ann",
      owner_lname: "Example",
      phase_id: 1000,
      cat_name: "Initial",
      required: true,
      active: true,
      members: null,
      ...t,
    },
    artifact: null,
    note: null,
    milestone: null,
    row: null,
    type_info: {},
    properties: null,
    user: { id: 1, fname: "Admin", lname: "User", email: "admin@example.com" },
    ...extra,
  };
}
