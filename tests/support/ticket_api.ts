/**
 * The ticket service in this process against a fake Jira over HTTPS (either flavour), with a
 * write and a read token, and a small client for its routes.
 */
import { parseConfig } from "../../mod/config/config.ts";
import { JiraTracker } from "../../mod/jira/client.ts";
import { Store } from "../../mod/store/store.ts";
import { serveTicketApi, type TicketApiServer } from "../../mod/ticket_api/serve.ts";
import { Tokens } from "../../mod/ticket_api/tokens.ts";
import { freePort } from "./activemq.ts";
import { testPki } from "./ca.ts";
import { FakeJira, jiraSection } from "./fake_jira.ts";

export interface TicketApiHarness {
  jira: FakeJira;
  store: Store;
  tokens: Tokens;
  server: TicketApiServer;
  /** `<context>` URL without the trailing slash. */
  base: string;
  write: string;
  read: string;
  call(
    method: string,
    path: string,
    options?: {
      token?: string | null;
      json?: unknown;
      body?: BodyInit;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; headers: Headers; body: unknown; text: string }>;
  close(): Promise<void>;
}

export async function startTicketApi(
  flavour: "cloud" | "server" = "cloud",
  extra = "",
): Promise<TicketApiHarness> {
  const pki = await testPki();
  const jira = await new FakeJira(flavour).start();
  const port = freePort();
  const config = parseConfig(
    `[agent]
store = :memory:
${jiraSection(jira, pki.caCertFile, { project: "SUP" })}
[mail_bridge]
project_keys = OPS
categories = general, network
default_category = general
priorities = high:High, low:Low
[ticket_api]
listen = 127.0.0.1:${port}
${/timeout_seconds/.test(extra) ? "" : "timeout_seconds = 5"}
${extra}
`,
    { file: "ticket-api-test.config", env: () => undefined },
  );
  const store = await Store.open(":memory:");
  const tokens = new Tokens(store);
  const write = await tokens.create("writer", "write");
  const read = await tokens.create("reader", "read");
  const stop = new AbortController();
  const tracker = await JiraTracker.fromConfig(config.jira!, {
    // Throttling waits are real but short in tests.
    sleep: (ms, signal) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, Math.min(ms, 200));
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      }),
  });
  const server = await serveTicketApi(config, store, stop.signal, { tracker });
  const base = server.url.replace(/\/$/, "");
  return {
    jira,
    store,
    tokens,
    server,
    base,
    write,
    read,
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { ...(options.headers ?? {}) };
      const token = options.token === undefined ? write : options.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let body = options.body;
      if (options.json !== undefined) {
        body = JSON.stringify(options.json);
        headers["content-type"] ??= "application/json";
      }
      const response = await fetch(`${base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        redirect: "manual",
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch { /* not JSON */ }
      return { status: response.status, headers: response.headers, body: parsed, text };
    },
    async close() {
      stop.abort();
      await server.finished;
      store.close();
      await jira.stop();
    },
  };
}
