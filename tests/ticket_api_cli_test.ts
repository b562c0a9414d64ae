/**
 * `agent ticket-api` as an operator uses it: tokens made, listed and revoked from the CLI
 * (the token printed once, never listed or logged), the service over HTTPS with its own
 * certificate, served by `agent run` too, `agent doctor`'s rows for it, and config mistakes
 * named by key.
 */
import { join } from "node:path";
import { tempDir } from "./support/temp.ts";
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { freePort } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { runAgent, spawnAgent } from "./support/cli.ts";
import { recordOutput } from "./support/suite_log.ts";
import { waitUntil } from "./support/wait.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

async function configWith(extra: string): Promise<{ dir: string; file: string; port: number }> {
  const dir = await tempDir({ prefix: "ticket-api-cli-" });
  const port = freePort();
  const file = join(dir, "app.config");
  const listen = /^listen/m.test(extra) ? "" : `listen = 127.0.0.1:${port}\n`;
  await Deno.writeTextFile(
    file,
    `[agent]\nstore = ${dir}/agent.kv\n[mail_bridge]\nissues_dir = ${dir}/issues\n` +
      `[ticket_api]\n${listen}${extra}`,
    { mode: 0o600 },
  );
  return { dir, file, port };
}

type Finding = { system: string; check: string; status: string; detail: string };

async function doctorRows(file: string): Promise<Finding[]> {
  const run = await runAgent(["doctor", "--json", "--timeout", "3", "--config", file]);
  return (JSON.parse(run.stdout) as { findings: Finding[] }).findings.filter((f) =>
    f.system === "[ticket_api]"
  );
}

Deno.test(
  "agent ticket-api token create/list/revoke: printed once, listed by name, never logged",
  integration,
  async () => {
    const { file } = await configWith("");
    const made = await runAgent(["ticket-api", "token", "create", "portal", "--config", file], {
      record: false,
    });
    assertEquals(made.code, 0, made.stderr);
    const token = made.stdout.trim();
    assert(/^agtk_[A-Za-z0-9_-]{43}$/.test(token), "one token on stdout");
    assertStringIncludes(made.stderr, "shown this once");
    assert(!made.stderr.includes(token));
    const reader = await runAgent(
      ["ticket-api", "token", "create", "dashboards", "--scope", "read", "--config", file],
      { record: false },
    );
    assertEquals(reader.code, 0);
    const list = await runAgent(["ticket-api", "token", "list", "--json", "--config", file]);
    const tokens =
      (JSON.parse(list.stdout) as { tokens: { name: string; scope: string }[] }).tokens;
    assertEquals(tokens.map((t) => [t.name, t.scope]), [["dashboards", "read"], [
      "portal",
      "write",
    ]]);
    assert(!list.stdout.includes(token) && !list.stdout.includes("hash"));
    const again = await runAgent(["ticket-api", "token", "create", "portal", "--config", file]);
    assertEquals(again.code, 1);
    assertStringIncludes(again.stderr, "exists");
    const bad = await runAgent(["ticket-api", "token", "create", "a b", "--config", file]);
    assertEquals(bad.code, 1);
    assertEquals(
      (await runAgent(["ticket-api", "token", "create", "x", "--scope", "admin", "--config", file]))
        .code,
      2,
    );
    assertEquals(
      (await runAgent(["ticket-api", "token", "revoke", "portal", "--config", file])).code,
      0,
    );
    const gone = await runAgent(["ticket-api", "token", "revoke", "portal", "--config", file]);
    assertEquals(gone.code, 1);
    assertStringIncludes(gone.stderr, 'no token named "portal"');
  },
);

Deno.test(
  "agent ticket-api over HTTPS with its own certificate; agent run serves it too; doctor's rows",
  integration,
  async () => {
    const pki = await testPki();
    const { file, port } = await configWith(
      `tls_cert = ${pki.server.certFile}\ntls_key = ${pki.server.keyFile}\n`,
    );
    // No token yet: doctor says so, and the address and TLS pair are fine.
    const before = await doctorRows(file);
    assertEquals(before.map((f) => [f.check, f.status]), [
      ["listen", "pass"],
      ["tls", "pass"],
      ["tokens", "fail"],
    ]);
    const made = await runAgent(["ticket-api", "token", "create", "ops", "--config", file], {
      record: false,
    });
    const token = made.stdout.trim();
    const child = spawnAgent(["run", "--config", file]);
    const output = child.output();
    const client = Deno.createHttpClient({ caCerts: [pki.caCert] });
    const base = `https://127.0.0.1:${port}/api/tickets/v1`;
    try {
      await waitUntil("agent run serves the ticket API", async () => {
        try {
          const r = await fetch(`${base}/openapi.json`, { client });
          await r.body?.cancel();
          return r.ok;
        } catch {
          return false;
        }
      });
      const created = await fetch(`${base}/tickets`, {
        client,
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          title: "Over HTTPS",
          body: "From the CLI test",
          reporter: "a@example.com",
        }),
      });
      assertEquals(created.status, 201, await created.clone().text());
      assertEquals((await created.json()).key, "MAIL-1");
      // While it runs, doctor sees the address served by an agent, and a token.
      const during = await doctorRows(file);
      assertEquals(during.map((f) => [f.check, f.status]), [
        ["listen", "pass"],
        ["tls", "pass"],
        ["tokens", "pass"],
      ]);
      assertStringIncludes(during[0]!.detail, "an agent serves the ticket API there");
    } finally {
      client.close();
      child.kill("SIGTERM");
    }
    const { code, stderr } = await output;
    const log = new TextDecoder().decode(stderr);
    recordOutput("ticket_api_cli_test agent run", log);
    assertEquals(code, 0, log);
    assert(!log.includes(token), "the token reached the log");
    assertStringIncludes(log, `https://127.0.0.1:${port}/api/tickets/v1/`);
  },
);

Deno.test(
  "ticket API config mistakes are named by key; doctor fails a key that is not the certificate's",
  integration,
  async () => {
    const pki = await testPki();
    const mismatched = await configWith(
      `tls_cert = ${pki.server.certFile}\ntls_key = ${pki.untrusted.keyFile}\n`,
    );
    const rows = await doctorRows(mismatched.file);
    assertEquals(rows.find((f) => f.check === "tls")?.status, "fail");
    for (
      const [extra, named] of [
        ["listen = everywhere\n", "ticket_api.listen"],
        [`tls_cert = ${pki.server.certFile}\n`, "ticket_api.tls_key"],
        ["boards = HR\n", "ticket_api.boards"],
        ["context = api tickets\n", "ticket_api.context"],
        ["max_request_mb = 0\n", "ticket_api.max_request_mb"],
      ]
    ) {
      const { file } = await configWith(extra!);
      const run = await runAgent(["ticket-api", "--config", file]);
      assertEquals(run.code, 2, `${extra}: ${run.stderr}`);
      assertStringIncludes(run.stderr, named!);
    }
    const dir = await tempDir();
    await Deno.writeTextFile(join(dir, "app.config"), "[agent]\n");
    const missing = await runAgent(["ticket-api", "--config", join(dir, "app.config")]);
    assertEquals(missing.code, 2);
    assertStringIncludes(missing.stderr, "[ticket_api]");
  },
);
