/**
 * The ticket service started from the config: the tracker the mail bridge uses (Jira, or
 * the embedded folder of JSON issues), the store, the tokens, the HTTP(S) listener.
 */
import type { Config } from "../config/config.ts";
import type { Tracker } from "../jira/types.ts";
import { log } from "../log/log.ts";
import type { Store } from "../store/store.ts";
import { ticketApp } from "./app.ts";
import { TicketService } from "./tickets.ts";
import { Tokens } from "./tokens.ts";

const logger = log("ticket-api");

export interface TicketApiServer {
  /** The address it listens on (the port is the real one when 0 was asked). */
  url: string;
  port: number;
  finished: Promise<void>;
  app: ReturnType<typeof ticketApp>;
}

/** The tracker tickets go through: Jira with [jira], else the embedded folder. */
export async function ticketTracker(config: Config): Promise<Tracker> {
  if (config.jira) {
    const { JiraTracker } = await import("../jira/client.ts");
    return await JiraTracker.fromConfig(config.jira);
  }
  const { FileTracker } = await import("../mail_bridge/local.ts");
  return new FileTracker(config.ticketApi!.bridge.issuesDir);
}

export async function serveTicketApi(
  config: Config,
  store: Store,
  signal: AbortSignal,
  options: { tracker?: Tracker } = {},
): Promise<TicketApiServer> {
  const settings = config.ticketApi!;
  const tracker = options.tracker ?? await ticketTracker(config);
  const tokens = new Tokens(store);
  const service = new TicketService({
    tracker,
    store,
    config: settings,
    issueType: config.jira?.issueType ?? "Task",
  });
  const app = ticketApp({ service, tokens, store, config: settings });
  const tls = settings.tls
    ? {
      cert: await Deno.readTextFile(settings.tls.certFile),
      key: await Deno.readTextFile(settings.tls.keyFile),
    }
    : undefined;
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: settings.listen.hostname,
    port: settings.listen.port,
    signal,
    ...(tls ?? {}),
    onListen: ({ port }) => listening.resolve(port),
    onError: (error) => {
      logger.error("Ticket API handler failed: {error}", { error });
      return new Response("internal error\n", { status: 500 });
    },
  }, (request) => app.fetch(request));
  const port = await listening.promise;
  const host = settings.listen.hostname.includes(":")
    ? `[${settings.listen.hostname}]`
    : settings.listen.hostname;
  const url = `${tls ? "https" : "http"}://${host}:${port}${settings.context}/`;
  const count = await tokens.count();
  logger.info(
    "Ticket API on {url} (Swagger UI there; boards {boards}; tickets in {where}; {count} token(s))",
    {
      url,
      boards: settings.boards.join(", "),
      where: config.jira ? `Jira at ${config.jira.url}` : `the folder ${settings.bridge.issuesDir}`,
      count,
    },
  );
  if (!count) {
    logger.warning(
      'No token yet: every route but the Swagger UI answers 401. Make one with "agent ticket-api token create NAME"',
    );
  }
  if (!tls && !/^(127\.|localhost$|::1$)/.test(settings.listen.hostname)) {
    logger.warning(
      "The ticket API listens on {host} without TLS: tokens cross the network in the clear " +
        "(set [ticket_api] tls_cert and tls_key)",
      { host: settings.listen.hostname },
    );
  }
  return { url, port, finished: server.finished, app };
}
