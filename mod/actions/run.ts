/**
 * Runs one processor on one action message and turns the outcome into the reply the
 * platform gets. Shared by the live listener and `agent replay`.
 */
import { log } from "../log/log.ts";
import { faultPoint } from "../ops/faults.ts";
import { secrets } from "../log/redact.ts";
import type { ResilientApi } from "../resilient/types.ts";
import type { Store } from "../store/store.ts";
import {
  type ActionContext,
  type ActionMessage,
  type HandlerResult,
  normaliseRuleName,
  type Processor,
  type Reply,
} from "./types.ts";

type Timer = ReturnType<typeof setTimeout>;
const DEFAULT_TIMEOUT_MS = 5 * 60_000;
const EFFECT_TTL_MS = 7 * 24 * 3600_000;

/** What a run needs from its surroundings. */
export interface RunDeps {
  rest: ResilientApi | undefined;
  store: Store;
  signal: AbortSignal;
  /** Sends an interim reply; absent in replay (the statuses are dropped). */
  sendStatus?: ((message: ActionMessage, reply: Reply) => void) | undefined;
}

/** The reply, and whether the input itself was bad (such messages are dead-lettered). */
export interface RunOutcome {
  reply: Reply;
  badInput: boolean;
}

export function infoReply(message: string): Reply {
  return { message_type: 0, message, complete: true };
}

export function errorReply(message: string): Reply {
  return { message_type: 1, message: secrets.scrub(message), complete: true };
}

/** Runs `processor` on `message` (see module doc). Never throws. */
export async function runProcessor(
  processor: Processor,
  message: ActionMessage,
  deps: RunDeps,
): Promise<RunOutcome> {
  const logger = log("actions", processor.name).with({
    correlationId: message.correlationId,
    messageId: message.messageId,
  });
  const problem = processor.check?.(message.data);
  if (problem) {
    logger.warn("Bad action message: {problem}", { problem });
    return { reply: errorReply(`Cannot process this action: ${problem}`), badInput: true };
  }
  const timeoutMs = processor.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = new AbortController();
  const signal = AbortSignal.any([deps.signal, timeout.signal]);
  const rest = deps.rest?.withContext(message.contextToken);
  try {
    let ruleName: string | undefined;
    if (processor.rules && message.data.action_id !== null && rest) {
      const name = await rest.ruleName(message.data.action_id, { signal });
      ruleName = name === undefined ? undefined : normaliseRuleName(name);
    }
    const handler = (ruleName !== undefined ? processor.rules?.[ruleName] : undefined) ??
      processor.handle;
    const ctx: ActionContext = {
      message,
      rest,
      store: deps.store,
      log: logger,
      signal,
      ruleName,
      status: (text) =>
        deps.sendStatus?.(message, {
          message_type: 0,
          message: secrets.scrub(text),
          complete: false,
        }),
      effect: (name, fn) => runEffect(deps.store, message.messageId, name, fn),
    };
    let timer: Timer | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timeout.abort(new Error("timed out"));
        reject(
          new Error(`${processor.name} did not finish within ${Math.round(timeoutMs / 1000)} s`),
        );
      }, timeoutMs);
    });
    try {
      const result = await Promise.race([handler(message.data, ctx), timedOut]);
      return { reply: toReply(result), badInput: false };
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    logger.error("Action failed: {error}", { error });
    return { reply: errorReply(text), badInput: false };
  }
}

function toReply(result: HandlerResult): Reply {
  if (result === undefined) return infoReply("Action processed");
  if (typeof result === "string") return infoReply(secrets.scrub(result));
  return { ...result, message: secrets.scrub(result.message) };
}

interface EffectRecord {
  result: unknown;
}

const effectKey = (messageId: string, name: string) => ["actions", "effect", messageId, name];

/** The recorded result of effect `name` of a message, if it ran. */
export async function recordedEffect(
  store: Store,
  messageId: string,
  name: string,
): Promise<{ found: true; result: unknown } | { found: false }> {
  const recorded = await store.get<EffectRecord>(effectKey(messageId, name));
  return recorded ? { found: true, result: recorded.result } : { found: false };
}

/** Records that effect `name` of a message ran, with its (JSON) result. */
export async function recordEffect(
  store: Store,
  messageId: string,
  name: string,
  result: unknown,
): Promise<void> {
  await store.set(effectKey(messageId, name), { result: result ?? null } satisfies EffectRecord, {
    ttlMs: EFFECT_TTL_MS,
  });
  faultPoint("after-effect");
}

async function runEffect<T>(
  store: Store,
  messageId: string,
  name: string,
  fn: () => Promise<T>,
): Promise<T> {
  const recorded = await recordedEffect(store, messageId, name);
  if (recorded.found) return recorded.result as T;
  const result = await fn();
  await recordEffect(store, messageId, name, result);
  return result;
}
