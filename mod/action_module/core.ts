/**
 * Builds the action-listener service from `[resilient]`: the REST client (org id), the
 * STOMP link (TLS as configured), the store, the listener with its processors. Used by
 * `agent calendar` now and by `agent actions` / `agent run`.
 */
import { actionQueue } from "./message.ts";
import type { ResilientConfig } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { log } from "../log/log.ts";
import { RestClient } from "../resilient/rest.ts";
import { StompLink } from "../stomp/link.ts";
import type { SocketTarget } from "../stomp/socket.ts";
import type { Store } from "../store/store.ts";
import { ActionListener, type ListenerOptions } from "./listener.ts";
import type { Processor } from "./types.ts";

const logger = log("actions");

/** A running action service. */
export interface ActionService {
  listener: ActionListener;
  link: StompLink;
  rest: RestClient;
  /** Processors not started because they failed their start-up check, with the reason. */
  refused: { name: string; reason: string }[];
  /** Resolves when the service stops: after stop(), or on a fatal link error (rejects). */
  done: Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
}

/** Options for {@linkcode startActionService}. */
export interface ServiceOptions {
  store: Store;
  signal: AbortSignal;
  recordDir?: string | undefined;
  healthIntervalMs?: number;
}

/** Connects REST and STOMP and starts listening for the processors' queues. */
export async function startActionService(
  config: ResilientConfig,
  processors: Processor[],
  options: ServiceOptions,
): Promise<ActionService> {
  warnIfInsecure(config);
  const rest = await RestClient.fromConfig(config, { signal: options.signal });
  logger.info("Resolved org {org} to id {orgId}", { org: config.org, orgId: rest.orgId });
  const { ready, refused } = await verifyProcessors(processors, rest, options.signal);
  const link = new StompLink({
    target: await stompTarget(config),
    ...stompLogin(config),
  });
  const core = createActionCore({
    transport: link,
    rest,
    orgId: rest.orgId,
    store: options.store,
    processors: ready,
    workers: config.numWorkers,
    prefetch: config.prefetch || undefined,
    transactions: config.stompTransactions,
    maxBodyBytes: config.stompMaxMessageKb * 1024,
    recordDir: options.recordDir,
    healthIntervalMs: options.healthIntervalMs ?? 0,
  });
  const listener = core.listener;
  // A stop while connecting ends the attempts; once connected, the link is the listener's
  // to close, after its last replies are confirmed (a link closed by the signal itself would
  // cut off the receipts and leave those replies to be sent again after a restart).
  const starting = new AbortController();
  const abortStart = () => starting.abort();
  if (options.signal.aborted) starting.abort();
  options.signal.addEventListener("abort", abortStart, { once: true });
  try {
    await link.start(starting.signal);
  } finally {
    options.signal.removeEventListener("abort", abortStart);
  }
  logger.info("Listening for actions on {queues}", {
    queues: ready.map((p) => actionQueue(rest.orgId, p.queue)).join(", "),
  });
  const stopped = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const stop = (deadlineMs = 10_000) => {
    stopping ??= core.stop(deadlineMs).then(() => stopped.resolve());
    return stopping;
  };
  options.signal.addEventListener("abort", () => void stop(), { once: true });
  link.onFatal((error) => stopped.reject(error));
  return { listener, link, rest, refused, done: stopped.promise, stop };
}

/** The STOMP login for `[resilient]`: the API key, or the user's email and password. */
export function stompLogin(config: ResilientConfig): { login: string; passcode: string } {
  return config.auth.kind === "api_key"
    ? { login: config.auth.id, passcode: config.auth.secret }
    : { login: config.auth.email, passcode: config.auth.password };
}

/** The adapters and settings an action core is built from. */
export interface ActionCoreParts extends Omit<ListenerOptions, "signal"> {
  processors: Processor[];
}

/** A started action core: its listener, and a stop that drains it. */
export interface ActionCore {
  listener: ActionListener;
  /** Stops taking messages, lets the work in hand finish within `deadlineMs`, then aborts it. */
  stop(deadlineMs?: number): Promise<void>;
}

/**
 * Builds and starts the listener over the adapters it is given (the STOMP link and REST
 * client in production; an in-memory transport and a fake clock in unit tests). The caller
 * connects the transport.
 */
export function createActionCore(parts: ActionCoreParts): ActionCore {
  // Handlers are aborted only when a stop's time is up, not by the stop itself: a clean
  // stop lets the work in hand finish.
  const work = new AbortController();
  const { processors, ...options } = parts;
  const listener = new ActionListener({ ...options, signal: work.signal });
  for (const processor of processors) listener.register(processor);
  listener.start();
  return {
    listener,
    stop: (deadlineMs = 10_000) => listener.stop(deadlineMs).finally(() => work.abort()),
  };
}

/** Runs each processor's start-up check; one that fails is left out, not the agent. */
async function verifyProcessors(
  processors: Processor[],
  rest: RestClient,
  signal: AbortSignal,
): Promise<{ ready: Processor[]; refused: { name: string; reason: string }[] }> {
  const ready: Processor[] = [];
  const refused: { name: string; reason: string }[] = [];
  for (const processor of processors) {
    try {
      await processor.verify?.(rest, signal);
      ready.push(processor);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      logger.error("Processor {name} not started: {reason}", { name: processor.name, reason });
      refused.push({ name: processor.name, reason });
    }
  }
  if (!ready.length) {
    throw new Error(
      `No processor could start: ${refused.map((r) => `${r.name}: ${r.reason}`).join("; ")}`,
    );
  }
  return { ready, refused };
}

async function stompTarget(config: ResilientConfig): Promise<SocketTarget> {
  return {
    hostname: config.stompHost,
    port: config.stompPort,
    tls: { caCerts: await caCertsFor(config.stompTls) },
  };
}

function warnIfInsecure(config: ResilientConfig): void {
  for (
    const [key, trust, host] of [["cafile", config.tls, config.host], [
      "stomp_cafile",
      config.stompTls,
      config.stompHost,
    ]] as const
  ) {
    if (trust.kind !== "insecure") continue;
    logger.warn(
      "[resilient] {key} = false asks for NO certificate verification of {host}. The agent still verifies " +
        "unless it was started with --unsafely-ignore-certificate-errors={host}; point {key} at the " +
        "platform's CA bundle instead.",
      { key, host },
    );
  }
}
