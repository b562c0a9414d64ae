/** `agent doctor`'s check of Microsoft Graph: the endpoints, a token (and the delegated sign-in), one read of the mailbox. */
import type { Config } from "../config/config.ts";
import {
  findingsOf,
  limited,
  message,
  type ProbeContext,
  reachable,
  statusOf,
} from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";
import { readStore } from "../store/probe.ts";
import type { Store } from "../store/store.ts";
import { SIGN_IN_COMMAND } from "./types.ts";

/** Graph: the token endpoint and Graph itself, a token, one read of the mailbox. */
export async function checkGraph(config: Config, ctx: ProbeContext): Promise<Finding[]> {
  const g = config.graph!;
  const { list, add } = findingsOf("[graph]");
  const [authority, graph] = await Promise.all([
    reachable(ctx, list, "graph", {
      url: g.authorityHost,
      urlKey: "authority_host",
      trust: g.tls,
    }),
    new URL(g.graphUrl).host === new URL(g.authorityHost).host
      ? Promise.resolve(true)
      : reachable(ctx, list, "graph", { url: g.graphUrl, urlKey: "graph_url", trust: g.tls }),
  ]);
  if (!authority) return list;
  if (g.auth === "delegated") {
    // The sign-in lives in the store: checked on a copy of it (nothing written).
    const checked = await readStore(
      config.agent.store,
      (store) => checkGraphWith(g, ctx, list, add, graph, store),
    );
    if (!checked) {
      add("sign-in", "fail", "nobody has signed in yet (no store)", `run: ${SIGN_IN_COMMAND}`);
    }
    return list;
  }
  return await checkGraphWith(g, ctx, list, add, graph, undefined);
}

async function checkGraphWith(
  g: NonNullable<Config["graph"]>,
  ctx: ProbeContext,
  list: Finding[],
  add: ReturnType<typeof findingsOf>["add"],
  graph: boolean,
  store: Store | undefined,
): Promise<Finding[]> {
  const { MsalTokenSource, signInOf, REFRESH_TOKEN_IDLE_DAYS } = await import("./token.ts");
  const { GraphMailbox } = await import("./client.ts");
  if (store) {
    const signIn = await signInOf(store, g);
    if (!signIn) {
      add("sign-in", "fail", "nobody has signed in yet", `run: ${SIGN_IN_COMMAND}`);
      return list;
    }
    const idle = Math.floor((ctx.now() - Date.parse(signIn.refreshedAt)) / 86_400_000);
    const left = REFRESH_TOKEN_IDLE_DAYS - idle;
    add(
      "sign-in",
      left <= 0 ? "fail" : left <= 14 ? "warn" : "pass",
      `${signIn.username}, signed in ${signIn.signedInAt.slice(0, 10)}, token last refreshed ` +
        `${idle} day(s) ago` + (left <= 14
          ? ` (the refresh token lapses after ${REFRESH_TOKEN_IDLE_DAYS} idle days)`
          : ""),
      left <= 14 ? `run: ${SIGN_IN_COMMAND}` : undefined,
    );
  }
  const tokens = await MsalTokenSource.fromConfig(g, { store });
  try {
    await limited(ctx, "token", () => tokens.token({ force: true }));
    add(
      "token",
      "pass",
      g.auth === "delegated"
        ? `a token for the signed-in user from tenant ${g.tenantId}`
        : `app ${g.clientId} got a token from tenant ${g.tenantId}`,
    );
  } catch (error) {
    add(
      "token",
      "fail",
      message(error),
      g.auth === "delegated"
        ? `sign in again: ${SIGN_IN_COMMAND}`
        : g.credential?.kind === "secret"
        ? "check [graph] tenant_id, client_id and client_secret (secrets expire)"
        : "check [graph] tenant_id, client_id and the certificate's thumbprint and key",
    );
    return list;
  }
  if (!graph) return list;
  try {
    const mailbox = await GraphMailbox.fromConfig(g, tokens);
    await limited(ctx, "mailbox", (signal) => mailbox.probe(signal));
    add("mailbox", "pass", `read ${g.mailbox} (${g.folders.join(", ")})`);
  } catch (error) {
    const status = statusOf(error);
    add(
      "mailbox",
      "fail",
      message(error),
      status === 403
        ? g.auth === "delegated"
          ? "the signed-in user needs access to this mailbox (its own, or Full Access)"
          : "grant the app Mail.ReadWrite (application) with admin consent, and check any " +
            "application access policy that limits it to some mailboxes"
        : status === 404
        ? "check [graph] mailbox and folders"
        : undefined,
    );
  }
  return list;
}
