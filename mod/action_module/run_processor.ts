/**
 * Runs one processor on one action message and turns the outcome into the reply the
 * platform gets. Shared by the live listener and `agent replay`.
 */
import { log } from "../log/log.ts";
import { secrets } from "../log/redact.ts";
import type { ResilientApi } from "../resilient/types.ts";
import type { Store, StoreSet } from "../store/store.ts";
import { RunEffects } from "./effects.ts";
import {
  type ActionContext,
  type ActionMessage,
  normaliseRuleName,
  type Processor,
  type Reply,
} from "./types.ts";

type Timer = ReturnType<typeof setTimeout>;
const DEFAULT_TIMEOUT_MS = 5 * 60_000;

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
  /**
   * Store writes to go with the reply: the handler's (ctx.setWithReply) and the records of
   * its last effects (see ./effects.ts); none on failure.
   */
  writes?: StoreSet[];
}

export function infoReply(message: string): Reply {
  return { message_type: 0, message, complete: true };
}

export function errorReply(message: string): Reply {
  return { message_type: 1, message: secrets.scrub(message), complete: true };
}

/** Each run's effects, for a sandboxed processor's effectGet/effectSet ({@linkcode effectsOf}). */
const runs = new WeakMap<ActionContext, RunEffects>();

/** The effects of the run that made `ctx`. */
export function effectsOf(ctx: ActionContext): RunEffects {
  const effects = runs.get(ctx);
  if (!effects) throw new Error("this context was not made by runProcessor");
  return effects;
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
  const effects = new RunEffects(deps.store, message.messageId);
  try {
    let ruleName: string | undefined;
    if (processor.rules && message.data.action_id !== null && rest) {
      const name = await rest.ruleName(message.data.action_id, { signal });
      ruleName = name === undefined ? undefined : normaliseRuleName(name);
    }
    const handler = (ruleName !== undefined ? processor.rules?.[ruleName] : undefined) ??
      processor.handle;
    const writes: StoreSet[] = [];
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
      effect: (name, fn) => effects.run(name, fn),
      setWithReply: (key, value) => void writes.push([key, value]),
    };
    runs.set(ctx, effects);
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
      // Records not yet sent to the store go with the reply's own record (one commit).
      const last = effects.takeLast();
      // The reply (and the ACK after it) never leave before the effects' records.
      try {
        await effects.stored();
      } catch (error) {
        effects.putBack(last); // no reply of this run's to go with: stored below, on their own
        throw error;
      }
      return {
        reply: finalReply(result, processor.name),
        badInput: false,
        writes: [...last, ...writes],
      };
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    logger.error("Action failed: {error}", { error });
    // Effects that ran before the failure: their records go before the error reply too.
    await effects.stored().catch(() => {});
    return { reply: errorReply(text), badInput: false };
  }
}

/** The keys a reply may have (ActionAcknowledgementDTO). */
const REPLY_KEYS = new Set(["message_type", "message", "complete"]);

/**
 * A handler's result as the final reply. A reply object must be exactly
 * `{message_type: 0|1|2, message: string, complete: true}` (complete may be left out); any
 * other shape is the processor's bug and becomes an error reply naming it, never something
 * the platform gets verbatim.
 */
function finalReply(result: unknown, processor: string): Reply {
  if (result === undefined || result === null) return infoReply("Action processed");
  if (typeof result === "string") return infoReply(secrets.scrub(result));
  const problem = replyProblem(result);
  if (problem) return errorReply(`${processor} returned an invalid reply: ${problem}`);
  const reply = result as Reply;
  return {
    message_type: reply.message_type,
    message: secrets.scrub(reply.message),
    complete: true,
  };
}

function replyProblem(result: unknown): string | undefined {
  if (typeof result !== "object" || Array.isArray(result)) {
    return `a ${Array.isArray(result) ? "list" : typeof result}, not a string or a reply object`;
  }
  const r = result as Record<string, unknown>;
  const extra = Object.keys(r).filter((k) => !REPLY_KEYS.has(k));
  if (extra.length) return `unknown key(s) ${extra.map((k) => JSON.stringify(k)).join(", ")}`;
  if (r.message_type !== 0 && r.message_type !== 1 && r.message_type !== 2) {
    return `message_type ${JSON.stringify(r.message_type)} (0 info, 1 error or 2 warning)`;
  }
  if (typeof r.message !== "string") return `message is ${typeof r.message}, not a string`;
  if (r.complete !== undefined && r.complete !== true) {
    return `complete is ${JSON.stringify(r.complete)} in a final reply (interim statuses go ` +
      `through ctx.status)`;
  }
  return undefined;
}

/** Replies longer than this are cut (the store keeps a reply and its outbox copy, 64 KB each). */
export const REPLY_MAX_CHARS = 16_000;

/**
 * A reply that fits the store and the platform: a longer message is cut with a note saying
 * where the full text went (the agent's log, under the message id).
 */
export function fitReply(reply: Reply, messageId: string): Reply {
  if (reply.message.length <= REPLY_MAX_CHARS) return reply;
  log("actions").info("Full text of the reply to {messageId} ({length} characters): {text}", {
    messageId,
    length: reply.message.length,
    text: reply.message,
  });
  const note = `\n[... cut: the reply was ${reply.message.length} characters; the full text is ` +
    `in the agent's log under message ${messageId}]`;
  return { ...reply, message: reply.message.slice(0, REPLY_MAX_CHARS - note.length) + note };
}
