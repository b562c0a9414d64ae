/** Starts the action-listener core in-process against a test broker and fake REST API. */
import type { ActionListener } from "../../mod/action_module/listener.ts";
import { createActionCore } from "../../mod/action_module/core.ts";
import type { Processor } from "../../mod/action_module/types.ts";
import { RestClient } from "../../mod/resilient/rest.ts";
import { StompLink } from "../../mod/stomp/link.ts";
import { Store } from "../../mod/store/store.ts";
import type { Broker } from "./activemq.ts";
import { testPki } from "./ca.ts";
import type { FakeResilient } from "./fake_resilient.ts";

export interface Core {
  listener: ActionListener;
  link: StompLink;
  store: Store;
  rest: RestClient;
  stop(): Promise<void>;
}

export async function startCore(
  broker: Broker,
  fake: FakeResilient,
  processors: Processor[],
  options: { workers?: number; store?: Store; prefetch?: number; transactions?: boolean } = {},
): Promise<Core> {
  const pki = await testPki();
  const store = options.store ?? await Store.open(":memory:");
  const rest = await RestClient.connect({
    baseUrl: fake.url,
    org: fake.orgName,
    auth: { kind: "api_key", id: fake.apiKeyId, secret: fake.apiKeySecret },
    caCerts: [pki.caCert],
  });
  const link = new StompLink({
    target: { hostname: "127.0.0.1", port: broker.sslPort, tls: { caCerts: [pki.caCert] } },
    login: broker.user,
    passcode: broker.password,
    backoffMs: [100, 200, 400],
  });
  const core = createActionCore({
    transport: link,
    rest,
    orgId: rest.orgId,
    store,
    processors,
    workers: options.workers ?? 10,
    prefetch: options.prefetch,
    transactions: options.transactions,
  });
  const listener = core.listener;
  await link.start();
  return {
    listener,
    link,
    store,
    rest,
    async stop() {
      await core.stop(2_000);
      if (!options.store) store.close();
    },
  };
}
