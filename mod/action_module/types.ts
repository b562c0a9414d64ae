/**
 * The Action Module's message shapes (ActionDataDTO and friends, as the platform sends
 * them) and the processor contract the agent hosts.
 */
import type { Logger } from "../log/log.ts";
import type { ResilientApi } from "../resilient/types.ts";
import type { Store } from "../store/store.ts";

/** object_type values. */
export const ObjectType = {
  incident: 0,
  task: 1,
  note: 2,
  milestone: 3,
  artifact: 4,
  attachment: 5,
} as const;

export type { ActionData, IncidentDTO, TaskDTO } from "../sdk/sdk.ts";
import type { ActionData, HandlerResult, Reply } from "../sdk/sdk.ts";
export type { HandlerResult, Reply };

/** An action message: its STOMP headers and parsed body. */
export interface ActionMessage {
  /** Stable across redelivery: the dedupe key. */
  messageId: string;
  correlationId: string | undefined;
  replyTo: string | undefined;
  contextToken: string | undefined;
  destination: string;
  /** The queue name (`taskcalendar` in `actions.201.taskcalendar`). */
  queue: string;
  redelivered: boolean;
  headers: Record<string, string>;
  data: ActionData;
}

/** What a handler gets besides the action data. */
export interface ActionContext {
  message: ActionMessage;
  /** The REST API, sending this message's X-Co3ContextToken. Undefined in offline replay. */
  rest: ResilientApi | undefined;
  store: Store;
  log: Logger;
  /** Aborted at shutdown or when the handler's time is up. */
  signal: AbortSignal;
  /** The normalised rule name (`DueDate change` -> `duedate_change`), when known. */
  ruleName: string | undefined;
  /** Sends an interim status reply (`complete: false`). */
  status(message: string): void;
  /**
   * Runs a side effect once per message: after a crash and redelivery, a recorded effect
   * is not run again and its recorded result is returned.
   */
  effect<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /**
   * A store write that goes in the same commit as this message's reply (after the handler
   * succeeded): state that must change exactly when the message counts as done, for one
   * store round trip less than a write of its own.
   */
  setWithReply(key: Deno.KvKey, value: unknown): void;
}

/** The agent's side of a handler (the SDK's `Handler` is what a processor author writes). */
export type ActionHandler = (action: ActionData, ctx: ActionContext) => Promise<HandlerResult>;

/** A processor: handles the actions of one queue. */
export interface Processor {
  name: string;
  queue: string;
  /** The catch-all handler. */
  handle: ActionHandler;
  /** Handlers by normalised rule name, tried before `handle`. */
  rules?: Record<string, ActionHandler>;
  /** Returns what is wrong with an action this processor cannot handle (bad input). */
  check?(action: ActionData): string | undefined;
  /** Messages with the same key are handled in arrival order (default: the object's id). */
  orderKey?(action: ActionData): string;
  /** Handle only the last of a burst of messages with the same key. */
  debounce?: {
    ms: number;
    key(action: ActionData): string | undefined;
    /** Ack absorbed messages at once with an info reply (true), or with the final reply. */
    discard: boolean;
  };
  /** Wait this long before handling (the message stays unacked meanwhile). */
  deferMs?: number;
  /** A handler running longer fails the action with an error reply (default 5 min). */
  timeoutMs?: number;
  /** Actions of this queue handled at once (default: the listener's workers). */
  workers?: number;
  /**
   * Its handler runs in a sandbox process of its own (a custom processor): each action takes
   * a hop to another process and back, which the broker's prefetch covers
   * (SANDBOXED_PREFETCH_PER_WORKER in ./listener.ts).
   */
  sandboxed?: boolean;
  /**
   * Checks, once connected and before subscribing, that the platform has what this
   * processor needs (required fields); throws naming what is missing. A processor that
   * fails it is not started; the others are.
   */
  verify?(rest: ResilientApi, signal: AbortSignal): Promise<void>;
}

/** Thrown by a handler for an error reply that names the problem without a stack. */
export class ActionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ActionError";
  }
}

export { normaliseRuleName } from "../sdk/sdk.ts";
