/** `agent doctor`'s check of the platform: REST (login, org, Action Module) and STOMP (login, a subscription per queue the processors would serve, taking no message). */
import { Client as StompClient, type IFrame } from "@stomp/stompjs";
import { stompLogin } from "../action_module/core.ts";
import { actionQueue } from "../action_module/message.ts";
import type { Config } from "../config/config.ts";
import { checkEndpoint } from "../probe/network.ts";
import {
  checkUrl,
  findingsOf,
  limited,
  message,
  type ProbeContext,
  statusOf,
  tlsOf,
} from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";
import { DenoStompSocket } from "../stomp/socket.ts";
import { caCertsFor } from "../tls/trust.ts";
import { processorFiles, processorsDir } from "./load.ts";

/** REST (login, org, Action Module enabled) and STOMP (login, a subscription per queue). */
export async function checkResilient(config: Config, ctx: ProbeContext): Promise<Finding[]> {
  const r = config.resilient!;
  const rest = findingsOf("[resilient] REST");
  const restUsable = await checkUrl(ctx, rest.list, {
    system: "[resilient] REST",
    url: `https://${r.host}:${r.port}`,
    urlKey: "[resilient] host",
    trust: r.tls,
    trustKey: "[resilient] cafile",
  });
  let orgId: number | undefined;
  if (restUsable) {
    const who = r.auth.kind === "api_key" ? `API key "${r.auth.id}"` : `"${r.auth.email}"`;
    try {
      const { RestClient } = await import("../resilient/rest.ts");
      const client = await limited(ctx, "login", (signal) => RestClient.fromConfig(r, { signal }));
      orgId = client.orgId;
      rest.add("login", "pass", `${who} logged in; org "${r.org}" is id ${orgId}`);
      const org = await limited(
        ctx,
        "org",
        (signal) =>
          client.get<{ actions_framework_enabled?: boolean }>(`/rest/orgs/${orgId}`, { signal }),
      );
      // The version is a nicety for the row: no answer is not a failure.
      const version = await limited(
        ctx,
        "const",
        (signal) =>
          client.get<{ server_version?: { version?: string } }>("/rest/const", { signal }),
      ).then((c) => c.server_version?.version, () => undefined);
      const on = version ? ` (platform ${version})` : "";
      if (org.actions_framework_enabled === false) {
        rest.add(
          "action module",
          "fail",
          `org "${r.org}" has the Action Module (actions framework) switched off${on}`,
          "ask the platform administrator to enable it for the org",
        );
      } else {
        rest.add("action module", "pass", `enabled for org "${r.org}"${on}`);
      }
    } catch (error) {
      const status = statusOf(error);
      rest.add(
        "login",
        "fail",
        message(error),
        status === 401 || status === 403
          ? r.auth.kind === "api_key"
            ? "check [resilient] api_key_id and api_key_secret (the key may be deleted or expired)"
            : "check [resilient] email and password"
          : /Org "/.test(message(error))
          ? "check [resilient] org: it must be the org's name exactly"
          : undefined,
      );
    }
  }

  const stomp = findingsOf("[resilient] STOMP");
  const report = await checkEndpoint({
    system: "[resilient] STOMP",
    host: r.stompHost,
    port: r.stompPort,
    hostKey: "[resilient] stomp_host",
    tls: await tlsOf(r.stompTls, "[resilient] stomp_cafile"),
    timeoutMs: ctx.timeoutMs,
  }, ctx.signal);
  stomp.list.push(...report.findings);
  if (report.usable) {
    if (orgId === undefined) {
      stomp.add("subscribe", "skip", "needs the org id from a REST login, which failed");
    } else {
      const queues = await actionQueues(config);
      stomp.list.push(...await stompSubscribe(config, orgId, queues, ctx));
    }
  }
  return [...rest.list, ...stomp.list];
}

/** The queues the action service would listen on. */
async function actionQueues(config: Config): Promise<string[]> {
  const queues = new Set<string>();
  if (config.taskcalendar) queues.add(config.taskcalendar.queue);
  const dir = processorsDir(config);
  if (dir) {
    try {
      for (const name of (await processorFiles(dir)).keys()) {
        // A processor's own default queue is in its module; the config's key wins over it,
        // and loading user code just to learn the name is more than a check should do.
        queues.add(config.other[name]?.["queue"] || name);
      }
    } catch { /* the processors check of `agent actions list` reports this */ }
  }
  return [...queues];
}

/** Logs in over STOMP and subscribes to each queue without taking a message. */
async function stompSubscribe(
  config: Config,
  orgId: number,
  queues: string[],
  ctx: ProbeContext,
): Promise<Finding[]> {
  const r = config.resilient!;
  const { list, add } = findingsOf("[resilient] STOMP");
  const login = stompLogin(r);
  const ca = await caCertsFor(r.stompTls);
  const errors: string[] = [];
  const connected = Promise.withResolvers<void>();
  const client = new StompClient({
    webSocketFactory: () =>
      new DenoStompSocket({ hostname: r.stompHost, port: r.stompPort, tls: { caCerts: ca } }),
    connectHeaders: { ...login, host: r.stompHost },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectionTimeout: ctx.timeoutMs,
    onConnect: () => connected.resolve(),
    onStompError: (frame: IFrame) => {
      const why = frame.headers["message"] ?? frame.body ?? "ERROR frame";
      errors.push(why);
      connected.reject(new Error(why));
    },
    onWebSocketClose: () => connected.reject(new Error(errors.at(-1) ?? "connection closed")),
    debug: () => {},
  });
  client.activate();
  try {
    await limited(ctx, "STOMP login", () => connected.promise);
    add("login", "pass", `"${login.login}" logged in to the broker`);
  } catch (error) {
    add(
      "login",
      "fail",
      `the broker refused the login of "${login.login}": ${message(error)}`,
      "the STOMP login is the [resilient] API key (or email/password); check it",
    );
    await client.deactivate();
    return list;
  }
  if (!queues.length) {
    add("subscribe", "skip", "no action queues configured ([taskcalendar] or processors_dir)");
  }
  for (const queue of queues) {
    const destination = actionQueue(orgId, queue);
    const receipt = `doctor-${crypto.randomUUID()}`;
    const confirmed = Promise.withResolvers<void>();
    client.watchForReceipt(receipt, () => confirmed.resolve());
    const before = errors.length;
    try {
      const subscription = client.subscribe(destination, () => {}, {
        id: `doctor-${queue}`,
        ack: "client-individual",
        // Matches no message: the check proves the right to read without taking anything.
        selector: "1 = 0",
        receipt,
      });
      await limited(ctx, `subscribe ${destination}`, () =>
        Promise.race([
          confirmed.promise,
          connected.promise.then(() => new Promise<never>(() => {})),
        ]));
      subscription.unsubscribe();
      if (errors.length > before) throw new Error(errors.at(-1));
      add("queue", "pass", `subscribed to ${destination}`);
    } catch (error) {
      add(
        "queue",
        "fail",
        `cannot subscribe to ${destination}: ${errors.at(-1) ?? message(error)}`,
        `does the platform have a message destination "${queue}" the API key may read?`,
      );
    }
  }
  await client.deactivate();
  return list;
}
