/**
 * Custom action processors (`agent actions`): processors dropped into the folder, each in
 * its own sandbox, served through a real ActiveMQ over STOMP+SSL with the fake Resilient
 * REST API; the scaffold, the SDK copies, replay, and the sandbox's limits.
 */
import { join } from "node:path";
import { tempDir } from "./support/temp.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { freePort, startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { runAgent, runMain, spawnAgent } from "./support/cli.ts";
import { FakeResilient, resilientSection } from "./support/fake_resilient.ts";
import { PlatformClient, type ReceivedReply } from "./support/stomp_client.ts";
import { SDK_SOURCE } from "../mod/sdk/embedded.ts";
import { sdkFileText } from "../mod/actions/scaffold.ts";
import { runProcessor } from "../mod/action_module/run_processor.ts";
import { parseDelivery } from "../mod/action_module/message.ts";
import { startCustomProcessor } from "../mod/actions/host.ts";
import { ResilientMock } from "../mod/resilient/mock.ts";
import { RestError } from "../mod/resilient/types.ts";
import { Store } from "../mod/store/store.ts";
import { recordOutput } from "./support/suite_log.ts";
import { waitUntil } from "./support/wait.ts";

const ORG = 201;
const integration = { sanitizeOps: false, sanitizeResources: false };
const EXAMPLES = new URL("../examples/processors/", import.meta.url).pathname;

const BOOM = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "boom",
  handle: () => { throw new Error("the lookup service is down"); },
});
`;

const HANG = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "hang",
  workers: 2,
  rules: {
    wait: () => new Promise(() => {}),
    spin: () => { for (;;) { /* a busy loop */ } },
    quick: (action) => \`quick \${action.incident.id}\`,
  },
});
`;

const NEEDS_FIELD = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "needs_field",
  requiredFields: ["severity_code", "missing_field"],
  handle: () => "never",
});
`;

const FETCHER = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "fetcher",
  handle: async (_action, ctx) => {
    const response = await fetch(ctx.config.url);
    return \`HTTP \${response.status}\`;
  },
});
`;

