/** Starts tests/fixtures/listener_child.ts (the listener core in its own process). */
import type { Broker } from "./activemq.ts";
import type { FakeResilient } from "./fake_resilient.ts";

const CHILD = new URL("../fixtures/listener_child.ts", import.meta.url).pathname;

export interface ListenerChildOptions {
  broker: Broker;
  fake: FakeResilient;
  caCertFile: string;
  store: string;
  queue: string;
  /** The file its side effect appends to. */
  effects: string;
  transactions: boolean;
  workers?: number;
  /** Written after each effect's correlation id (which agent did it). */
  name?: string;
  /** AGENT_FAULT, e.g. "kill-after-effect:5". */
  fault?: string;
  /** "piped" to read its "ready" line. */
  stdout?: "null" | "piped";
}

export function spawnListenerChild(options: ListenerChildOptions): Deno.ChildProcess {
  const { broker, fake } = options;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD],
    env: {
      CHILD_CA: options.caCertFile,
      CHILD_STORE: options.store,
      CHILD_REST_URL: fake.url,
      CHILD_ORG: fake.orgName,
      CHILD_KEY_ID: fake.apiKeyId,
      CHILD_KEY_SECRET: fake.apiKeySecret,
      CHILD_STOMP_PORT: String(broker.sslPort),
      CHILD_STOMP_USER: broker.user,
      CHILD_STOMP_PASS: broker.password,
      CHILD_QUEUE: options.queue,
      CHILD_EFFECTS: options.effects,
      CHILD_TX: options.transactions ? "1" : "0",
      ...(options.workers ? { CHILD_WORKERS: String(options.workers) } : {}),
      ...(options.name ? { CHILD_NAME: options.name } : {}),
      ...(options.fault ? { AGENT_FAULT: options.fault } : {}),
    },
    stdout: options.stdout ?? "null",
    stderr: "inherit",
  }).spawn();
}
