import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { testPki } from "./support/ca.ts";
import { runAgent } from "./support/cli.ts";
import { FakeGraph, graphSection } from "./support/fake_graph.ts";
import { FakeJira, jiraSection } from "./support/fake_jira.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

async function setup(extra = "", deployment: "cloud" | "server" = "cloud") {
  const pki = await testPki();
  const graph = await new FakeGraph().start();
  const jira = await new FakeJira(deployment).start();
  const dir = await Deno.makeTempDir({ prefix: "mail-bridge-cli-" });
  const configFile = `${dir}/app.config`;
  await Deno.writeTextFile(
    configFile,
    `[agent]\nstore = ${dir}/agent.kv\n\n${graphSection(graph, pki.caCertFile)}\n` +
      `${jiraSection(jira, pki.caCertFile)}\n[mail_bridge]\nack_mail = false\n${extra}`,
  );
  return {
    graph,
    jira,
    dir,
    configFile,
    run: (args: string[], env: Record<string, string> = {}) =>
      runAgent([...args, "--config", configFile, "--log-format", "json"], { env }),
    async close() {
      await graph.stop();
      await jira.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test(
  "mail-bridge killed right after Jira created an issue or a comment (Cloud and Server/DC): after restart each mail is in Jira once and marked",
  integration,
  async () => {
    const runs = [["cloud", 1], ["cloud", 2], ["server", 1], ["server", 2]] as const;
    for (const [deployment, killAt] of runs) {
      const s = await setup("claim_seconds = 1\n", deployment);
      try {
        const a = s.graph.deliver({ from: "ann@example.com", subject: "First", text: "a" });
        const b = s.graph.deliver({ from: "bob@example.com", subject: "Second", text: "b" });
        await s.run(["mail-bridge", "--once"]);
        const reply = s.graph.replyTo(a, {
          from: "bob@example.com",
          subject: "RE: First",
          text: "more",
        });
        const c = s.graph.deliver({ from: "ann@example.com", subject: "Third", text: "c" });
        // This pass writes the reply's comment and c's issue; the kill lands right after the
        // killAt-th of those writes, before the ledger records it.
        const killed = await s.run(["mail-bridge", "--once"], {
          AGENT_FAULT: `kill-after-jira-create:${killAt}`,
        });
        assertEquals(killed.code, 137, `killed at ${killAt}: ${killed.stderr}`);
        const writesBefore = s.jira.issues.size +
          [...s.jira.issues.values()].reduce((n, i) => n + i.comments.length, 0);
        // The killed agent's reservation of the mail it was on lapses (claim_seconds).
        await new Promise((r) => setTimeout(r, 1100));
        const again = await s.run(["mail-bridge", "--once"]);
        assertEquals(again.code, 0, again.stderr);
        assertStringIncludes(again.stderr, "before a restart");
        for (const m of [a, b, c]) {
          const issues = s.jira.issuesForMessage(m.internetMessageId);
          assertEquals(issues.length, 1, `${m.subject} in Jira once (kill ${killAt})`);
          assertEquals(s.graph.messages.get(m.id)!.categories, [`Jira: ${issues[0]!.key}`]);
        }
        const first = s.jira.issuesForMessage(a.internetMessageId)[0]!;
        assertEquals(
          first.comments.filter((x) =>
            JSON.stringify(x.properties).includes(reply.internetMessageId)
          ).length,
          1,
        );
        assertEquals(s.graph.messages.get(reply.id)!.categories, [`Jira: ${first.key}`]);
        const writesAfter = s.jira.issues.size +
          [...s.jira.issues.values()].reduce((n, i) => n + i.comments.length, 0);
        assertEquals(writesAfter, 4, "3 issues and 1 comment");
        assertEquals(writesBefore, 2 + killAt, "the killed run had written before it died");
      } finally {
        await s.close();
      }
    }
  },
);

Deno.test(
  "agent authorize stores the token in the store, proves mailbox access, and names a wrong secret",
  integration,
  async () => {
    const s = await setup();
    try {
      const ok = await s.run(["authorize"]);
      assertEquals(ok.code, 0, ok.stderr);
      assertStringIncludes(ok.stdout, `can read ${s.graph.mailbox}`);
      const token = s.graph.tokensIssued[0]!;
      assert(s.graph.seen(/^GET \/v1\.0\/users\/.*\/messages$/).length >= 1, "read the mailbox");
      // The token is in the store file, and nowhere in the output or the config folder's other files.
      assert(!ok.stdout.includes(token) && !ok.stderr.includes(token));
      const store = await Deno.openKv(`${s.dir}/agent.kv`);
      let cached = "";
      for await (const e of store.list({ prefix: ["graph", "msal_cache"] })) {
        cached += JSON
          .stringify(e.value);
      }
      store.close();
      assertStringIncludes(cached, token);
      assertEquals(
        (await Deno.stat(`${s.dir}/agent.kv`)).mode! & 0o077,
        0,
        "store readable by the owner only",
      );
      // The bridge starts on the stored token: no second token request.
      s.graph.deliver({ from: "ann@example.com", subject: "x", text: "y" });
      const run = await s.run(["mail-bridge", "--once"]);
      assertEquals(run.code, 0, run.stderr);
      assertEquals(s.graph.tokensIssued.length, 1);

      const config = await Deno.readTextFile(s.configFile);
      await Deno.writeTextFile(s.configFile, config.replace(s.graph.clientSecret, "wrong-secret"));
      const bad = await s.run(["authorize"]);
      assertEquals(bad.code, 1);
      assertMatch(
        bad.stderr,
        /Cannot get a Graph token for client .* Invalid client secret provided/,
      );
      assert(!bad.stderr.includes("wrong-secret"), "the secret is not echoed");
    } finally {
      await s.close();
    }
  },
);

Deno.test(
  "mail-bridge failed lists dead letters, --retry-failed bridges them, backfill creates only what is missing",
  integration,
  async () => {
    const s = await setup("projects = ops@example.com = OPS\n");
    try {
      s.jira.projects.delete("OPS");
      const m = s.graph.deliver({
        from: "ann@example.com",
        subject: "For ops",
        text: "x",
        to: ["ops@example.com"],
      });
      const first = await s.run(["mail-bridge", "--once"]);
      assertEquals(first.code, 1, "a dead letter makes --once fail");
      assertStringIncludes(first.stdout, "1 failed");
      const listed = await s.run(["mail-bridge", "failed"]);
      assertStringIncludes(listed.stdout, m.internetMessageId);
      assertStringIncludes(listed.stdout, "project: valid project is required");
      s.jira.projects.set("OPS", ["Task"]);
      const retried = await s.run(["mail-bridge", "--retry-failed", "--once"]);
      assertEquals(retried.code, 0, retried.stderr);
      assertEquals(s.jira.issuesForMessage(m.internetMessageId).map((i) => i.key), ["OPS-1"]);

      // A mail the delta never showed (delivered "before" the bridge started watching).
      const old = s.graph.deliver({
        from: "bob@example.com",
        subject: "Missed",
        text: "m",
        receivedDateTime: new Date(Date.now() - 2 * 86400_000).toISOString(),
      });
      s.graph.deliver({
        from: "bob@example.com",
        subject: "Too old",
        text: "o",
        receivedDateTime: new Date(Date.now() - 9 * 86400_000).toISOString(),
      });
      // Make the fake's delta forget both (as if they predate the stored position).
      const deltaSeen = s.graph.messages.get(old.id)!;
      deltaSeen.folder = "archive-hidden";
      const backfill = await s.run(["mail-bridge", "backfill", "--days", "3"]);
      assertEquals(backfill.code, 0, backfill.stderr);
      assertEquals(
        s.jira.issuesForMessage(old.internetMessageId).length,
        0,
        "only the watched folder",
      );
      deltaSeen.folder = "inbox";
      const again = await s.run(["mail-bridge", "backfill", "--days", "3"]);
      assertEquals(again.code, 0, again.stderr);
      assertStringIncludes(again.stderr, "backfill: ");
      assertEquals(s.jira.issuesForMessage(old.internetMessageId).length, 1);
      assertEquals(
        [...s.jira.issues.values()].filter((i) => i.fields.summary === "Too old").length,
        0,
      );
      assertStringIncludes(again.stdout, "1 issue(s) created");
      const usage = await s.run(["mail-bridge", "backfill"]);
      assertEquals(usage.code, 2);
      assertStringIncludes(usage.stderr, "backfill needs --days N");
    } finally {
      await s.close();
    }
  },
);

Deno.test("config: the mail bridge's sections name what is wrong", async (t) => {
  const pki = await testPki();
  const cases: [string, RegExp][] = [
    [
      "[graph]\ntenant_id = t\nclient_id = c\nmailbox = m@x\n",
      /\[graph\].*no credentials: set client_secret/,
    ],
    [
      "[graph]\ntenant_id = t\nclient_id = c\nclient_secret = s\nmailbox = m@x\nauthority_host = http://login.example\n",
      /authority_host.*not an https:\/\/ URL/,
    ],
    [
      "[jira]\nurl = https://jira.example\nuser = u\nproject = SUP\n",
      /api_token.*missing; user and api_token go together/,
    ],
    [
      "[jira]\nurl = https://jira.example\nuser = u\napi_token = t\nproject = SUP\ndeployment = datacenter\n",
      /deployment.*"datacenter" is not one of cloud, server/,
    ],
    ["[mail_bridge]\nprojects = support\n", /projects.*"support" is not "address = PROJECTKEY"/],
    ["[mail_bridge]\nown_header = Bridge\n", /own_header.*must be an X- header/],
  ];
  for (const [text, pattern] of cases) {
    await t.step(pattern.source, async () => {
      const dir = await Deno.makeTempDir();
      await Deno.writeTextFile(`${dir}/app.config`, text.replace("CA", pki.caCertFile));
      const result = await runAgent(["mail-bridge", "--once", "--config", `${dir}/app.config`]);
      assertEquals(result.code, 2, result.stderr);
      assertMatch(result.stderr, pattern);
      await Deno.remove(dir, { recursive: true });
    });
  }
});

Deno.test("mail-bridge on the embedded defaults (the demo's .eml mailbox): one issue, one comment, two skipped, nothing twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mail-bridge-local-" });
  try {
    const mailDir = new URL("../scripts/demo/mail", import.meta.url).pathname;
    await Deno.writeTextFile(
      `${dir}/app.config`,
      `[agent]\nstore = agent.kv\n\n[mail_bridge]\nmail_dir = ${mailDir}\nissues_dir = issues\ncategories = network\n`,
    );
    const run = () =>
      runAgent(["mail-bridge", "--once", "--config", `${dir}/app.config`], { cwd: dir });
    const first = await run();
    assertEquals(first.code, 0, first.stderr);
    assertStringIncludes(first.stdout, "1 issue(s) created, 1 comment(s), 2 skipped, 0 failed");
    const issue = JSON.parse(await Deno.readTextFile(`${dir}/issues/MAIL-1.json`));
    assertEquals([issue.summary, issue.priority, issue.labels], [
      "VPN is down for two sites",
      "High",
      ["mail-bridge", "network"],
    ]);
    assertStringIncludes(issue.description, "||Site||Users||");
    for (const bad of ["alert", "javascript", "tracker.example", "track()"]) {
      assert(!issue.description.includes(bad), bad);
    }
    assertEquals(issue.comments.length, 1);
    assert(!issue.comments[0].body.includes("Bob Builder, NOC"), "signature stripped");
    assert(!issue.comments[0].body.includes("Hello helpdesk"), "quote stripped");
    assertEquals(
      await Deno.readTextFile(`${dir}/issues/MAIL-1/vpn-client.log`),
      "09:00:01 tunnel down: peer not responding\n09:00:31 retry 1 failed\n",
    );
    const ack = await Deno.readTextFile(`${dir}/issues/outbox/1-vpn-down-reply.eml`);
    assertMatch(ack, /^X-Agent-Mail-Bridge: ack; issue=MAIL-1/m);
    assertMatch(ack, /^In-Reply-To: <vpn-down-1@mail.example.com>/m);
    const second = await run();
    assertStringIncludes(
      second.stdout,
      "0 issue(s) created, 0 comment(s), 0 skipped, 0 failed, 4 already done",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
