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

/** TaskDTO (the fields the agent reads; the platform sends more). */
export interface TaskDTO {
  id: number;
  inc_id: number;
  inc_name?: string | null;
  name: string;
  description?: string | null;
  instr_text?: string | null;
  status?: "O" | "C" | string;
  due_date?: number | null;
  init_date?: number | null;
  closed_date?: number | null;
  owner_id?: number | null;
  owner_fname?: string | null;
  owner_lname?: string | null;
  [field: string]: unknown;
}

/** IncidentDTO (always present in an action message). */
export interface IncidentDTO {
  id: number;
  name?: string | null;
  [field: string]: unknown;
}

/** ActionDataDTO: the body of an action message. */
export interface ActionData {
  action_id: number | null;
  object_type: number;
  operation_type?: "created" | "modified" | "deleted" | string;
  incident: IncidentDTO;
  task?: TaskDTO | null;
  artifact?: Record<string, unknown> | null;
  note?: Record<string, unknown> | null;
  milestone?: Record<string, unknown> | null;
  attachment?: Record<string, unknown> | null;
  row?: Record<string, unknown> | null;
  type_info?: Record<string, unknown>;
  properties?: Record<string, unknown> | null;
  user?: { id?: number; fname?: string; lname?: string; email?: string } | null;
  [field: string]: unknown;
}

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

/** ActionAcknowledgementDTO: what goes back on the reply-to queue. */
export interface Reply {
  /** 0 = info, 1 = error. */
  message_type: 0 | 1;
  message: string;
  complete: boolean;
}

/** What a handler may return: a string (info reply), a full Reply, or nothing ("OK"). */
export type HandlerResult = string | Reply | undefined | void;

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
}

export type Handler = (action: ActionData, ctx: ActionContext) => Promise<HandlerResult>;

/** A processor: handles the actions of one queue. */
export interface Processor {
  name: string;
  queue: string;
  /** The catch-all handler. */
  handle: Handler;
  /** Handlers by normalised rule name, tried before `handle`. */
  rules?: Record<string, Handler>;
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
}

/** Thrown by a handler for an error reply that names the problem without a stack. */
export class ActionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ActionError";
  }
}

/** resilient-circuits' rule name normalisation: lower-case, `\W+` -> `_`. */
export function normaliseRuleName(name: string): string {
  return name.toLowerCase().replace(/\W+/g, "_");
}
