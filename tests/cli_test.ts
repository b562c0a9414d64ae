import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { demoEnrichArgs, runAgent, runMain } from "./support/cli.ts";
import { AGENT_RUN_FLAGS, agentRunFlags } from "../mod/cli/permissions.ts";
import { CONFIG_TEMPLATE } from "../mod/config/template.ts";

const COMMANDS = [
  "run",
  "calendar",
  "actions",
  "replay",
  "mail-bridge",
  "authorize",
  "ticket-api",
  "enrich",
  "doctor",
  "selftest",
  "service",
  "config",
];

Deno.test("agent --help lists every command, and each command has its own --help", async (t) => {
  const help = await runMain(["--help"]);
  assertEquals(help.code, 0);
  for (const name of COMMANDS) assertMatch(help.stdout, new RegExp(`^  ${name} `, "m"));
  for (const name of COMMANDS) {
    await t.step(name, async () => {
      const result = await runMain([name, "--help"]);
      assertEquals(result.code, 0, result.stderr);
      assertStringIncludes(result.stdout, `Usage: agent ${name}`);
    });
  }
});

Deno.test("an unknown command or option prints usage on stderr and exits 2", async () => {
  const unknown = await runMain(["frobnicate"]);
  assertEquals(unknown.code, 2);
  assertStringIncludes(unknown.stderr, 'unknown command "frobnicate"');
  assertStringIncludes(unknown.stderr, "Usage: agent <command>");
  const option = await runMain(["config", "check", "--bogus"]);
  assertEquals(option.code, 2);
  assertStringIncludes(option.stderr, "--bogus");
  assertStringIncludes(option.stderr, "Usage: agent config");
  const none = await runMain([]);
  assertEquals(none.code, 2);
});

