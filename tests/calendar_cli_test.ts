import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { FakeResilient, resilientSection } from "./support/fake_resilient.ts";
import { PlatformClient, taskAction } from "./support/stomp_client.ts";
import { TestSmtpServer } from "./support/smtp_server.ts";
import { runAgent, spawnAgent } from "./support/cli.ts";
import { recordOutput } from "./support/suite_log.ts";
import { waitUntil } from "./support/wait.ts";

const ORG = 201;
const integration = { sanitizeOps: false, sanitizeResources: false };

const pki = await testPki();
const fake = await new FakeResilient({ orgId: ORG }).start();
fake.users.set(4, { id: 4, email: "ann@example.com", fname: "Ann", lname: "Example" });
// The Action Module's broker takes the platform's API key as its STOMP login.
const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
const platform = await PlatformClient.connect(broker);
const smtp = await new TestSmtpServer().start();
const dir = await Deno.makeTempDir();

function config(overrides: { stompCa?: string; queue: string }): string {
  return `[agent]
store = ${dir}/${overrides.queue}.kv
${
    resilientSection(fake, {
      sslPort: broker.sslPort,
      caCertFile: pki.caCertFile,
      ...(overrides.stompCa ? { stompCaFile: overrides.stompCa } : {}),
    }, `logdir = ${dir}\nlogfile = ${overrides.queue}.log\n`)
  }[taskcalendar]
queue = ${overrides.queue}
smtpserver = 127.0.0.1
smtpport = ${smtp.port}
smtpfrom = soar@example.com
debounce_seconds = 0
`;
}

function startAgent(args: string[]) {
  return spawnAgent(args, { SOAR_SECRET: fake.apiKeySecret });
}

Deno.test({
  name: "agent calendar serves actions, records them with --record, and exits 0 on SIGTERM",
  ...integration,
  async fn() {
    const queue = "clical";
    const file = `${dir}/${queue}.ini`;
    await Deno.writeTextFile(file, config({ queue }));
    const recordDir = `${dir}/recorded`;
    platform.listenForReplies(ORG, queue);
    const child = startAgent([
      "calendar",
      "--config",
      file,
      "--record",
      recordDir,
      "--log-format",
      "json",
    ]);
    const output = child.output();
    try {
      const good = platform.sendAction(ORG, queue, taskAction({ id: 300, owner_id: 4 }));
      const bad = platform.sendAction(ORG, queue, "not json at all");
      await platform.waitFor(
        (r) => [good, bad].every((id) => r.some((x) => x.correlationId === id)),
        30_000,
      );
      assertEquals(platform.replies.find((r) => r.correlationId === good)!.json!.message_type, 0);
      assertEquals(platform.replies.find((r) => r.correlationId === bad)!.json!.message_type, 1);
      await smtp.waitForMessages(1);
    } finally {
      child.kill("SIGTERM");
    }
    const result = await output;
    const stderr = new TextDecoder().decode(result.stderr);
    recordOutput("calendar_cli_test", stderr);
    assertEquals(result.code, 0, stderr);
    assertStringIncludes(stderr, "Stopped cleanly");
    assert(!stderr.includes(fake.apiKeySecret), "the API key secret never reaches the log");
    // [resilient] logdir/logfile: the same records as JSON lines, secrets redacted there too.
    const logFile = await Deno.readTextFile(`${dir}/${queue}.log`);
    const logRecords = logFile.trim().split("\n").map((line) => JSON.parse(line));
    assert(
      logRecords.some((r) =>
        String(r.message).startsWith("Connected to") &&
        String(r.properties?.url).startsWith("stomp+ssl://") &&
        // STOMP 1.2: the replies and ACKs go out through mod/stomp/frame_writer.ts
        r.properties?.stomp === "1.2"
      ),
    );
    assert(!logFile.includes(fake.apiKeySecret), "the API key secret never reaches the log file");
    // Every received message was recorded, headers and raw body.
    const recorded = await Array.fromAsync(Deno.readDir(recordDir));
    assertEquals(recorded.length, 2);
    const records = await Promise.all(
      recorded.map(async (e) => JSON.parse(await Deno.readTextFile(`${recordDir}/${e.name}`))),
    );
    const goodRecord = records.find((r) => r.body.includes('"task"'))!;
    assertEquals(goodRecord.headers["reply-to"], `/queue/acks.${ORG}.${queue}`);
    assertEquals(JSON.parse(goodRecord.body).task.id, 300);

    // The recorded message replays through the same processor, without a broker.
    const goodFile = `${recordDir}/${recorded[records.indexOf(goodRecord)]!.name}`;
    const replay = await runAgent([
      "replay",
      goodFile,
      "--processor",
      "calendar",
      "--config",
      file,
      "--log-level",
      "error",
    ], {
      env: { SOAR_SECRET: fake.apiKeySecret },
    });
    assertEquals(replay.code, 0, replay.stderr);
    const line = JSON.parse(replay.stdout.trim());
    assertEquals(line.correlation_id, goodRecord.headers["correlation-id"]);
    assertEquals(line.reply.message_type, 0);
    assertStringIncludes(line.reply.message, "SEQUENCE 1");

    // The bad one was kept as a dead letter.
    const dead = await runAgent(["replay", "--dead-letters", "--config", file], {
      env: { SOAR_SECRET: fake.apiKeySecret },
    });
    assertEquals(dead.code, 0, dead.stderr);
    const letters = dead.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(letters.length, 1);
    assertStringIncludes(dead.stderr, "1 dead letter(s) in");
    assertStringIncludes(letters[0].problem, "not JSON");
    assertEquals(atob(letters[0].body_base64), "not json at all");
  },
});

