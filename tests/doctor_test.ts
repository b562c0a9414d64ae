/**
 * `agent doctor` as an operator runs it (the CLI with its real permission flags) against a
 * real ActiveMQ and SMTP server and the HTTPS fakes, all with certificates from the test CA:
 * one config where everything is right, one where each system has its own fault.
 */
import { Store } from "../mod/store/store.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { runAgent } from "./support/cli.ts";
import { FakeGraph, graphSection } from "./support/fake_graph.ts";
import { FakeJira, jiraSection } from "./support/fake_jira.ts";
import { FakeResilient, resilientSection } from "./support/fake_resilient.ts";
import { FakeSecureChange } from "./support/fake_securechange.ts";
import { TestSmtpServer } from "./support/smtp_server.ts";
import type { Finding } from "../mod/probe/report.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

interface Systems {
  resilient: FakeResilient;
  broker: Awaited<ReturnType<typeof startBroker>>;
  smtp: TestSmtpServer;
  graph: FakeGraph;
  jira: FakeJira;
  sc: FakeSecureChange;
  dir: string;
}

const SMTP_USER = "soar-mailer";
const SMTP_PASS = "smtp-pass-" + crypto.randomUUID().slice(0, 8);

function configText(s: Systems, faults: { smtpPass?: string; project?: string } = {}): string {
  return `[agent]
store = ${s.dir}/agent.kv
${resilientSection(s.resilient, { sslPort: s.broker.sslPort, caCertFile: "CA" })}
[taskcalendar]
smtpserver = localhost
smtpport = ${s.smtp.port}
use_start_tls = true
smtp_cafile = CA
smtpuser = ${SMTP_USER}
smtppw = $SMTP_PW
smtpfrom = soar@example.com
${graphSection(s.graph, "CA")}
${jiraSection(s.jira, "CA", { project: faults.project ?? "SUP" })}
[securechange]
url = ${s.sc.url}
username = ${s.sc.username}
password = $SC_PASSWORD
cafile = CA
`;
}

