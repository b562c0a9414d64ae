/**
 * Delegated sign-in: `agent authorize --device-code` against the fake Entra ID (device code
 * endpoint, authorization_pending, then the user's tokens), the bridge then working as
 * that user, and a lapsed sign-in named by doctor, the bridge and its log with the command.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { testPki } from "./support/ca.ts";
import { runAgent } from "./support/cli.ts";
import { FakeGraph } from "./support/fake_graph.ts";
import { FakeJira, jiraSection } from "./support/fake_jira.ts";
import { Store } from "../mod/store/store.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
type Finding = { system: string; check: string; status: string; detail: string; hint?: string };

Deno.test(
  "agent authorize --device-code signs a user in; the bridge works as that user; a lapsed sign-in is named with the command to run",
  integration,
  async () => {
    const pki = await testPki();
    const graph = await new FakeGraph().start();
    const jira = await new FakeJira().start();
    const dir = await Deno.makeTempDir({ prefix: "graph-delegated-" });
    const file = `${dir}/app.config`;
    await Deno.writeTextFile(
      file,
      `[agent]\nstore = ${dir}/agent.kv\n\n[graph]\nauth = delegated\ntenant_id = ${graph.tenantId}\n` +
        `client_id = ${graph.clientId}\nauthority_host = ${graph.url}\ngraph_url = ${graph.url}/v1.0\n` +
        `cafile = ${pki.caCertFile}\nmailbox = ${graph.mailbox}\n\n` +
        `${jiraSection(jira, pki.caCertFile)}\n[mail_bridge]\nack_mail = false\n`,
      { mode: 0o600 },
    );
    const run = (args: string[]) => runAgent([...args, "--config", file, "--log-format", "json"]);
    const doctorGraph = async () => {
      const r = await runAgent(["doctor", "--json", "--timeout", "5", "--config", file]);
      return (JSON.parse(r.stdout).findings as Finding[]).filter((f) => f.system === "[graph]");
    };
    try {
      // Before anyone signed in: the bridge and doctor say what to run.
      const early = await doctorGraph();
      assertEquals(early.find((f) => f.check === "sign-in")?.status, "fail");
      assertStringIncludes(
        early.find((f) => f.check === "sign-in")!.hint!,
        "agent authorize --device-code",
      );
      const plain = await run(["authorize"]);
      assertEquals(plain.code, 2);
      assertStringIncludes(plain.stderr, "--device-code");

      const signIn = await run(["authorize", "--device-code"]);
      assertEquals(signIn.code, 0, signIn.stderr);
      assertStringIncludes(signIn.stderr, "https://microsoft.com/devicelogin");
      assertStringIncludes(signIn.stderr, "ABCD-1234");
      assertStringIncludes(signIn.stderr, "Signed in as helpdesk@example.com");
      assertStringIncludes(signIn.stdout, "Authorized: the signed-in user can read");

      // The bridge reads and bridges as that user.
      graph.deliver({ from: "ann@example.com", subject: "Delegated works", text: "hello" });
      const bridged = await run(["mail-bridge", "--once"]);
      assertEquals(bridged.code, 0, bridged.stderr);
      assertEquals([...jira.issues.values()].map((i) => i.fields.summary), ["Delegated works"]);
      const fine = await doctorGraph();
      assertEquals(fine.find((f) => f.check === "sign-in")?.status, "pass");
      assertEquals(fine.find((f) => f.check === "token")?.status, "pass");
      assertEquals(fine.find((f) => f.check === "mailbox")?.status, "pass");

      // Not refreshed for 80 days: a warning, 10 days before Entra ID drops it.
      const store = await Store.open(`${dir}/agent.kv`);
      const key = ["graph", "sign_in", graph.tenantId, graph.clientId];
      const saved = await store.get<Record<string, string>>(key);
      await store.set(key, {
        ...saved,
        refreshedAt: new Date(Date.now() - 80 * 86_400_000).toISOString(),
      });
      store.close();
      const idle = (await doctorGraph()).find((f) => f.check === "sign-in")!;
      assertEquals(idle.status, "warn");
      assertStringIncludes(idle.hint!, "agent authorize --device-code");

      // The refresh token lapses (and the access tokens end): doctor, the bridge and its log say
      // what to run.
      graph.expireRefreshTokens();
      graph.revokeTokens();
      const lapsed = (await doctorGraph()).find((f) => f.check === "token")!;
      assertEquals(lapsed.status, "fail");
      assertStringIncludes(lapsed.detail, "agent authorize --device-code");
      graph.deliver({ from: "ann@example.com", subject: "After the lapse", text: "hello" });
      const failing = await run(["mail-bridge", "--once"]);
      assert(failing.code !== 0);
      assertStringIncludes(failing.stderr, "agent authorize --device-code");
      assertEquals(jira.issues.size, 1, "nothing lost: the mail waits for the sign-in");
      // Signing in again brings it back; the waiting mail is bridged.
      assertEquals((await run(["authorize", "--device-code"])).code, 0);
      const again = await run(["mail-bridge", "--once"]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(jira.issues.size, 2);
    } finally {
      await graph.stop();
      await jira.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("[graph] auth: delegated needs no secret and refuses one; app needs a credential; scopes", async () => {
  const { parseConfig } = await import("../mod/config/config.ts");
  const base = "[graph]\ntenant_id = t\nclient_id = c\nmailbox = m@example.com\n";
  const read = (extra: string) =>
    parseConfig(base + extra, { file: "a.ini", env: () => undefined });
  const delegated = read("").graph!;
  assertEquals([delegated.auth, delegated.scopes], ["delegated", [
    "Mail.ReadWrite",
    "Mail.Send",
    "offline_access",
  ]]);
  assertEquals(read("client_secret = s\n").graph!.auth, "app");
  assertEquals(read("scopes = Mail.Read, offline_access\n").graph!.scopes, [
    "Mail.Read",
    "offline_access",
  ]);
  const refuse = (extra: string, named: string) => {
    try {
      read(extra);
    } catch (error) {
      assertStringIncludes((error as Error).message, named);
      return;
    }
    throw new Error(`accepted: ${extra}`);
  };
  refuse("auth = delegated\nclient_secret = s\n", "graph.auth");
  refuse("auth = app\n", "no credentials");
  refuse("auth = both\n", "graph.auth");
});