Deno.test({
  name: "agent calendar refuses an untrusted STOMP certificate: exit 1 naming host and reason",
  ...integration,
  async fn() {
    const queue = "cliuntrusted";
    const file = `${dir}/${queue}.ini`;
    await Deno.writeTextFile(file, config({ queue, stompCa: `${pki.dir}/rogue-ca.pem` }));
    const result = await startAgent(["calendar", "--config", file, "--log-format", "json"])
      .output();
    const stderr = new TextDecoder().decode(result.stderr);
    recordOutput("calendar_cli_test", stderr);
    assertEquals(result.code, 1, stderr);
    assertStringIncludes(stderr, "TLS verification of 127.0.0.1 failed");
    assertStringIncludes(stderr, "not signed by a trusted CA");
  },
});

Deno.test({
  name: "agent calendar started while the platform is unreachable keeps trying, saying why, " +
    "and serves once the platform is up",
  ...integration,
  async fn() {
    const queue = "clilate";
    const file = `${dir}/${queue}.ini`;
    await Deno.writeTextFile(file, config({ queue }));
    platform.listenForReplies(ORG, queue);
    const port = fake.port;
    await fake.stop();
    const child = startAgent(["calendar", "--config", file, "--log-format", "json"]);
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr += chunk;
      }
    })();
    const stdout = child.stdout.cancel();
    try {
      await waitUntil(
        "the agent says it cannot reach the platform",
        () => Promise.resolve(/cannot run.*trying again in \d+ s/.test(stderr)),
      );
      const failure = stderr.split("\n").find((l) => l.includes("cannot run"))!;
      assertStringIncludes(failure, `127.0.0.1:${port}`);
      await fake.start({ port });
      const id = platform.sendAction(ORG, queue, taskAction({ id: 301, owner_id: 4 }));
      await platform.waitFor((r) => r.some((x) => x.correlationId === id), 60_000);
      assertEquals(platform.replies.find((r) => r.correlationId === id)!.json!.message_type, 0);
    } finally {
      child.kill("SIGTERM");
    }
    const status = await child.status;
    await reading;
    await stdout;
    recordOutput("calendar_cli_test late platform", stderr);
    assertEquals(status.code, 0, stderr);
  },
});

// After the last test of this file (a hook, not a test: it asserts nothing): stop the CLI test's broker, SMTP server and fakes.
Deno.test.afterAll(async () => {
  await platform.close();
  await smtp.stop();
  await fake.stop();
  await broker.dispose();
  await Deno.remove(dir, { recursive: true });
});