const BOMB = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "bomb",
  workers: 1,
  rules: {
    heap: () => { const a = []; for (;;) a.push(new Array(100000).fill(Math.random())); },
    buffers: () => { const a = []; for (;;) a.push(new Uint8Array(16 * 1024 * 1024).fill(1)); },
    fine: (action) => \`fine \${action.incident.id}\`,
  },
});
`;

const CHECKS = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "checks",
  handle: () => "handled",
  selftest: async (ctx) => {
    const fields = await ctx.rest.get("/types/incident/fields");
    const want = ctx.config.needs_field;
    return fields.some((f) => f.name === want)
      ? { state: "success", reason: \`the platform has \${want}\` }
      : { state: "failure", reason: \`the platform lacks \${want}\` };
  },
});
`;

const FAILING = `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "failing",
  handle: () => "handled",
  selftest: async () => { throw new Error("the lookup service at lookup.example refused us"); },
});
`;

/** A processors folder with the sample and the given modules. */
async function processorsFolder(modules: Record<string, string>): Promise<string> {
  const dir = await tempDir({ prefix: "processors-" });
  for (const file of ["agent_sdk.ts", "add_note.ts"]) {
    await Deno.copyFile(join(EXAMPLES, file), join(dir, file));
  }
  for (const [name, text] of Object.entries(modules)) {
    await Deno.writeTextFile(join(dir, `${name}.ts`), text);
  }
  return dir;
}

Deno.test("the SDK copies (embedded for `actions new`, the sample's) match mod/sdk/sdk.ts", async () => {
  const source = await Deno.readTextFile(new URL("../mod/sdk/sdk.ts", import.meta.url));
  assert(SDK_SOURCE === source, "mod/sdk/embedded.ts is stale: run scripts/write_sdk.ts");
  assertEquals(await Deno.readTextFile(join(EXAMPLES, "agent_sdk.ts")), sdkFileText(source));
});

Deno.test({
  name: "processors in the folder serve their rules through ActiveMQ; a hanging and a throwing " +
    "one fail alone; one needing a missing field is refused at start-up",
  ...integration,
  async fn() {
    const pki = await testPki();
    const fake = await new FakeResilient({ orgId: ORG }).start();
    const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
    const platform = await PlatformClient.connect(broker);
    const dir = await processorsFolder({ boom: BOOM, hang: HANG, needs_field: NEEDS_FIELD });
    fake.incidents.set(2095, { id: 2095, name: "Phishing", vers: 1 });
    fake.rules.set(31, "Add note").set(41, "Wait").set(42, "Spin").set(43, "Quick");
    fake.fields.set("incident", [{ name: "severity_code", input_type: "select" }]);
    fake.fields.set("actioninvocation", [{ name: "note_text", input_type: "textarea" }]);
    // The config and the store live apart from the code the processors may read.
    const home = await tempDir({ prefix: "agent-home-" });
    const configFile = join(home, "app.config");
    await Deno.writeTextFile(
      configFile,
      `[agent]
store = ${home}/agent.kv
processors_dir = ${dir}
${resilientSection(fake, { sslPort: broker.sslPort, caCertFile: pki.caCertFile })}[add_note]
prefix = "[SOC]"
[hang]
timeout_seconds = 2
`,
    );
    for (const queue of ["add_note", "boom", "hang", "needs_field"]) {
      platform.listenForReplies(ORG, queue);
    }
    const child = spawnAgent(["actions", "--config", configFile], {
      SOAR_SECRET: fake.apiKeySecret,
    });
    const output = child.output();
    const final = (id: string) => (r: ReceivedReply[]) =>
      r.find((x) => x.correlationId === id && x.json?.complete);
    const waitFinal = async (id: string, timeoutMs = 30_000) => {
      await platform.waitFor((r) => !!final(id)(r), timeoutMs);
      return final(id)(platform.replies)!;
    };
    try {
      const action = (actionId: number, properties: Record<string, unknown> = {}) => ({
        action_id: actionId,
        object_type: 0,
        operation_type: "modified",
        incident: { id: 2095, name: "Phishing" },
        properties,
      });
      const wait = platform.sendAction(ORG, "hang", action(41));
      const spin = platform.sendAction(ORG, "hang", action(42));
      const boom = platform.sendAction(ORG, "boom", action(7));
      const note = platform.sendAction(
        ORG,
        "add_note",
        action(31, { note_text: "User called back", artifact_type: "IP Address" }),
      );
      const refused = platform.sendAction(ORG, "needs_field", action(7));

      // The sample processor answers while the hanging one is stuck.
      const noteReply = await waitFinal(note);
      assertEquals(noteReply.json, {
        message_type: 0,
        message: "Note 1001 added to incident 2095",
        complete: true,
      });
      assertEquals(fake.notes, [{
        incidentId: 2095,
        text: { format: "text", content: "[SOC] User called back" },
        contextToken: `ctx-${note}`,
      }]);
      const boomReply = await waitFinal(boom);
      assertEquals(boomReply.json?.message_type, 1);
      assertStringIncludes(boomReply.json!.message, "the lookup service is down");

      // Both kinds of hang time out with an error reply; the busy loop costs its sandbox.
      for (const id of [wait, spin]) {
        const reply = await waitFinal(id);
        assertEquals(reply.json?.message_type, 1, JSON.stringify(reply.json));
        assertStringIncludes(reply.json!.message, "did not finish within 2 s");
      }
      const quick = platform.sendAction(ORG, "hang", action(43));
      assertEquals((await waitFinal(quick)).json?.message, "quick 2095");
      const second = platform.sendAction(ORG, "add_note", action(31, { note_text: "Again" }));
      assertEquals((await waitFinal(second)).json?.message, "Note 1002 added to incident 2095");

      // The refused processor never subscribed: its message waits on the queue.
      assertEquals(platform.replies.filter((r) => r.correlationId === refused), []);
      assertEquals(await platform.queueSize(`actions.${ORG}.needs_field`), 1);
      for (const queue of ["add_note", "boom", "hang"]) {
        assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0, queue);
      }
    } finally {
      child.kill("SIGTERM");
    }
    const { code, stderr } = await output;
    const log = new TextDecoder().decode(stderr);
    recordOutput("processors_test agent run", log);
    assertEquals(code, 0, log);
    const refusal = log.split("\n").filter(Boolean).map((line) => JSON.parse(line))
      .find((entry) => entry.message.includes("not started"));
    assertEquals(refusal?.level, "ERROR");
    assertEquals(refusal?.properties.name, "needs_field");
    assertStringIncludes(refusal?.properties.reason, 'no incident field "missing_field"');
    assert(!log.includes('"severity_code"'), "an existing field is not reported missing");
    assertStringIncludes(log, "stopped responding (a busy loop?)");
    assert(!log.includes(fake.apiKeySecret), "the API secret reached the log");
    await platform.close();
    await broker.stop();
    await fake.stop();
  },
});

Deno.test({
  name: "an allocation bomb ends only its own sandbox: an error reply, another queue keeps " +
    "replying, the agent keeps its PID, the next action gets a new sandbox, /metrics counts it",
  ...integration,
  async fn() {
    const pki = await testPki();
    const fake = await new FakeResilient({ orgId: ORG }).start();
    const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
    const platform = await PlatformClient.connect(broker);
    const dir = await processorsFolder({ bomb: BOMB });
    fake.incidents.set(2095, { id: 2095, name: "Phishing", vers: 1 });
    fake.rules.set(31, "Add note").set(51, "Heap").set(52, "Buffers").set(53, "Fine");
    fake.fields.set("actioninvocation", [{ name: "note_text", input_type: "textarea" }]);
    const port = freePort();
    // The config and the store live apart from the code the processors may read.
    const home = await tempDir({ prefix: "agent-home-" });
    const configFile = join(home, "app.config");
    await Deno.writeTextFile(
      configFile,
      `[agent]
store = ${home}/agent.kv
processors_dir = ${dir}
http_listen = 127.0.0.1:${port}
${resilientSection(fake, { sslPort: broker.sslPort, caCertFile: pki.caCertFile })}[bomb]
max_memory_mb = 256
`,
    );
    platform.listenForReplies(ORG, "bomb");
    platform.listenForReplies(ORG, "add_note");
    const child = spawnAgent(["run", "--config", configFile], { SOAR_SECRET: fake.apiKeySecret });
    let exited = false;
    const output = child.output().finally(() => (exited = true));
    const base = `http://127.0.0.1:${port}`;
    const final = async (id: string) => {
      const done = (r: ReceivedReply[]) =>
        r.find((x) => x.correlationId === id && x.json?.complete);
      await platform.waitFor((r) => !!done(r), 60_000);
      return done(platform.replies)!.json!;
    };
    const action = (actionId: number, properties: Record<string, unknown> = {}) => ({
      action_id: actionId,
      object_type: 0,
      incident: { id: 2095, name: "Phishing" },
      properties,
    });
    try {
      await waitUntil("/healthz is 200", async () => {
        const response = await fetch(`${base}/healthz`).catch(() => undefined);
        await response?.body?.cancel();
        return response?.status === 200;
      });
      const heap = platform.sendAction(ORG, "bomb", action(51));
      const notes = [1, 2, 3].map((n) =>
        platform.sendAction(ORG, "add_note", action(31, { note_text: `note ${n}` }))
      );
      const heapReply = await final(heap);
      assertEquals(heapReply.message_type, 1, JSON.stringify(heapReply));
      assertStringIncludes(heapReply.message, "ran out of memory");
      assertStringIncludes(heapReply.message, "max_memory_mb 256");
      for (const note of notes) assertEquals((await final(note)).message_type, 0);

      const buffers = platform.sendAction(ORG, "bomb", action(52));
      const buffersReply = await final(buffers);
      assertEquals(buffersReply.message_type, 1, JSON.stringify(buffersReply));
      assertStringIncludes(buffersReply.message, "ran out of memory: its sandbox used");
      const fine = platform.sendAction(ORG, "bomb", action(53));
      assertEquals(await final(fine), { message_type: 0, message: "fine 2095", complete: true });
      const after = platform.sendAction(ORG, "add_note", action(31, { note_text: "after" }));
      assertEquals((await final(after)).message_type, 0);
      assertEquals(fake.notes.length, 4);

      assert(!exited, "the agent process ended");
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assertMatch(metrics, /^agent_sandbox_failures_total\{sandbox="bomb",cause="memory"\} 2$/m);
      assertMatch(metrics, /^agent_actions_failed_total\{queue="bomb"\} 2$/m);
    } finally {
      child.kill("SIGTERM");
    }
    const { code, stderr } = await output;
    const log = new TextDecoder().decode(stderr);
    recordOutput("processors_test allocation bomb", log);
    assertEquals(code, 0, log);
    assertMatch(log, /Started a new sandbox for .*bomb.* \(the last one: .*ran out of memory/);
    await platform.close();
    await broker.stop();
    await fake.stop();
  },
});

Deno.test({
  name: "user code is refused a folder that holds the config or the store (processors_dir, " +
    "integrations_dir, allow_read)",
  ...integration,
  async fn() {
    const dir = await processorsFolder({});
    const beside = join(dir, "app.config");
    await Deno.writeTextFile(
      beside,
      `[agent]\nstore = /tmp/elsewhere.kv\nprocessors_dir = ${dir}\n`,
    );
    const list = await runMain(["actions", "list", "--config", beside]);
    assertEquals(list.code, 2, list.stderr);
    assertStringIncludes(list.stderr, "agent.processors_dir");
    assertStringIncludes(list.stderr, "holds the config");
    const home = await tempDir({ prefix: "agent-home-" });
    const apart = join(home, "app.config");
    await Deno.writeTextFile(
      apart,
      `[agent]\nstore = ${home}/agent.kv\nprocessors_dir = ${dir}\n[add_note]\nallow_read = ${home}\n`,
    );
    const read = await runMain(["actions", "list", "--config", apart]);
    assertEquals(read.code, 2, read.stderr);
    assertStringIncludes(read.stderr, "add_note.allow_read");
    assertStringIncludes(read.stderr, "holds the config");
    await Deno.writeTextFile(
      apart,
      `[agent]\nstore = ${home}/agent.kv\n[enrich]\nintegrations_dir = ${home}\n` +
        `[securechange]\nurl = https://sc.example.com\nusername = a\npassword = b\n`,
    );
    const plugins = await runAgent(["enrich", "--config", apart], {
      env: { SCW_EVENT: "CREATE" },
      stdin: "<ticket_info><id>1</id></ticket_info>",
    });
    assertEquals(plugins.code, 2, plugins.stderr);
    assertStringIncludes(plugins.stderr, "enrich.integrations_dir");
  },
});

Deno.test({
  name: "agent actions new scaffolds a processor whose own test passes as written",
  ...integration,
  async fn() {
    const dir = await tempDir({ prefix: "scaffold-" });
    const configFile = join(dir, "app.config");
    await Deno.writeTextFile(configFile, `[agent]\nprocessors_dir = ${dir}/processors\n`);
    const made = await runMain(["actions", "new", "triage_helper", "--config", configFile]);
    assertEquals(made.code, 0, made.stderr);
    assertStringIncludes(made.stdout, "triage_helper_test.ts");
    assertStringIncludes(await Deno.readTextFile(configFile), "[triage_helper]\n");
    const test = await new Deno.Command(Deno.execPath(), {
      args: ["test", "triage_helper_test.ts"],
      cwd: join(dir, "processors"),
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(test.stdout) + new TextDecoder().decode(test.stderr);
    recordOutput("processors_test deno test", text);
    assertEquals(test.code, 0, text);
    assertMatch(text, /ok \| 3 passed \| 0 failed/);

    // Its selftest passes with the section as written and fails, naming the key, without it.
    const selftest = await runAgent(["selftest", "triage_helper", "--config", configFile]);
    assertEquals(selftest.code, 0, selftest.stdout + selftest.stderr);
    assertMatch(selftest.stdout, /^ok\s+\[triage_helper\] processor\s+selftest\s+success$/m);
    const config = await Deno.readTextFile(configFile);
    await Deno.writeTextFile(configFile, config.replace(/^greeting = .*$/m, ""));
    const unset = await runAgent(["selftest", "-l", "triage_helper", "--config", configFile]);
    assertEquals(unset.code, 1, unset.stdout + unset.stderr);
    assertMatch(
      unset.stdout,
      /^FAIL\s+\[triage_helper\] processor\s+selftest\s+\[triage_helper\] greeting is not set$/m,
    );
    await Deno.writeTextFile(configFile, config);

    // The agent loads what it scaffolded; a second `new` with the same name refuses.
    const list = await runMain(["actions", "list", "--config", configFile]);
    assertEquals(list.code, 0, list.stderr);
    assertMatch(list.stdout, /^triage_helper: queue triage_helper; rules triage_helper_example;/m);
    const again = await runMain(["actions", "new", "triage_helper", "--config", configFile]);
    assertEquals(again.code, 1);
    assertStringIncludes(again.stderr, "already exists");
    const bad = await runMain(["actions", "new", "Bad-Name", "--dir", dir]);
    assertEquals(bad.code, 1);
    assertStringIncludes(bad.stderr, "lower-case letters");
  },
});

Deno.test({
  name: "agent actions list names what does not load; replay runs a custom processor, " +
    "whose sandbox refuses an undeclared host",
  ...integration,
  async fn() {
    const dir = await processorsFolder({
      fetcher: FETCHER,
      broken: "export default { queue: 'broken' };\n",
      syntax: "export default defineProcessor({ queue: ",
      // Remote code is refused before anything is fetched (this machine has no internet:
      // a download attempt would show as a network error instead).
      remote: 'import { defineProcessor } from "./agent_sdk.ts";\nimport "./_remote_lib.ts";\n' +
        'export default defineProcessor({ queue: "remote", handle: () => "x" });\n',
    });
    await Deno.writeTextFile(join(dir, "_helper.ts"), "export const x = 1;\n");
    await Deno.writeTextFile(
      join(dir, "_remote_lib.ts"),
      'import pad from "npm:left-pad@1.3.0";\nexport const padded = pad("x", 3);\n',
    );
    const home = await tempDir({ prefix: "agent-home-" });
    const configFile = join(home, "app.config");
    await Deno.writeTextFile(
      configFile,
      `[agent]\nstore = ${home}/agent.kv\nprocessors_dir = ${dir}\n` +
        `[fetcher]\nurl = https://example.invalid/lookup\n`,
    );
    const list = await runMain(["actions", "list", "--config", configFile]);
    assertEquals(list.code, 1);
    assertMatch(list.stdout, /^add_note: queue add_note; rules add_note; .*requires note_text$/m);
    assertMatch(list.stdout, /^fetcher: queue fetcher; rules \(any other\);/m);
    assertMatch(list.stdout, /^broken: NOT LOADED: .*broken\.ts: it has no handler/m);
    assertMatch(list.stdout, /^syntax: NOT LOADED: .*syntax\.ts: /m);
    assertMatch(
      list.stdout,
      /^remote: NOT LOADED: .*it imports code from elsewhere \(.*_remote_lib\.ts: npm:left-pad@1\.3\.0\).*bundle it/m,
    );
    assert(!list.stderr.includes("Download"), "nothing was downloaded");
    assert(!list.stdout.includes("_helper"), "a _private module is not a processor");

    const message = join(dir, "message.json");
    await Deno.writeTextFile(
      message,
      JSON.stringify({
        headers: { "correlation-id": "invid:5", "Co3ContextToken": "ctx-5" },
        body: JSON.stringify({
          action_id: 31,
          object_type: 0,
          incident: { id: 2095 },
          properties: { note_text: "From replay" },
        }),
      }),
    );
    const fixtures = join(dir, "rest.json");
    await Deno.writeTextFile(
      fixtures,
      JSON.stringify({
        "GET /actions": { entities: [{ id: 31, name: "Add note" }] },
        "POST /incidents/2095/comments": { id: 77 },
      }),
    );
    const replay = await runAgent([
      "replay",
      message,
      "--processor",
      "add_note",
      "--rest-fixtures",
      fixtures,
      "--config",
      configFile,
    ]);
    assertEquals(replay.code, 0, replay.stderr);
    assertEquals(JSON.parse(replay.stdout).reply, {
      message_type: 0,
      message: "Note 77 added to incident 2095",
      complete: true,
    });
    const denied = await runAgent([
      "replay",
      message,
      "--processor",
      "fetcher",
      "--rest-fixtures",
      fixtures,
      "--config",
      configFile,
    ]);
    assertEquals(denied.code, 0, "an error reply is a result, not a failure");
    assertStringIncludes(
      denied.stderr,
      "replayed 1 message(s) through fetcher: 0 info, 1 error reply",
    );
    const reply = JSON.parse(denied.stdout).reply;
    assertEquals(reply.message_type, 1);
    assertMatch(reply.message, /net access to "example\.invalid(:443)?"/);
    const unknown = await runAgent([
      "replay",
      message,
      "--processor",
      "nope",
      "--config",
      configFile,
    ]);
    assertEquals(unknown.code, 2);
    assertStringIncludes(unknown.stderr, "add_note, broken, fetcher, remote, syntax)");
  },
});

Deno.test({
  name: "a processor's effects run once per message across redelivery, through the sandbox",
  ...integration,
  async fn() {
    const dir = await processorsFolder({});
    const store = await Store.open(":memory:");
    const custom = await startCustomProcessor({
      name: "add_note",
      path: join(dir, "add_note.ts"),
      dir,
      section: {
        settings: {},
        allowNet: [],
        allowRead: [],
        timeoutSeconds: 5,
        maxMemoryMb: undefined,
        values: {},
      },
      defaultWorkers: 2,
    });
    try {
      assertEquals(custom.processor.sandboxed, true, "its prefetch covers the sandbox's hop");
      const mock = new ResilientMock()
        .on("GET", "/actions", { entities: [{ id: 31, name: "Add note" }] })
        .on("POST", "/incidents/:id/comments", { id: 5 })
        .on("POST", "/incidents/:id/artifacts", () => {
          throw new Error("artifact service unavailable");
        });
      const body = JSON.stringify({
        action_id: 31,
        object_type: 0,
        incident: { id: 9 },
        properties: { note_text: "n", artifact_type: "DNS Name", artifact_value: "x.example" },
      });
      const parsed = parseDelivery({
        "message-id": "ID:redelivered-1",
        destination: "/queue/actions.201.add_note",
        "correlation-id": "invid:9",
        "Co3ContextToken": "ctx-9",
      }, new TextEncoder().encode(body));
      assert(parsed.ok);
      const deps = { rest: mock, store, signal: new AbortController().signal };
      const first = await runProcessor(custom.processor, parsed.message, deps);
      assertEquals(first.reply.message_type, 1);
      assertStringIncludes(first.reply.message, "artifact service unavailable");
      mock.on("POST", "/incidents/:id/artifacts", [{ id: 3 }]);
      const again = await runProcessor(custom.processor, parsed.message, deps);
      assertEquals(
        again.reply.message,
        "Note 5 and DNS Name artifact x.example added to incident 9",
      );
      assertEquals(mock.seen(/POST .*comments/).length, 1, "the note was posted once");
      assert(mock.calls.every((c) => c.contextToken === "ctx-9"));
    } finally {
      custom.close();
      store.close();
    }
  },
});

Deno.test({
  name: "ctx.incidents.update re-reads and re-applies on 409; the definition's options reach the " +
    "listener",
  ...integration,
  async fn() {
    const dir = await processorsFolder({
      escalate: `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({
  queue: "escalate",
  defer: 1.5,
  debounce: { seconds: 2, discard: true, key: "task.id" },
  workers: 3,
  timeoutSeconds: 9,
  handle: async (action, ctx) => {
    const updated = await ctx.incidents.update(action.incident.id, (incident) => ({
      ...incident,
      severity_code: "High",
    }));
    return \`incident \${updated.id} at version \${updated.vers}\`;
  },
});
`,
    });
    const store = await Store.open(":memory:");
    const custom = await startCustomProcessor({
      name: "escalate",
      path: join(dir, "escalate.ts"),
      dir,
      section: {
        settings: {},
        allowNet: [],
        allowRead: [],
        timeoutSeconds: undefined,
        maxMemoryMb: undefined,
        values: {},
      },
      defaultWorkers: 10,
    });
    try {
      const p = custom.processor;
      assertEquals([p.queue, p.deferMs, p.workers, p.timeoutMs], ["escalate", 1500, 3, 9000]);
      assertEquals([p.debounce?.ms, p.debounce?.discard], [2000, true]);
      const data = { action_id: null, object_type: 1, incident: { id: 4 }, task: { id: 80 } };
      assertEquals(p.debounce?.key(data as never), "80");

      // The platform changes the incident between our GET and PUT, once.
      let version = 1;
      let conflicts = 0;
      const mock = new ResilientMock()
        .on("GET", "/incidents/:id", () => ({ id: 4, vers: version }))
        .on("PUT", "/incidents/:id", (call) => {
          const body = call.body as { vers: number };
          if (conflicts++ === 0) {
            version++;
            throw new RestError("PUT", call.path, 409, "Conflict");
          }
          assertEquals(body.vers, version);
          return { ...body, vers: ++version };
        });
      const parsed = parseDelivery({
        "message-id": "ID:esc-1",
        destination: "/queue/actions.201.escalate",
      }, new TextEncoder().encode(JSON.stringify(data)));
      assert(parsed.ok);
      const outcome = await runProcessor(p, parsed.message, {
        rest: mock,
        store,
        signal: new AbortController().signal,
      });
      assertEquals(outcome.reply.message, "incident 4 at version 3");
      assertEquals(mock.seen(/^(GET|PUT)/).map((c) => c.method), ["GET", "PUT", "GET", "PUT"]);
    } finally {
      custom.close();
      store.close();
    }
  },
});

Deno.test({
  name: "agent selftest: the doctor's checks, then each processor's selftest in its sandbox " +
    "with the agent's REST login; -l picks processors; a failing or unloadable one fails the run",
  ...integration,
  async fn() {
    const pki = await testPki();
    const fake = await new FakeResilient({ orgId: ORG }).start();
    const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
    try {
      fake.fields.set("incident", [{ name: "severity_code", input_type: "select" }]);
      const dir = await processorsFolder({
        checks: CHECKS,
        failing: FAILING,
        boom: BOOM,
        broken: "export default {",
      });
      const home = await tempDir({ prefix: "agent-home-" });
      const configFile = join(home, "app.config");
      await Deno.writeTextFile(
        configFile,
        `[agent]\nstore = ${home}/agent.kv\nprocessors_dir = ${dir}\n` +
          resilientSection(fake, { sslPort: broker.sslPort, caCertFile: pki.caCertFile }) +
          `[checks]\nneeds_field = severity_code\n`,
        { mode: 0o600 },
      );
      const env = { SOAR_SECRET: fake.apiKeySecret };
      const all = await runAgent(["selftest", "--json", "--timeout", "8", "--config", configFile], {
        env,
      });
      assertEquals(all.code, 1, all.stdout + all.stderr);
      const report = JSON.parse(all.stdout) as {
        ok: boolean;
        findings: { system: string; check: string; status: string; detail: string }[];
      };
      assertEquals(report.ok, false);
      const row = (system: string, check: string) => {
        const hit = report.findings.find((f) => f.system === system && f.check === check);
        assert(hit, `no ${system} ${check} in ${all.stdout}`);
        return hit;
      };
      // The doctor's checks are part of it.
      assertEquals(row("[resilient] REST", "login").status, "pass");
      assertEquals(row("[resilient] STOMP", "login").status, "pass");
      const checks = row("[checks] processor", "selftest");
      assertEquals([checks.status, checks.detail], ["pass", "the platform has severity_code"]);
      const failing = row("[failing] processor", "selftest");
      assertEquals(
        [failing.status, failing.detail],
        ["fail", "the lookup service at lookup.example refused us"],
      );
      assertEquals(row("[boom] processor", "selftest").status, "skip");
      assertEquals(row("[add_note] processor", "selftest").status, "skip");
      const broken = row("[broken] processor", "load");
      assertEquals(broken.status, "fail");
      assertStringIncludes(broken.detail, "broken.ts");
      assert(!all.stdout.includes(fake.apiKeySecret) && !all.stderr.includes(fake.apiKeySecret));

      // Only the named processors; the selftest sees the platform as it is now.
      const one = await runAgent(["selftest", "-l", "checks", "--config", configFile], { env });
      assertEquals(one.code, 0, one.stdout + one.stderr);
      assertMatch(one.stdout, /^ok\s+\[checks\] processor\s+selftest\s+the platform has/m);
      assert(!one.stdout.includes("[failing]"), one.stdout);
      assertMatch(one.stdout, /^READY: /m);
      fake.fields.set("incident", []);
      const lacks = await runAgent(["selftest", "checks", "--config", configFile], { env });
      assertEquals(lacks.code, 1);
      assertMatch(lacks.stdout, /^FAIL\s+\[checks\] processor\s+selftest\s+the platform lacks/m);
      const unknown = await runAgent(["selftest", "nope", "--config", configFile], { env });
      assertEquals(unknown.code, 1);
      assertMatch(unknown.stdout, /^FAIL\s+\[nope\] processor\s+load\s+no nope\.ts/m);
    } finally {
      await broker.stop();
      await fake.stop();
    }
  },
});

Deno.test({
  name: "agent actions stopped with SIGTERM in the middle of a burst drains cleanly: the " +
    "restart on the same store sends no reply again, and answers the rest",
  ...integration,
  async fn() {
    const pki = await testPki();
    const fake = await new FakeResilient({ orgId: ORG }).start();
    const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
    const platform = await PlatformClient.connect(broker);
    const dir = await processorsFolder({
      quick: `import { defineProcessor } from "./agent_sdk.ts";
export default defineProcessor({ queue: "quick", handle: (action) => \`ok \${action.task?.id}\` });
`,
    });
    const home = await tempDir({ prefix: "agent-home-" });
    const configFile = join(home, "app.config");
    await Deno.writeTextFile(
      configFile,
      `[agent]\nstore = ${home}/agent.kv\nprocessors_dir = ${dir}\n` +
        resilientSection(fake, { sslPort: broker.sslPort, caCertFile: pki.caCertFile }),
    );
    platform.listenForReplies(ORG, "quick");
    const ids = Array.from(
      { length: 1200 },
      (_, i) =>
        platform.sendAction(ORG, "quick", {
          action_id: null,
          object_type: 1,
          incident: { id: 1 },
          task: { id: 50_000 + i, inc_id: 1, name: "t" },
        }),
    );
    const runOnce = async (until: (replied: number) => boolean) => {
      const child = spawnAgent(["actions", "--config", configFile], {
        SOAR_SECRET: fake.apiKeySecret,
      });
      const output = child.output();
      try {
        await platform.waitFor(
          (r) => until(r.filter((x) => ids.includes(x.correlationId)).length),
          60_000,
        );
      } finally {
        child.kill("SIGTERM");
      }
      const { code, stderr } = await output;
      const log = new TextDecoder().decode(stderr);
      recordOutput("processors_test clean stop", log);
      assertEquals(code, 0, log);
      return log;
    };
    try {
      await runOnce((n) => n >= 200);
      const store = await Store.open(`${home}/agent.kv`);
      const left = await store.count(["actions", "outbox"]);
      store.close();
      assertEquals(left, 0, "every reply sent before the stop was confirmed");
      await runOnce((n) => n >= ids.length);
      await new Promise((r) => setTimeout(r, 300));
      const counts = new Map<string, number>();
      for (const r of platform.replies) {
        if (ids.includes(r.correlationId)) {
          counts.set(r.correlationId, (counts.get(r.correlationId) ?? 0) + 1);
        }
      }
      assertEquals([...counts].filter(([, n]) => n > 1), [], "no reply twice");
      assertEquals(counts.size, ids.length);
    } finally {
      await platform.close();
      await broker.stop();
      await fake.stop();
    }
  },
});