async function doctor(s: Systems, text: string, env: Record<string, string>) {
  const pki = await testPki();
  const file = `${s.dir}/app-${crypto.randomUUID().slice(0, 6)}.config`;
  await Deno.writeTextFile(file, text.replaceAll("= CA\n", `= ${pki.caCertFile}\n`), {
    mode: 0o600,
  });
  const run = await runAgent(["doctor", "--json", "--timeout", "8", "--config", file], {
    env: {
      SOAR_SECRET: s.resilient.apiKeySecret,
      SC_PASSWORD: s.sc.password,
      SMTP_PW: SMTP_PASS,
      ...env,
    },
  });
  let report: { ok: boolean; verdict: string; findings: Finding[] };
  try {
    report = JSON.parse(run.stdout);
  } catch {
    throw new Error(`doctor did not print JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
  const find = (system: string, check: string) => {
    const hit = report.findings.find((f) => f.system === system && f.check === check);
    if (!hit) throw new Error(`no ${system} ${check} in:\n${JSON.stringify(report.findings)}`);
    return hit;
  };
  return { ...run, report, find };
}

async function withSystems(
  certs: { resilient?: "expired"; securechange?: "wrongHost" },
  fn: (s: Systems) => Promise<void>,
): Promise<void> {
  const resilient = await new FakeResilient().start({ cert: certs.resilient ?? "server" });
  // The platform's API key is also the broker login.
  const broker = await startBroker({ user: resilient.apiKeyId, password: resilient.apiKeySecret });
  const smtp = await new TestSmtpServer({
    tls: "server",
    auth: { user: SMTP_USER, pass: SMTP_PASS },
  }).start();
  const graph = await new FakeGraph().start();
  const jira = await new FakeJira("cloud").start();
  const sc = await new FakeSecureChange().start({ cert: certs.securechange ?? "server" });
  const dir = await Deno.makeTempDir({ prefix: "agent-doctor-" });
  try {
    await fn({ resilient, broker, smtp, graph, jira, sc, dir });
  } finally {
    await Promise.all([resilient.stop(), smtp.stop(), graph.stop(), jira.stop(), sc.stop()]);
    await broker.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "agent doctor passes every check of a right config and changes nothing",
  ...integration,
  fn: () =>
    withSystems({}, async (s) => {
      const run = await doctor(s, configText(s), {});
      assertEquals(run.code, 0, run.stdout + run.stderr);
      assert(run.report.ok);
      const failed = run.report.findings.filter((f) => f.status === "fail");
      assertEquals(failed, []);
      assertMatch(run.find("[resilient] REST", "tls").detail, /valid until .*\(\d+ days\)/);
      assertMatch(run.find("[resilient] REST", "action module").detail, /enabled/);
      assertMatch(
        run.find("[resilient] STOMP", "queue").detail,
        new RegExp(`subscribed to actions\\.${s.resilient.orgId}\\.taskcalendar`),
      );
      assertMatch(run.find("[taskcalendar] SMTP", "tls").detail, /localhost:\d+: TLS/);
      assertMatch(run.find("[taskcalendar] SMTP", "session").detail, /STARTTLS, AUTH as/);
      assertEquals(run.find("[graph]", "mailbox").status, "pass");
      assertEquals(run.find("[jira]", "project SUP").status, "pass");
      assertEquals(run.find("[securechange]", "auth").status, "pass");
      assertEquals(run.find("[agent] store", "writable").status, "pass");
      assertEquals(run.find("[config] file", "permissions").status, "pass");
      assertEquals(run.find("[agent] clock", "skew").status, "pass");
      // Nothing was sent, created or consumed.
      assertEquals(s.smtp.messages.length, 0);
      assertEquals(s.jira.issues.size, 0);
      assertEquals(s.jira.seen(/^POST /).length, 0);
      assertEquals(s.graph.seen(/^(POST|PATCH) \/v1\.0/).length, 0);
      // No secret in what it printed.
      for (const secret of [s.resilient.apiKeySecret, SMTP_PASS, s.jira.token, s.sc.password]) {
        assert(!run.stdout.includes(secret) && !run.stderr.includes(secret), "secret printed");
      }
    }),
});

Deno.test({
  name:
    "agent doctor reports an expired certificate, a wrong host name, a wrong SMTP password and an unknown Jira project, each with a hint",
  ...integration,
  fn: () =>
    withSystems({ resilient: "expired", securechange: "wrongHost" }, async (s) => {
      const run = await doctor(s, configText(s, { project: "NOPE" }), {
        SMTP_PW: "not-the-password",
      });
      assertEquals(run.code, 1, run.stdout + run.stderr);
      assert(!run.report.ok);
      assertMatch(run.report.verdict, /^NOT READY: .* 4 failed/);

      const expired = run.find("[resilient] REST", "tls");
      assertEquals(expired.status, "fail");
      assertMatch(expired.detail, /expired on \d{4}-\d\d-\d\d/);
      assertMatch(expired.hint ?? "", /renew the certificate/);
      // Login is not attempted over a connection the agent would refuse.
      assert(
        !run.report.findings.some((f) => f.system === "[resilient] REST" && f.check === "login"),
      );

      const wrongHost = run.find("[securechange]", "tls");
      assertEquals(wrongHost.status, "fail");
      assertMatch(wrongHost.detail, /certificate is for DNS:wrong\.example, not "127\.0\.0\.1"/);
      assertMatch(wrongHost.hint ?? "", /\[securechange\] url/);

      const auth = run.find("[taskcalendar] SMTP", "auth");
      assertEquals(auth.status, "fail");
      assertMatch(auth.detail, /refused the login.*535/);
      assertMatch(auth.hint ?? "", /smtpuser and smtppw/);
      assertEquals(run.find("[taskcalendar] SMTP", "tls").status, "pass");

      const project = run.find("[jira]", "project NOPE");
      assertEquals(project.status, "fail");
      assertMatch(project.detail, /project "NOPE" does not exist/);
      assertEquals(run.find("[jira]", "auth").status, "pass");

      // The healthy ones still pass, and STOMP says why it could not subscribe.
      assertEquals(run.find("[graph]", "token").status, "pass");
      assertEquals(run.find("[resilient] STOMP", "tls").status, "pass");
      assertEquals(run.find("[resilient] STOMP", "subscribe").status, "skip");
      assert(!run.stdout.includes("not-the-password"));
    }),
});

Deno.test({
  name:
    "agent doctor prints a table with a verdict and warns about a world-readable config holding secrets",
  ...integration,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "agent-doctor-" });
    try {
      const file = `${dir}/app.config`;
      await Deno.writeTextFile(
        file,
        `[agent]\nstore = ${dir}/agent.kv\n[mail_bridge]\nmail_dir = ${dir}/mail\n` +
          `[securechange]\nurl = https://127.0.0.1:1\nusername = u\npassword = literal-secret\n` +
          `[cmdb_lookup]\nheaders = Authorization: Bearer literal-cmdb-token\n` +
          `[siem]\napi_key = literal-siem-key\nfrom_env = $SIEM_TOKEN\n`,
      );
      await Deno.chmod(file, 0o644);
      const check = await runAgent(["config", "check", "--config", file], {
        env: { SIEM_TOKEN: "from-the-environment" },
      });
      assertEquals(check.code, 0, check.stderr);
      assertMatch(
        check.stderr,
        /warning: .*world-readable \(mode 0644\) and holds secrets \(securechange\.password, cmdb_lookup\.headers, siem\.api_key\)/,
      );
      assert(!check.stderr.includes("siem.from_env"), "a $NAME value is not a literal secret");
      await Deno.chmod(file, 0o600);
      const quiet = await runAgent(["config", "check", "--config", file], {
        env: { SIEM_TOKEN: "x" },
      });
      assert(!quiet.stderr.includes("world-readable"), quiet.stderr);
      await Deno.chmod(file, 0o644);
      const run = await runAgent(["doctor", "--timeout", "2", "--config", file], {
        env: { SIEM_TOKEN: "x" },
      });
      assertEquals(run.code, 1, run.stdout + run.stderr);
      assertMatch(run.stdout, /^\s+SYSTEM\s+CHECK\s+DETAIL/m);
      assertMatch(
        run.stdout,
        /WARN\s+\[config\] file\s+permissions\s+.*world-readable \(mode 0644\)/,
      );
      assertMatch(run.stdout, /-> chmod 600/);
      assertMatch(run.stdout, /FAIL\s+\[securechange\]\s+tcp\s+127\.0\.0\.1:1: connection refused/);
      assertMatch(run.stdout, /\nNOT READY: \d+ passed, 1 warnings, 1 failed, \d+ skipped\n$/);
      assert(!run.stdout.includes("literal-secret"));
      assertMatch(
        run.stdout,
        /holds secrets \(securechange\.password, cmdb_lookup\.headers, siem\.api_key\)/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Every file and folder below `dir`, with the bytes of the files. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory) {
        out.set(full + "/", "dir");
        await walk(full);
      } else {
        const bytes = await Deno.readFile(full);
        const digest = await crypto.subtle.digest("SHA-256", bytes);
        out.set(full, btoa(String.fromCharCode(...new Uint8Array(digest))));
      }
    }
  };
  await walk(dir);
  return out;
}

