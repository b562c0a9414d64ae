/**
 * `agent run`: every service the config enables, in one process with one store and one log.
 * That is the action service (the calendar when `[taskcalendar]` is present, and the custom
 * processors of the processors folder, on one STOMP connection), the mail bridge (`[graph]`
 * and `[jira]`, or `[mail_bridge]` on the embedded defaults) and the HTTP listener
 * (`[agent] http_listen`). A service that fails (the platform unreachable at start-up, a TLS
 * or login error) is restarted with backoff and reported; the others keep running. SIGTERM
 * drains everything.
 */
import { platformLine } from "../ops/startup.ts";
import type { BuiltProcessor } from "../action_module/factory.ts";
import { type ActionService, startActionService } from "../action_module/core.ts";
import type { Config } from "../config/config.ts";
import { ConfigError } from "../config/errors.ts";
import { log } from "../log/log.ts";
import { type Health, parseListen, serveOps } from "../ops/http.ts";
import { type Family, gauge, render } from "../ops/prometheus.ts";
import { DEAD_LETTER_PREFIX } from "../action_module/listener.ts";
import { Store } from "../store/store.ts";
import { SERVICE_BACKOFF_MS, supervise } from "../async/supervise.ts";
import { enabledProcessors, wantsProcessors } from "../actions/catalogue.ts";
import { sandboxFailures } from "../sandbox/sandbox.ts";
import { describeError } from "../errors/classify.ts";

const logger = log("run");

/** What `agent run` needs besides the config. */
export interface RunDeps {
  signal: AbortSignal;
  env: (name: string) => string | undefined;
  /** Called once the HTTP listener is up (tests learn its port). */
  onListening?: (port: number) => void;
}

/** Runs until the signal aborts; returns the exit code. */
export async function runServices(config: Config, deps: RunDeps): Promise<number> {
  const wantsActions = await wantsProcessors(config);
  const resilient = config.resilient;
  if (wantsActions && !resilient) {
    throw new ConfigError(
      { file: config.file, section: "resilient" },
      "missing: the action service (calendar, processors) needs the platform",
    );
  }
  if (!wantsActions && !config.mailBridge && !config.ticketApi) {
    throw new ConfigError(
      { file: config.file, section: "agent" },
      "nothing to run: configure [taskcalendar] or [agent] processors_dir (with [resilient]), " +
        "the mail bridge ([graph] and [jira]), or the ticket API ([ticket_api])",
    );
  }
  const store = await Store.open(config.agent.store);
  try {
    const actions = resilient && wantsActions
      ? superviseActions(config, resilient, store, deps)
      : undefined;
    const bridge = config.mailBridge
      ? (await import("../mail_bridge/run_bridge.ts")).superviseBridge(config, store, deps.signal)
      : undefined;
    // The ticket API's address is the config's: failing to listen there stops the run.
    const tickets = config.ticketApi
      ? await (await import("../ticket_api/serve.ts")).serveTicketApi(config, store, deps.signal)
      : undefined;
    const sources = {
      health: () =>
        Promise.resolve({
          ...(actions ? { actions: actions.health() } : {}),
          ...(bridge ? { mail_bridge: bridge.health() } : {}),
          ...(tickets
            ? { ticket_api: { healthy: true, detail: `listening on ${tickets.url}` } }
            : {}),
        }),
      metrics: async () =>
        render([
          ...(actions ? await actions.families() : []),
          ...(bridge ? await bridge.families() : []),
          ...processFamilies(),
        ]),
    };
    const http = config.agent.httpListen
      ? await serveOps(parseListen(config.agent.httpListen, config), sources, deps.signal)
      : undefined;
    if (http) deps.onListening?.(http.port);
    await Promise.all([actions?.done, bridge?.done, tickets?.finished]);
    await http?.finished;
    return 0;
  } finally {
    store.close();
  }
}

