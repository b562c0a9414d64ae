import { assert, assertEquals, assertRejects, assertStringIncludes } from "./support/assert.ts";
import { testPki } from "./support/ca.ts";
import { FakeResilient } from "./support/fake_resilient.ts";
import { RestClient } from "../mod/resilient/rest.ts";
import { RestError } from "../mod/resilient/types.ts";
import { TlsError } from "../mod/tls/errors.ts";

const pki = await testPki();
const integration = { sanitizeOps: false, sanitizeResources: false };
const waits: number[] = [];
const fastSleep = (ms: number) => {
  waits.push(ms);
  return Promise.resolve();
};

function apiKeyClient(fake: FakeResilient, extra: { timeoutMs?: number; org?: string } = {}) {
  return RestClient.connect({
    baseUrl: fake.url,
    org: extra.org ?? fake.orgName,
    auth: { kind: "api_key", id: fake.apiKeyId, secret: fake.apiKeySecret },
    caCerts: [pki.caCert],
    sleep: fastSleep,
    ...(extra.timeoutMs ? { timeoutMs: extra.timeoutMs } : {}),
  });
}

Deno.test({
  name: "REST: API key auth resolves the org id from its name; unknown and disabled orgs are named",
  ...integration,
  async fn() {
    const fake = await new FakeResilient({ orgId: 201, orgName: "Dunder Mifflin" }).start();
    try {
      const client = await apiKeyClient(fake);
      assertEquals(client.orgId, 201);
      const auth = fake.seen(/GET \/rest\/session/)[0]!.headers.get("authorization");
      assertEquals(auth, `Basic ${btoa(`${fake.apiKeyId}:${fake.apiKeySecret}`)}`);
      const unknown = await assertRejects(() => apiKeyClient(fake, { org: "Initech" }));
      assertStringIncludes(unknown.message, 'Org "Initech" is not one this account belongs to');
      assertStringIncludes(unknown.message, '"Dunder Mifflin"');
      const disabled = await assertRejects(() => apiKeyClient(fake, { org: "Disabled Org" }));
      assertStringIncludes(disabled.message, "disabled");
    } finally {
      await fake.stop();
    }
  },
});

Deno.test({
  name: "REST: email/password sessions send the cookie and X-sess-id, and log in again after a 401",
  ...integration,
  async fn() {
    const fake = await new FakeResilient().start();
    fake.incidents.set(7, { id: 7, name: "i", vers: 1 });
    try {
      const client = await RestClient.connect({
        baseUrl: fake.url,
        org: fake.orgName,
        auth: { kind: "password", email: fake.email, password: fake.password },
        caCerts: [pki.caCert],
        sleep: fastSleep,
      });
      assertEquals((await client.get<{ id: number }>("/incidents/7")).id, 7);
      const call = fake.seen(/GET \/rest\/orgs\/201\/incidents\/7/)[0]!;
      assert(call.headers.get("cookie")?.startsWith("JSESSIONID="));
      assert(call.headers.get("x-sess-id"));
      fake.expireSessions();
      assertEquals((await client.get<{ id: number }>("/incidents/7")).id, 7);
      assertEquals(fake.seen(/POST \/rest\/session/).length, 2);
    } finally {
      await fake.stop();
    }
  },
});

Deno.test({
  name:
    "REST: GETs are retried on 5xx and 429 (Retry-After honoured); a POST is not re-sent after a 5xx",
  ...integration,
  async fn() {
    const fake = await new FakeResilient().start();
    fake.incidents.set(7, { id: 7, vers: 1 });
    try {
      const client = await apiKeyClient(fake);
      waits.length = 0;
      fake.fault({ match: /GET .*incidents\/7/, status: 503 });
      fake.fault({ match: /GET .*incidents\/7/, status: 429, retryAfter: "7" });
      assertEquals((await client.get<{ id: number }>("/incidents/7")).id, 7);
      assertEquals(fake.seen(/GET .*incidents\/7/).length, 3);
      assert(waits[1]! >= 7_000 * 0.75, `Retry-After waited ${waits[1]} ms`);
      fake.fault({ match: /POST .*artifacts/, status: 503 });
      const error = await assertRejects(
        () => client.post("/incidents/7/artifacts", { type: 1, value: "1.2.3.4" }),
        RestError,
      );
      assertEquals(error.status, 503);
      assertEquals(fake.seen(/POST .*artifacts/).length, 1);
      fake.fault({ match: /POST .*artifacts/, status: 429, retryAfter: "1" });
      assertEquals(await client.post("/incidents/7/artifacts", { type: 1, value: "1.2.3.4" }), [
        { id: 2001, inc_id: 7, type: 1, value: "1.2.3.4" },
      ]);
      assertEquals(fake.artifacts.length, 1, "the POST reached the platform once");
      assertEquals(fake.seen(/POST .*artifacts/).length, 3);
    } finally {
      await fake.stop();
    }
  },
});

Deno.test({
  name: "REST: a 409 Conflict on PUT is re-read and re-applied",
  ...integration,
  async fn() {
    const fake = await new FakeResilient().start();
    fake.incidents.set(7, { id: 7, name: "old", plan_status: "A", vers: 1 });
    try {
      const client = await apiKeyClient(fake);
      let applied = 0;
      const result = await client.getPut<{ name: string; vers: number }>(
        "/incidents/7",
        (incident) => {
          applied++;
          // Someone else edits the incident between our GET and PUT, once.
          if (applied === 1) {
            fake.incidents.set(7, { ...fake.incidents.get(7)!, plan_status: "C", vers: 2 });
          }
          incident.name = "new";
        },
      );
      assertEquals(applied, 2);
      assertEquals(result.name, "new");
      assertEquals(fake.incidents.get(7)!.plan_status, "C"); // the other edit survived
    } finally {
      await fake.stop();
    }
  },
});

Deno.test({
  name: "REST: malformed bodies, timeouts and untrusted certificates give errors that say so",
  ...integration,
  async fn() {
    const fake = await new FakeResilient().start();
    fake.incidents.set(7, { id: 7, vers: 1 });
    try {
      const client = await apiKeyClient(fake, { timeoutMs: 300 });
      fake.fault({ match: /GET .*incidents\/7/, rawBody: "<html>proxy error" });
      const bad = await assertRejects(() => client.get("/incidents/7"), RestError);
      assertStringIncludes(bad.message, "not JSON");
      fake.fault({ match: /GET .*incidents\/7/, delayMs: 1_000, times: 5 });
      const slow = await assertRejects(() => client.get("/incidents/7"));
      assertStringIncludes(slow.message, "GET /rest/orgs/201/incidents/7 failed");
    } finally {
      await fake.stop();
    }
    const untrusted = await new FakeResilient().start({ cert: "untrusted" });
    try {
      const error = await assertRejects(() => apiKeyClient(untrusted), TlsError);
      assertStringIncludes(error.message, "not signed by a trusted CA");
    } finally {
      await untrusted.stop();
    }
  },
});

Deno.test({
  name: "REST: rule names come from /actions, cached",
  ...integration,
  async fn() {
    const fake = await new FakeResilient().start();
    fake.rules.set(11, "DueDate change");
    try {
      const client = await apiKeyClient(fake);
      assertEquals(await client.ruleName(11), "DueDate change");
      assertEquals(await client.ruleName(11), "DueDate change");
      assertEquals(fake.seen(/GET .*\/actions$/).length, 1);
    } finally {
      await fake.stop();
    }
  },
});