Deno.test({
  name:
    "agent doctor changes nothing: no store, folder or outbox is made, an existing store keeps its bytes",
  ...integration,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "agent-doctor-ro-" });
    try {
      const file = `${dir}/app.config`;
      await Deno.writeTextFile(
        file,
        `[agent]\nstore = ${dir}/state/agent.kv\n[resilient]\nhost = 127.0.0.1\nport = 1\n` +
          `logdir = ${dir}/logs\n` +
          `org = o\napi_key_id = a\napi_key_secret = b\n[taskcalendar]\nsmtpfrom = a@b.example\n` +
          `outbox_dir = ${dir}/mail/outbox\n[mail_bridge]\nmail_dir = ${dir}/mail/in\n`,
      );
      await Deno.chmod(file, 0o600);
      const before = await tree(dir);
      const first = await runAgent(["doctor", "--timeout", "2", "--config", file]);
      assertStringIncludes(first.stdout, "does not exist yet; it will be made in");
      assertStringIncludes(first.stdout, `to be made in ${dir}, writable`);
      assertEquals([...(await tree(dir)).keys()], [...before.keys()]);

      // An existing store: opened elsewhere (a copy), its own bytes untouched.
      await Deno.mkdir(`${dir}/state`);
      const store = await Store.open(`${dir}/state/agent.kv`);
      await store.set(["kept"], "value");
      store.close();
      const withStore = await tree(dir);
      const second = await runAgent(["doctor", "--timeout", "2", "--config", file]);
      assertMatch(second.stdout, /ok\s+\[agent\] store\s+writable\s+.*agent\.kv writable/);
      assertEquals(await tree(dir), withStore);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