/** The action service, restarted with backoff when it fails. */
function superviseActions(
  config: Config,
  resilient: NonNullable<Config["resilient"]>,
  store: Store,
  deps: RunDeps,
) {
  let current: ActionService | undefined;
  let state = "starting";
  logger.info(platformLine(resilient));
  const done = supervise({
    signal: deps.signal,
    delaysMs: SERVICE_BACKOFF_MS,
    async run(started) {
      let built: BuiltProcessor[] = [];
      try {
        built = await enabledProcessors(config, deps.env);
        current = await startActionService(resilient, built.map((b) => b.processor), {
          store,
          signal: deps.signal,
          healthIntervalMs: config.agent.healthIntervalMinutes * 60_000,
        });
        state = "running";
        started();
        await current.done;
        logger.info("Actions service stopped: {stats}", { stats: current.listener.stats() });
      } catch (error) {
        await current?.stop(1_000).catch(() => {});
        current = undefined;
        throw error;
      } finally {
        for (const b of built) b.close();
      }
    },
    onFailure(error, waitMs) {
      const message = describeError(error);
      state = `failed: ${message}`;
      logger.error("Actions service failed: {error}; restarting in {seconds} s", {
        error: message,
        seconds: waitMs / 1000,
      });
    },
  });
  return {
    done,
    health: () => health(current, state, resilient.numWorkers),
    families: () => metrics(current, store),
  };
}

function health(service: ActionService | undefined, state: string, workers: number): Health {
  if (!service) return { healthy: false, detail: state };
  const stats = service.listener.stats();
  const backlog = Math.max(100, 10 * workers);
  if (!service.link.connected) {
    return { healthy: false, detail: "not connected to the Action Module" };
  }
  if (stats.inFlight > backlog) {
    return { healthy: false, detail: `backlogged: ${stats.inFlight} actions in flight` };
  }
  const refused = service.refused.map((r) => `${r.name} refused (${r.reason})`);
  return {
    healthy: true,
    detail: [`connected; ${stats.inFlight} in flight`, ...refused].join("; "),
  };
}

async function metrics(service: ActionService | undefined, store: Store): Promise<Family[]> {
  const families: Family[] = [];
  if (service) {
    const { queues, latency } = service.listener.metrics();
    const perQueue = (pick: (c: { received: number; acked: number; failed: number }) => number) =>
      [...queues].map(([queue, c]) => ({ labels: { queue }, value: pick(c) }));
    const stats = service.listener.stats();
    families.push(
      {
        name: "agent_actions_received_total",
        help: "Action messages received, by queue.",
        type: "counter",
        samples: perQueue((c) => c.received),
      },
      {
        name: "agent_actions_acked_total",
        help: "Action messages finished: recorded, acknowledged and replied to.",
        type: "counter",
        samples: perQueue((c) => c.acked),
      },
      {
        name: "agent_actions_failed_total",
        help: "Action messages finished with an error reply.",
        type: "counter",
        samples: perQueue((c) => c.failed),
      },
      {
        name: "agent_action_reply_seconds",
        help: "Time from receiving an action message to acknowledging it with its reply.",
        type: "histogram",
        histogram: latency,
      },
      gauge("agent_actions_in_flight", "Action messages being handled.", stats.inFlight),
      gauge(
        "agent_stomp_connected",
        "1 while connected to the Action Module.",
        service.link.connected ? 1 : 0,
      ),
      {
        name: "agent_stomp_reconnects_total",
        help: "Reconnects to the Action Module.",
        type: "counter",
        samples: [{ value: stats.reconnects }],
      },
    );
  }
  families.push(
    gauge(
      "agent_outbox_size",
      "Replies of debounced or deferred messages not yet confirmed by the broker.",
      await store.count(["actions", "outbox"]),
    ),
    gauge(
      "agent_dead_letters",
      "Action messages kept because they could not be processed.",
      await store.count(DEAD_LETTER_PREFIX),
    ),
    {
      name: "agent_sandbox_failures_total",
      help: "Sandboxes of user code that ended on their own (memory, stuck, crash); each is " +
        "replaced for the next call.",
      type: "counter",
      samples: sandboxFailures().map((f) => ({
        labels: { sandbox: f.sandbox, cause: f.cause },
        value: f.count,
      })),
    },
  );
  return families;
}

/** The process's own memory, in the names Prometheus client libraries use. */
function processFamilies(): Family[] {
  const memory = Deno.memoryUsage();
  return [
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", memory.rss),
    gauge(
      "agent_heap_used_bytes",
      "JavaScript heap in use, bytes (of agent_heap_total_bytes reserved).",
      memory.heapUsed,
    ),
    gauge("agent_heap_total_bytes", "JavaScript heap reserved, bytes.", memory.heapTotal),
    gauge(
      "agent_external_memory_bytes",
      "Memory outside the JavaScript heap held by JavaScript objects (buffers), bytes.",
      memory.external,
    ),
  ];
}
