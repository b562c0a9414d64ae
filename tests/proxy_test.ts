/**
 * Appliances often reach the outside only through a proxy: REST (SOAR), Graph, Entra ID and
 * Jira go through `[resilient] proxy_*` (resilient-circuits' keys) or HTTPS_PROXY, as HTTP
 * CONNECT tunnels with Basic proxy credentials, TLS still verified end to end; NO_PROXY
 * hosts go direct.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./support/assert.ts";
import { ConnectProxy } from "./support/connect_proxy.ts";
import { FakeResilient, resilientSection } from "./support/fake_resilient.ts";
import { testPki } from "./support/ca.ts";
import { startBridge } from "./support/mail_bridge.ts";
import { parseConfig } from "../mod/config/config.ts";
import { RestClient } from "../mod/resilient/rest.ts";
import { httpClientFor } from "../mod/net/http.ts";
import { describeError } from "../mod/errors/classify.ts";
import { HttpsFake } from "./support/https_fake.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "SOAR REST through [resilient] proxy_host/proxy_port/proxy_user/proxy_password: a CONNECT " +
    "tunnel with the proxy's credentials, the platform's certificate still verified",
  ...integration,
  async fn() {
    const pki = await testPki();
    const fake = await new FakeResilient({ orgId: 201 }).start();
    const proxy = new ConnectProxy({ username: "agent", password: "proxy-pw-1" }).start();
    try {
      const config = (password: string) =>
        parseConfig(
          resilientSection(fake, { sslPort: 1, caCertFile: pki.caCertFile }) +
            `proxy_host = 127.0.0.1\nproxy_port = ${proxy.port}\nproxy_user = agent\n` +
            `proxy_password = $PROXY_PW\n`,
          {
            file: "/tmp/proxy.ini",
            env: (name) => ({ SOAR_SECRET: fake.apiKeySecret, PROXY_PW: password })[name],
          },
        );
      const rest = await RestClient.fromConfig(config("proxy-pw-1").resilient!);
      assertEquals(rest.orgId, 201);
      assert(proxy.tunnels.length >= 1, "no tunnel");
      assert(proxy.tunnels.every((t) => t === `127.0.0.1:${fake.port}`), proxy.tunnels.join());
      const refused = await assertRejects(() => RestClient.fromConfig(config("wrong").resilient!));
      assertStringIncludes(describeError(refused), "proxy authentication required");
    } finally {
      proxy.stop();
      await fake.stop();
    }
  },
});

Deno.test({
  name: "the mail bridge's Entra ID, Graph and Jira requests take [resilient]'s proxy too",
  ...integration,
  async fn() {
    const proxy = new ConnectProxy().start();
    const h = await startBridge({
      bridge: { ack_mail: "false" },
      extra: `[resilient]\nhost = soar.example.com\norg = Example\napi_key_id = a\n` +
        `api_key_secret = b\nproxy_host = http://127.0.0.1:${proxy.port}\n`,
    });
    try {
      const mail = h.graph.deliver({ from: "ann@example.com", subject: "Via proxy", text: "x" });
      await h.sync();
      assertEquals(h.jira.issuesForMessage(mail.internetMessageId).length, 1);
      const targets = new Set(proxy.tunnels);
      assertEquals(targets, new Set([`127.0.0.1:${h.graph.port}`, `127.0.0.1:${h.jira.port}`]));
    } finally {
      await h.close();
      proxy.stop();
    }
  },
});

Deno.test({
  name: "HTTPS_PROXY is taken when no proxy is configured, and NO_PROXY sends a host direct",
  ...integration,
  async fn() {
    const pki = await testPki();
    const proxy = new ConnectProxy().start();
    const target = new HttpsFake();
    target.route("GET", "/x", () => ({ ok: true }));
    await target.start();
    const saved = { https: Deno.env.get("HTTPS_PROXY"), no: Deno.env.get("NO_PROXY") };
    try {
      Deno.env.set("HTTPS_PROXY", proxy.url);
      Deno.env.delete("NO_PROXY");
      const caCerts = [await Deno.readTextFile(pki.caCertFile)];
      const via = httpClientFor(target.url, { caCerts });
      await (await fetch(`${target.url}/x`, { client: via! })).body?.cancel();
      assertEquals(proxy.tunnels, [`127.0.0.1:${target.port}`]);
      Deno.env.set("NO_PROXY", "localhost, 127.0.0.1");
      const direct = httpClientFor(target.url, {
        caCerts,
        proxy: { url: proxy.url }, // even a configured proxy is bypassed for NO_PROXY hosts
      });
      await (await fetch(`${target.url}/x`, { client: direct! })).body?.cancel();
      assertEquals(proxy.tunnels.length, 1, "NO_PROXY: no second tunnel");
    } finally {
      for (const [name, value] of [["HTTPS_PROXY", saved.https], ["NO_PROXY", saved.no]]) {
        if (value === undefined) Deno.env.delete(name!);
        else Deno.env.set(name!, value);
      }
      proxy.stop();
      await target.stop();
    }
  },
});