Deno.test("agent config check validates config.example.ini and masks secrets", async () => {
  const result = await runMain([
    "config",
    "check",
    "--config",
    new URL("../config.example.ini", import.meta.url).pathname,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertStringIncludes(result.stdout, "config.example.ini: OK");
  assertStringIncludes(result.stdout, "api_key_secret = ********");
  assert(!result.stdout.includes("change-me"));
});

Deno.test("agent config check exits 2 naming file, line, section and key", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string, string][] = [
      [
        "bad port",
        "[resilient]\nhost = h\norg = o\napi_key_id = i\napi_key_secret = s\nport = 70000\n",
        ":6 resilient.port: 70000 is out of range",
      ],
      [
        "missing key",
        "[resilient]\nhost = h\napi_key_id = i\napi_key_secret = s\n",
        ":1 resilient.org: missing",
      ],
      [
        "unset variable",
        "[resilient]\nhost = h\norg = o\napi_key_id = i\napi_key_secret = $AGENT_TEST_UNSET\n",
        ":5 resilient.api_key_secret: environment variable $AGENT_TEST_UNSET is not set",
      ],
      [
        "two problems in one run",
        "[resilient]\nhost = h\norg = o\napi_key_id = i\napi_key_secret = $AGENT_TEST_UNSET\nport = 70000\n",
        ":5 resilient.api_key_secret: environment variable $AGENT_TEST_UNSET is not set",
      ],
    ];
    for (const [name, text, expected] of cases) {
      await t.step(name, async () => {
        const file = `${dir}/${name.replaceAll(" ", "_")}.ini`;
        await Deno.writeTextFile(file, text);
        const result = await runMain(["config", "check", "--config", file]);
        assertEquals(result.code, 2);
        assertStringIncludes(result.stderr, file + expected);
        if (name === "two problems in one run") {
          assertStringIncludes(result.stderr, "2 problems:");
          assertStringIncludes(result.stderr, `${file}:6 resilient.port: 70000 is out of range`);
        }
      });
    }
    await t.step("APP_CONFIG_FILE is used when --config is absent", async () => {
      const result = await runMain(["config", "check"], {
        env: { APP_CONFIG_FILE: `${dir}/bad_port.ini` },
      });
      assertEquals(result.code, 2);
      assertStringIncludes(result.stderr, "bad_port.ini:6 resilient.port");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent config init writes the template and will not overwrite without --force", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await runMain(["config", "init", `${dir}/app.config`]);
    assertEquals(first.code, 0, first.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/app.config`), CONFIG_TEMPLATE);
    assertEquals((await Deno.stat(`${dir}/app.config`)).mode! & 0o777, 0o600);
    const second = await runMain(["config", "init", `${dir}/app.config`]);
    assertEquals(second.code, 1);
    assertStringIncludes(second.stderr, "exists; use --force");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno.json's agent task runs with the permission flags written down in permissions.ts", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assertEquals(config.tasks.agent, `deno run ${AGENT_RUN_FLAGS.join(" ")} main.ts`);
});

Deno.test({
  name:
    "the bundle runs agent --help, the enrich plugins and a custom processor from an empty DENO_DIR",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const bundle = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../scripts/bundle.ts", import.meta.url).pathname,
          `${dir}/agent.js`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(bundle.success, new TextDecoder().decode(bundle.stderr));
      const emptyCache = `${dir}/deno-dir`;
      const result = await runAgent(["--help"], {
        entry: `${dir}/agent.js`,
        denoDir: emptyCache,
        cwd: dir,
      });
      assertEquals(result.code, 0, result.stderr);
      assertStringIncludes(result.stdout, "Usage: agent <command>");
      // The sandboxed plugins work from the single file too (their code travels as source).
      const enrich = await runAgent(demoEnrichArgs(), {
        entry: `${dir}/agent.js`,
        denoDir: emptyCache,
        cwd: dir,
      });
      assertEquals(enrich.code, 0, enrich.stderr);
      assertStringIncludes(enrich.stdout, "192.168.10.0/24: private (RFC 1918), 256 addresses");
      assertStringIncludes(enrich.stdout, "AR2: service ANY opens every port");
      // So do custom processors (the sample, replayed against REST fixtures).
      await Deno.writeTextFile(
        `${dir}/app.config`,
        `[agent]\nstore = ${dir}/agent.kv\nprocessors_dir = ${
          new URL("../examples/processors", import.meta.url).pathname
        }\n`,
      );
      await Deno.writeTextFile(
        `${dir}/rest.json`,
        JSON.stringify({
          "GET /actions": { entities: [{ id: 31, name: "Add note" }] },
          "POST /incidents/7/comments": { id: 70 },
        }),
      );
      await Deno.writeTextFile(
        `${dir}/action.json`,
        JSON.stringify({
          action_id: 31,
          object_type: 0,
          incident: { id: 7 },
          properties: { note_text: "from the bundle" },
        }),
      );
      const replay = await runAgent([
        "replay",
        `${dir}/action.json`,
        "--processor",
        "add_note",
        "--rest-fixtures",
        `${dir}/rest.json`,
        "--config",
        `${dir}/app.config`,
      ], { entry: `${dir}/agent.js`, denoDir: emptyCache, cwd: dir });
      assertEquals(replay.code, 0, replay.stderr);
      assertStringIncludes(replay.stdout, "Note 70 added to incident 7");
      // Nothing was fetched into the empty cache: every package is inside the file.
      const fetched = await Array.fromAsync(Deno.readDir(`${emptyCache}/npm`)).catch(() => []);
      assertEquals(fetched, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("agent service install writes a hardened unit running agent run; uninstall removes it", async () => {
  const dir = await Deno.makeTempDir();
  const config = `${dir}/app.config`;
  await Deno.writeTextFile(
    config,
    `[agent]\nstore = ${dir}/state/agent.kv\n[resilient]\nhost = soar.example.com\n` +
      `org = Example\napi_key_id = a\napi_key_secret = $SECRET\nlogdir = ${dir}/logs\n` +
      `[taskcalendar]\nsmtpfrom = soar@example.com\noutbox_dir = ${dir}/outbox\n`,
  );
  const installed = await runAgent(
    ["service", "install", "--config", config, "--unit-dir", dir, "--user", "soaragent"],
    { env: { SECRET: "s3cret-value" } },
  );
  assertEquals(installed.code, 0, installed.stderr);
  const unitFile = `${dir}/agent.service`;
  const unit = await Deno.readTextFile(unitFile);
  const line = (key: string) => unit.split("\n").find((l) => l.startsWith(`${key}=`));
  const lines = (key: string) => unit.split("\n").filter((l) => l.startsWith(`${key}=`));
  assertEquals(line("User"), "User=soaragent");
  assertEquals(line("Restart"), "Restart=always");
  assertEquals(line("ProtectSystem"), "ProtectSystem=strict");
  assertEquals(line("ProtectHome"), "ProtectHome=yes");
  assertEquals(line("NoNewPrivileges"), "NoNewPrivileges=true");
  assertEquals(line("ProtectProc"), "ProtectProc=invisible");
  assertEquals(line("ProcSubset"), "ProcSubset=pid");
  assertEquals(line("RemoveIPC"), "RemoveIPC=yes");
  assertEquals(lines("SystemCallFilter")[0], "SystemCallFilter=@system-service");
  assertEquals(line("StateDirectory"), "StateDirectory=agent");
  assertEquals(line("LogsDirectory"), "LogsDirectory=agent");
  // Paths the config names outside systemd's folders, each allowed to be missing yet.
  assertEquals(
    line("ReadWritePaths"),
    `ReadWritePaths=-${dir}/state -${dir}/logs -${dir}/outbox`,
  );
  // The same narrow permissions as the agent task, then "run" with this config.
  const exec = line("ExecStart")!;
  assertStringIncludes(exec, ` run ${agentRunFlags(Deno.execPath()).join(" ")} `);
  assert(exec.endsWith(` run --config ${config}`), exec);
  assert(!unit.includes("s3cret-value"), "a secret was written into the unit");
  assertStringIncludes(installed.stdout, "systemctl daemon-reload && systemctl enable --now agent");
  assertStringIncludes(installed.stdout, `chown root:soaragent ${config} && chmod 640 ${config}`);
  assert(!/chown soaragent [^\n]*\b${dir}(\s|$)/.test(installed.stdout), installed.stdout);
  // Where systemd is at hand, its own verdict on the unit (the README's target: 2.0 or less).
  const analyze = await new Deno.Command("systemd-analyze", {
    args: ["security", "--offline=yes", unitFile],
    stdout: "piped",
    stderr: "piped",
  }).output().catch(() => undefined);
  if (analyze) {
    const text = new TextDecoder().decode(analyze.stdout);
    const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(text)?.[1]);
    assert(score <= 2.0, `exposure ${score}: ${text.slice(-500)}`);
  }
  const removed = await runAgent(["service", "uninstall", "--unit-dir", dir]);
  assertEquals(removed.code, 0, removed.stderr);
  assertStringIncludes(removed.stdout, `removed ${unitFile}`);
  assertEquals(await Deno.stat(unitFile).catch(() => undefined), undefined);
  const again = await runAgent(["service", "uninstall", "--unit-dir", dir]);
  assertStringIncludes(again.stdout, "nothing to remove");

  // Root only when asked for; a store in the config's folder is refused; unset, it goes to
  // the service's own state folder.
  const root = await runAgent(
    ["service", "install", "--config", config, "--unit-dir", dir, "--user", "root"],
    { env: { SECRET: "x" } },
  );
  assertEquals(root.code, 2);
  assertStringIncludes(root.stderr, "would run as root");
  const allowed = await runAgent(
    ["service", "install", "--config", config, "--unit-dir", dir, "--user", "root", "--allow-root"],
    { env: { SECRET: "x" } },
  );
  assertEquals(allowed.code, 0, allowed.stderr);
  await Deno.writeTextFile(config, `[agent]\nstore = ${dir}/agent.kv\n[mail_bridge]\n`);
  const beside = await runAgent(["service", "install", "--config", config, "--unit-dir", dir]);
  assertEquals(beside.code, 2, beside.stderr);
  assertStringIncludes(beside.stderr, "[agent] store makes the agent write to");
  assertStringIncludes(beside.stderr, "which holds its config");
  await Deno.writeTextFile(config, `[mail_bridge]\nmail_dir = /srv/mail\n`);
  const defaults = await runAgent(["service", "install", "--config", config, "--unit-dir", dir]);
  assertEquals(defaults.code, 0, defaults.stderr);
  const plain = await Deno.readTextFile(unitFile);
  assert(!plain.includes("ReadWritePaths"), plain);
  assertStringIncludes(defaults.stdout, "State goes to /var/lib/agent");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("config -c writes the template, -u adds what the file lacks commented out, keeping values, comments and meaning; --json outputs parse", async () => {
  const dir = await Deno.makeTempDir({ prefix: "agent-config-u-" });
  try {
    const created = await runAgent(["config", "-c", `${dir}/new.config`]);
    assertEquals(created.code, 0, created.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/new.config`), CONFIG_TEMPLATE);

    const file = `${dir}/app.config`;
    const original = await Deno.readTextFile(
      new URL("./fixtures/resilient-circuits.app.config", import.meta.url),
    );
    await Deno.writeTextFile(file, original);
    const env = { RC_API_KEY_ID: "key-id", RC_API_KEY_SECRET: "key-secret", HOME: dir };
    const check = async () => {
      const result = await runAgent(["config", "check", "--json", "--config", file], { env });
      assertEquals(result.code, 0, result.stderr);
      return JSON.parse(result.stdout);
    };
    const before = await check();
    const updated = await runAgent(["config", "-u", file], { env });
    assertEquals(updated.code, 0, updated.stderr);
    assertStringIncludes(updated.stdout, "resilient.stomp_transactions");
    assertStringIncludes(updated.stdout, "[taskcalendar]");
    const text = await Deno.readTextFile(file);
    // Every line of the original is still there, in order.
    let at = 0;
    for (const line of original.trimEnd().split("\n")) {
      const found = text.split("\n").indexOf(line, at);
      assert(found >= at, `lost or moved: ${JSON.stringify(line)}`);
      at = found + 1;
    }
    assertStringIncludes(text, "#stomp_transactions = false");
    const after = await check();
    assertEquals(after.settings, before.settings, "the update changed what the file means");
    assertEquals(after.other_sections, ["fn_utilities"]);
    const again = await runAgent(["config", "-u", file], { env });
    assertStringIncludes(again.stdout, "nothing changed");
    assertEquals(await Deno.readTextFile(file), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent completions writes bash, zsh and fish scripts that complete commands, subcommands and flags; actions list --json parses", async () => {
  const scripts: Record<string, string> = {};
  for (const shell of ["bash", "zsh", "fish"]) {
    const result = await runAgent(["completions", shell]);
    assertEquals(result.code, 0, result.stderr);
    scripts[shell] = result.stdout;
  }
  const dir = await Deno.makeTempDir({ prefix: "agent-completions-" });
  try {
    await Deno.writeTextFile(`${dir}/agent.bash`, scripts.bash!);
    const syntax = await new Deno.Command("bash", { args: ["-n", `${dir}/agent.bash`] }).output();
    assert(syntax.success, new TextDecoder().decode(syntax.stderr));
    const complete = (words: string) =>
      new Deno.Command("bash", {
        args: [
          "-c",
          `source ${dir}/agent.bash; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); ` +
          `_agent; echo "\${COMPREPLY[*]}"`,
        ],
        stdout: "piped",
      }).output().then((o) => new TextDecoder().decode(o.stdout).trim());
    assertEquals(await complete("agent doc"), "doctor");
    assertStringIncludes(await complete("agent mail-bridge ''"), "backfill failed");
    assertStringIncludes(await complete("agent doctor --"), "--timeout");
    for (const [shell, check] of [["zsh", ["-n"]], ["fish", ["--no-execute"]]] as const) {
      await Deno.writeTextFile(`${dir}/agent.${shell}`, scripts[shell]!);
      // scripts/test installs zsh and fish from Debian for this.
      const ran = await new Deno.Command(shell, { args: [...check, `${dir}/agent.${shell}`] })
        .output();
      assert(ran.success, `${shell}: ${new TextDecoder().decode(ran.stderr)}`);
    }
    assertStringIncludes(scripts.zsh!, "#compdef agent");
    assertStringIncludes(scripts.fish!, "complete -c agent -n __fish_use_subcommand -a doctor");
    assertStringIncludes(scripts.fish!, "'__fish_seen_subcommand_from service' -a install");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const examples = new URL("../examples/processors", import.meta.url).pathname;
  const home = await Deno.makeTempDir({ prefix: "agent-list-json-" });
  try {
    await Deno.writeTextFile(`${home}/app.config`, `[agent]\nprocessors_dir = ${examples}\n`);
    const list = await runAgent(["actions", "list", "--json", "--config", `${home}/app.config`]);
    assertEquals(list.code, 0, list.stderr);
    const json = JSON.parse(list.stdout);
    assertEquals(json.processors.map((p: { name: string }) => p.name), ["add_note"]);
    assertEquals(json.processors[0].requires, ["note_text"]);
    assertEquals(json.not_loaded, []);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
