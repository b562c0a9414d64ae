/**
 * Poison input for the mail bridge: every bad mail fails alone, into a dead letter with its
 * reason, and the benign mail beside it is bridged, in this pass and every later one. Our
 * own credentials refused by Jira are not the mail's fault: nothing becomes a dead letter.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { runAgent } from "./support/cli.ts";
import { startBridge } from "./support/mail_bridge.ts";
import { testPki } from "./support/ca.ts";
import { FakeGraph, graphSection } from "./support/fake_graph.ts";
import { FakeJira, jiraSection } from "./support/fake_jira.ts";
import { parseConfig } from "../mod/config/config.ts";
import { Store } from "../mod/store/store.ts";
import { superviseBridge } from "../mod/mail_bridge/run_bridge.ts";
import { Ledger } from "../mod/mail_bridge/ledger.ts";
import { waitUntil } from "./support/wait.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

function eml(name: string, subject: string, parts: string[] = [], body = "Hello."): string {
  const boundary = `b-${name}`;
  const head =
    `From: Ann <ann@example.com>\r\nTo: helpdesk@example.com\r\nSubject: ${subject}\r\n` +
    `Message-ID: <${name}@mail.example.com>\r\nDate: Mon, 30 Nov 2026 09:00:00 +0000\r\n` +
    `MIME-Version: 1.0\r\n`;
  if (!parts.length) return `${head}Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`;
  return `${head}Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n` +
    parts.map((p) => `--${boundary}\r\n${p}\r\n`).join("") + `--${boundary}--\r\n`;
}

function attachment(filenameParam: string, content: string): string {
  return `Content-Type: text/plain\r\nContent-Disposition: attachment; ${filenameParam}\r\n` +
    `Content-Transfer-Encoding: base64\r\n\r\n${btoa(content)}`;
}

Deno.test({
  name: "embedded mailbox: a NUL in an attachment name, 1,100 MIME parts and a file over " +
    "max_mail_mb each fail or pass alone; the benign mails beside them are bridged, then and later",
  ...integration,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mail-poison-" });
    const mail = `${dir}/mail`;
    await Deno.mkdir(mail);
    try {
      await Deno.writeTextFile(
        `${mail}/1-nul.eml`,
        eml("nul", "NUL in a name", [attachment(`filename*=utf-8''nul%00byte.txt`, "nul")]),
      );
      await Deno.writeTextFile(
        `${mail}/2-parts.eml`,
        eml(
          "parts",
          "Too many parts",
          Array.from({ length: 1_100 }, (_, i) => attachment(`filename="p${i}.txt"`, "x")),
        ),
      );
      await Deno.writeTextFile(
        `${mail}/3-big.eml`,
        eml("big", "Too big", [], "y".repeat(1_300_000)),
      );
      await Deno.writeTextFile(
        `${mail}/4-many.eml`,
        eml(
          "many",
          "Three hundred attachments",
          Array.from({ length: 300 }, (_, i) => attachment(`filename="a${i}.txt"`, `n${i}`)),
        ),
      );
      await Deno.writeTextFile(`${mail}/5-good.eml`, eml("good", "A benign mail"));
      const config = `${dir}/app.config`;
      await Deno.writeTextFile(
        config,
        `[agent]\nstore = agent.kv\n\n[mail_bridge]\nmail_dir = mail\nissues_dir = issues\n` +
          `max_mail_mb = 1\nack_mail = false\n`,
      );
      const run = (...args: string[]) =>
        runAgent(["mail-bridge", ...args, "--config", config], { cwd: dir });

      const first = await run("--once");
      assertEquals(first.code, 1, "dead letters make --once exit 1");
      assertStringIncludes(first.stdout, "3 issue(s) created, 0 comment(s), 0 skipped, 2 failed");
      const issues = new Map<string, { summary: string; attachments: { filename: string }[] }>();
      for await (const entry of Deno.readDir(`${dir}/issues`)) {
        if (!entry.name.endsWith(".json")) continue;
        const issue = JSON.parse(await Deno.readTextFile(`${dir}/issues/${entry.name}`));
        issues.set(issue.summary, issue);
      }
      assertEquals([...issues.keys()].sort(), [
        "A benign mail",
        "NUL in a name",
        "Three hundred attachments",
      ]);
      // The NUL is taken out of the name; the file is attached.
      assertEquals(issues.get("NUL in a name")!.attachments.map((a) => a.filename), [
        "nulbyte.txt",
      ]);
      assertEquals(issues.get("Three hundred attachments")!.attachments.length, 300);

      const failed = await run("failed");
      assertEquals(failed.code, 0, failed.stderr);
      assertStringIncludes(failed.stdout, "2 dead letter(s)");
      assertMatch(failed.stdout, /2-parts\.eml.*Max allowed child nodes exceeded/);
      assertMatch(failed.stdout, /3-big\.eml" is 1\.2 MB, over max_mail_mb 1 \(not read\)/);
      const json = JSON.parse((await run("failed", "--json")).stdout);
      assertEquals(json.dead_letters.map((d: { mail_id: string }) => d.mail_id).sort(), [
        "2-parts.eml",
        "3-big.eml",
      ]);

      // Later passes: the dead letters stay put, and new mail is bridged.
      await Deno.writeTextFile(`${mail}/6-later.eml`, eml("later", "A later mail"));
      const second = await run("--once");
      assertEquals(second.code, 0, second.stderr);
      assertStringIncludes(second.stdout, "1 issue(s) created, 0 comment(s), 0 skipped, 0 failed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test(
  "Graph: a mail over max_mail_mb (PR_MESSAGE_SIZE) is a dead letter, one deleted after the " +
    "delta is left out; the others are bridged",
  integration,
  async () => {
    const h = await startBridge({ bridge: { max_mail_mb: "1", ack_mail: "false" } });
    try {
      const big = h.graph.deliver({ from: "ann@example.com", subject: "Huge", text: "big" });
      big.sizeOverride = 5 * 1024 * 1024;
      const gone = h.graph.deliver({ from: "ann@example.com", subject: "Gone", text: "x" });
      const good = h.graph.deliver({ from: "bob@example.com", subject: "Fine", text: "ok" });
      // Deleted between the delta page and the read: Graph answers 404 for it.
      const originalGet = h.mailbox.get.bind(h.mailbox);
      h.mailbox.get = (id, signal) => {
        if (id === gone.id) h.graph.messages.delete(gone.id);
        return originalGet(id, signal);
      };
      await h.sync();
      assertEquals(h.jira.issuesForMessage(good.internetMessageId).length, 1);
      assertEquals(h.jira.issuesForMessage(big.internetMessageId).length, 0);
      const dead = await Array.fromAsync(h.ledger.failed());
      assertEquals(dead.map((d) => d.record.subject), ["Huge"]);
      assertStringIncludes(dead[0]!.record.error!, "the mail is 5.0 MB, over max_mail_mb 1");
      assertEquals(h.bridge.stats.failed, 1);
    } finally {
      await h.close();
    }
  },
);

Deno.test({
  name: "a wrong Jira token leaves every mail pending (no dead letter) and the bridge unhealthy " +
    "with 'Jira refused our credentials'; the right token bridges them all once",
  ...integration,
  async fn() {
    const pki = await testPki();
    const graph = await new FakeGraph().start();
    const jira = await new FakeJira("cloud").start();
    const store = await Store.open(":memory:");
    const configFor = (token: string) =>
      parseConfig(
        [
          graphSection(graph, pki.caCertFile, { poll_seconds: "1" }),
          jiraSection(jira, pki.caCertFile, { api_token: token }),
          `[mail_bridge]\nack_mail = false\n`,
        ].join("\n"),
        { file: "/tmp/poison.ini", env: () => undefined },
      );
    try {
      const first = graph.deliver({ from: "ann@example.com", subject: "One", text: "1" });
      const second = graph.deliver({ from: "bob@example.com", subject: "Two", text: "2" });
      const reply = graph.replyTo(first, {
        from: "bob@example.com",
        subject: "RE: One",
        text: "more",
      });
      const wrong = new AbortController();
      const service = superviseBridge(configFor("expired-token"), store, wrong.signal);
      await waitUntil(
        "the bridge reports Jira's refusal",
        () => Promise.resolve(service.health().detail.includes("Jira refused our credentials")),
      );
      assertEquals(service.health().healthy, false);
      wrong.abort();
      await service.done;
      const ledger = new Ledger(store, graph.mailbox);
      assertEquals(await ledger.failedCount(), 0, "no dead letter for our own credentials");
      assertEquals(jira.issues.size, 0);

      const right = new AbortController();
      const fixed = superviseBridge(configFor(jira.token), store, right.signal);
      await waitUntil("every mail is bridged", () =>
        Promise.resolve(
          [first, second, reply].every((m) => graph.messages.get(m.id)!.categories.length > 0),
        ));
      assert(fixed.health().healthy, fixed.health().detail);
      right.abort();
      await fixed.done;
      assertEquals(jira.issuesForMessage(first.internetMessageId).length, 1);
      assertEquals(jira.issuesForMessage(second.internetMessageId).length, 1);
      const issue = jira.issuesForMessage(first.internetMessageId)[0]!;
      assertEquals(issue.comments.length, 1, "the reply is one comment");
      assertEquals(jira.issues.size, 2);
      assertEquals(await ledger.failedCount(), 0);
    } finally {
      store.close();
      await graph.stop();
      await jira.stop();
    }
  },
});
