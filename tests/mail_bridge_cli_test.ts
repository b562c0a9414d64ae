import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { testPki } from "./support/ca.ts";
import { runAgent } from "./support/cli.ts";
import { FakeGraph, graphSection } from "./support/fake_graph.ts";
import { FakeJira, jiraSection } from "./support/fake_jira.ts";
import { mailMarker } from "../mod/mail_bridge/bridge.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

async function setup(
  extra = "",
  deployment: "cloud" | "server" = "cloud",
  options: { ack?: boolean } = {},
) {
  const pki = await testPki();
  const graph = await new FakeGraph().start();
  const jira = await new FakeJira(deployment).start();
  const dir = await Deno.makeTempDir({ prefix: "mail-bridge-cli-" });
  const configFile = `${dir}/app.config`;
  await Deno.writeTextFile(
    configFile,
    `[agent]\nstore = ${dir}/agent.kv\n\n${graphSection(graph, pki.caCertFile)}\n` +
      `${jiraSection(jira, pki.caCertFile)}\n[mail_bridge]\nack_mail = ${
        options.ack ?? false
      }\n${extra}`,
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

/** Issues and comments in the fake Jira. */
function writes(jira: FakeJira): number {
  return jira.issues.size + [...jira.issues.values()].reduce((n, i) => n + i.comments.length, 0);
}

Deno.test(
  "mail-bridge killed (SIGKILL) after Jira's create, after each upload, mid-upload, just before " +
    "and after the acknowledgement, after a comment, on Cloud and Server/DC: restarted at once, " +
    "one issue per mail, one comment per reply, each attachment once, one acknowledgement each",
  integration,
  async (t) => {
    const points = [
      ["after-jira-create", 1],
      ["after-jira-create", 2],
      ["after-upload", 1],
      ["after-upload", 2],
      ["mid-upload", 1],
      ["before-ack", 1],
      ["after-ack", 1],
    ] as const;
    for (const deployment of ["cloud", "server"] as const) {
      for (const [point, at] of points) {
        await t.step(`${deployment}: kill-${point}:${at}`, async () => {
          // Reservations last the default 120 s: the restart must take over the dead run's.
          const s = await setup("", deployment, { ack: true });
          try {
            const a = s.graph.deliver({ from: "ann@example.com", subject: "First", text: "a" });
            const b = s.graph.deliver({ from: "bob@example.com", subject: "Second", text: "b" });
            const clean = await s.run(["mail-bridge", "--once"]);
            assertEquals(clean.code, 0, clean.stderr);
            const reply = s.graph.replyTo(a, {
              from: "bob@example.com",
              subject: "RE: First",
              text: "more",
            });
            const c = s.graph.deliver({
              from: "ann@example.com",
              subject: "Third",
              text: "c",
              attachments: [
                {
                  name: "notes.txt",
                  contentType: "text/plain",
                  isInline: false,
                  content: new TextEncoder().encode("notes\n"),
                  size: 6,
                },
                // Generated in 64 KB pieces: an upload that is cut off in the middle.
                {
                  name: "big.bin",
                  contentType: "application/octet-stream",
                  isInline: false,
                  size: 300_000,
                },
              ],
            });
            const killed = await s.run(["mail-bridge", "--once"], {
              AGENT_FAULT: `kill-${point}:${at}`,
            });
            assertEquals(killed.code, 137, `not killed at ${point}:${at}: ${killed.stderr}`);
            const again = await s.run(["mail-bridge", "--once"]);
            assertEquals(again.code, 0, again.stderr);

            for (const m of [a, b, c]) {
              const issues = s.jira.issuesForMessage(m.internetMessageId);
              assertEquals(issues.length, 1, `${m.subject} in Jira once`);
              assertEquals(s.graph.messages.get(m.id)!.categories, [`Jira: ${issues[0]!.key}`]);
              const acks = s.graph.replies.filter((r) => r.messageId === m.internetMessageId);
              assertEquals(acks.length, 1, `one acknowledgement for ${m.subject}`);
            }
            const first = s.jira.issuesForMessage(a.internetMessageId)[0]!;
            assertEquals(first.comments.length, 1, "one comment for the reply");
            assertEquals(s.graph.messages.get(reply.id)!.categories, [`Jira: ${first.key}`]);
            assertEquals(
              s.graph.replies.filter((r) => r.messageId === reply.internetMessageId),
              [],
            );
            const third = s.jira.issuesForMessage(c.internetMessageId)[0]!;
            assertEquals(
              third.attachments.map((x) => [x.filename, x.size]).sort(),
              [["big.bin", 300_000], ["notes.txt", 6]],
            );
            assertEquals(writes(s.jira), 4, "3 issues and 1 comment");
          } finally {
            await s.close();
          }
        });
      }
    }
  },
);

Deno.test(
  "a restart within claim_seconds of a crash keeps the thread: the reply becomes a comment on " +
    "the first mail's issue and the forward is linked to it",
  integration,
  async () => {
    for (const deployment of ["cloud", "server"] as const) {
      const s = await setup("", deployment);
      try {
        const a = s.graph.deliver({ from: "ann@example.com", subject: "Printer", text: "a" });
        const killed = await s.run(["mail-bridge", "--once"], {
          AGENT_FAULT: "kill-after-jira-create:1",
        });
        assertEquals(killed.code, 137, killed.stderr);
        const reply = s.graph.replyTo(a, {
          from: "bob@example.com",
          subject: "RE: Printer",
          text: "same here",
        });
        const forward = s.graph.deliver({
          from: "bob@example.com",
          subject: "FW: Printer",
          text: "see below",
          references: [a.internetMessageId],
          conversationId: a.conversationId,
        });
        const again = await s.run(["mail-bridge", "--once"]);
        assertEquals(again.code, 0, again.stderr);
        const issues = s.jira.issuesForMessage(a.internetMessageId);
        assertEquals(issues.length, 1, `${deployment}: the first mail is in Jira once`);
        const first = issues[0]!;
        assertEquals(first.comments.length, 1, "the reply is a comment on it");
        assertEquals(s.jira.issuesForMessage(reply.internetMessageId), []);
        const forwarded = s.jira.issuesForMessage(forward.internetMessageId);
        assertEquals(forwarded.length, 1, "the forward is an issue of its own");
        assertEquals(forwarded[0]!.links, [`Relates:${first.key}`]);
        assertEquals(s.jira.issues.size, 2);
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
      "[graph]\nauth = app\ntenant_id = t\nclient_id = c\nmailbox = m@x\n",
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
    const mailDir = `${dir}/mail`;
    await Deno.mkdir(mailDir);
    for await (const e of Deno.readDir(new URL("../scripts/demo/mail", import.meta.url))) {
      await Deno.copyFile(
        new URL(`../scripts/demo/mail/${e.name}`, import.meta.url),
        `${mailDir}/${e.name}`,
      );
    }
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
      ["mail-bridge", "network", await mailMarker("<vpn-down-1@mail.example.com>")],
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
    assertMatch(ack, /^Auto-Submitted: auto-replied/m);
    assertMatch(ack, /^In-Reply-To: <vpn-down-1@mail.example.com>/m);
    const second = await run();
    assertStringIncludes(
      second.stdout,
      "0 issue(s) created, 0 comment(s), 0 skipped, 0 failed, 4 already done",
    );
    // The acknowledgement comes back into the mailbox with its marks stripped by a relay:
    // its sender, the embedded mailbox's own address, still gives it away.
    await Deno.writeTextFile(
      `${mailDir}/5-bounce.eml`,
      ack.replace(/^(X-Agent-Mail-Bridge|Auto-Submitted|X-Auto-Response-Suppress):.*\r?\n/gim, ""),
    );
    const third = await run();
    assertStringIncludes(third.stdout, "0 issue(s) created, 0 comment(s), 1 skipped, 0 failed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "the way back killed (SIGKILL) just before and just after sending a reply, on Cloud and " +
    "Server/DC: after the restart the comment has gone back exactly once",
  integration,
  async (t) => {
    for (const deployment of ["cloud", "server"] as const) {
      for (const point of ["before-reply", "after-reply"]) {
        await t.step(`${deployment}: kill-${point}:1`, async () => {
          const s = await setup("", deployment);
          try {
            const mail = s.graph.deliver({
              from: "ann@example.com",
              subject: "Printer",
              text: "x",
            });
            const first = await s.run(["mail-bridge", "--once"]);
            assertEquals(first.code, 0, first.stderr);
            const comment = s.jira.commentAs("SUP-1", {
              author: "bob@example.com",
              text: "Toner replaced.",
            });
            const killed = await s.run(["mail-bridge", "--once"], {
              AGENT_FAULT: `kill-${point}:1`,
            });
            assertEquals(killed.code, 137, killed.stderr);
            const again = await s.run(["mail-bridge", "--once"]);
            assertEquals(again.code, 0, again.stderr);
            assertStringIncludes(
              again.stdout,
              point === "after-reply" ? "replies: 0 sent" : "replies: 1 sent",
            );
            const replies = s.graph.replies.filter((r) => r.marker === `comment ${comment.id}`);
            assertEquals(replies.length, 1, "one reply for the comment");
            assertEquals(replies[0]!.messageId, mail.internetMessageId);
          } finally {
            await s.close();
          }
        });
      }
    }
  },
);
