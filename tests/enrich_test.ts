import { assert, assertEquals, assertStringIncludes, assertThrows } from "./support/assert.ts";
import { testPki } from "./support/ca.ts";
import { FakeSecureChange } from "./support/fake_securechange.ts";
import { HttpsFake } from "./support/https_fake.ts";
import { demoEnrichArgs, runAgent } from "./support/cli.ts";
import { buildTicketInfo } from "../mod/enrich/ticket_info.ts";
import { parseTicketInfo, splitArguments, TriggerInputError } from "../mod/securechange/trigger.ts";
import type { RawTicket } from "../mod/securechange/types.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
const sample = JSON.parse(
  await Deno.readTextFile(new URL("../scripts/demo/ticket.json", import.meta.url)),
).ticket as RawTicket;

Deno.test("ticket_info: IP, RANGE, DNS and ANY sources, PROTOCOL/PREDEFINED/ANY services, quirks, nothing dropped", () => {
  const info = buildTicketInfo(structuredClone(sample));
  assertEquals([
    info.Id,
    info.Subject,
    info.WorkflowName,
    info.Requester,
    info.RequesterId,
    info.Status,
    info.Comments,
  ], [
    42,
    "Open 443 to web tier",
    "Access Request",
    "jdoe",
    7,
    "In Progress",
    "",
  ]);
  const [ar1, ar2] = info.Requests;
  assertEquals(ar1!.Sources.map((a) => [a.Ip, a.Mask, a.Cidr, a.Private, a.Type]), [
    ["10.1.2.3", "255.255.255.255", "32", true, "IP"],
    ["192.168.10.0", "255.255.255.0", "24", true, "RANGE"],
    ["10.20.0.5", "255.255.255.255", "32", true, "DNS"],
  ]);
  assertEquals(ar1!.Sources[2]!.HostName, "build01.corp.example");
  // A single destination came back as a bare object.
  assertEquals(ar1!.Destinations.map((a) => `${a.Ip}/${a.Cidr} ${a.Private}`), [
    "203.0.113.10/32 true",
  ]);
  assertEquals(ar1!.Services, [
    { Protocol: "TCP", Min: "443", Max: "443" },
    { Protocol: "TCP", Min: "22", Max: "22", Name: "ssh" },
  ]);
  assertEquals(ar2!.Sources.map((a) => `${a.Ip}/${a.Cidr} ${a.Private}`), ["0.0.0.0/0 false"]);
  assertEquals(ar2!.Services, [{ Protocol: "ANY", Min: "0", Max: "65536" }]);
  // What cannot be mapped is passed on, not dropped.
  assertEquals(ar2!.Unmapped, [{
    field: "destination",
    entry: { "@type": "LDAP_ENTITY", ldap_entity_name: "CN=Admins" },
  }]);
});

Deno.test("ticket_info: null, text and list entries among sources, destinations and services go to Unmapped with the reason; the rest is mapped", () => {
  const ticket = {
    id: 3,
    steps: {
      step: [{
        id: 1,
        tasks: {
          task: [{
            id: 1,
            fields: {
              field: [{
                access_request: {
                  order: "AR1",
                  sources: {
                    source: [null, "10.0.0.1", [1, 2], { "@type": "IP", ip_address: "10.1.1.1" }],
                  },
                  destinations: { destination: [{ "@type": "IP", ip_address: "8.8.8.8" }, 7] },
                  services: { service: [null, { "@type": "PROTOCOL", protocol: "tcp", port: 22 }] },
                },
              }],
            },
          }],
        },
      }],
    },
  } as unknown as RawTicket;
  const [ar] = buildTicketInfo(ticket).Requests;
  assertEquals(ar!.Sources.map((a) => a.Ip), ["10.1.1.1"]);
  assertEquals(ar!.Destinations.map((a) => a.Ip), ["8.8.8.8"]);
  assertEquals(ar!.Services, [{ Protocol: "TCP", Min: "22", Max: "22" }]);
  assertEquals(ar!.Unmapped, [
    { field: "source", entry: null, reason: "not an object (null)" },
    { field: "source", entry: "10.0.0.1", reason: "not an object (string)" },
    { field: "source", entry: [1, 2], reason: "not an object (a list)" },
    { field: "destination", entry: 7, reason: "not an object (number)" },
    { field: "service", entry: null, reason: "not an object (null)" },
  ]);
});

Deno.test("ticket_info: ranges become the fewest CIDR blocks; port ranges and public addresses", () => {
  const ticket: RawTicket = {
    id: 1,
    steps: {
      step: {
        id: 1,
        tasks: {
          task: {
            id: 1,
            fields: {
              field: {
                access_request: {
                  order: "AR1",
                  sources: {
                    source: {
                      "@type": "RANGE",
                      range_first_ip: "10.0.0.5",
                      range_last_ip: "10.0.0.10",
                    },
                  },
                  destinations: { destination: { "@type": "IP", ip_address: "8.8.8.8", cidr: 32 } },
                  services: {
                    service: { "@type": "PROTOCOL", protocol: "udp", port: "1000-2000" },
                  },
                },
              },
            },
          },
        },
      },
    },
  };
  const [request] = buildTicketInfo(ticket).Requests;
  assertEquals(request!.Sources.map((a) => `${a.Ip}/${a.Cidr}`), [
    "10.0.0.5/32",
    "10.0.0.6/31",
    "10.0.0.8/31",
    "10.0.0.10/32",
  ]);
  assertEquals(request!.Destinations[0]!.Private, false);
  assertEquals(request!.Services, [{ Protocol: "UDP", Min: "1000", Max: "2000" }]);
});

Deno.test("trigger input: ticket_info XML, the empty Test document, malformed XML, one-string arguments", () => {
  const info = parseTicketInfo(`<ticket_info><id>42</id><subject>Open 443</subject>
    <current_stage><id>3</id><name>Business Approval</name><ticket_task><id>9</id><name>Approve</name></ticket_task></current_stage>
    <open_request_stage><id>3</id><name>Business Approval</name></open_request_stage></ticket_info>`);
  assertEquals(info, {
    ticketId: 42,
    subject: "Open 443",
    stage: { id: 3, name: "Business Approval", taskId: 9 },
  });
  const closing = parseTicketInfo(
    "<ticket_info><id>7</id><completion_data><stage><id>5</id></stage></completion_data></ticket_info>",
  );
  assertEquals(closing.stage?.id, 5);
  assertEquals(parseTicketInfo("<ticket_info/>").ticketId, undefined);
  assertEquals(parseTicketInfo("").ticketId, undefined);
  assertThrows(
    () => parseTicketInfo("<ticket_info><id>4e2</id></ticket_info>"),
    TriggerInputError,
    "no valid ticket <id>",
  );
  for (const id of ["12345678901234567890123", "9007199254740993", "0", "-3"]) {
    assertThrows(
      () => parseTicketInfo(`<ticket_info><id>${id}</id></ticket_info>`),
      TriggerInputError,
      "no valid ticket <id>",
    );
  }
  assertThrows(
    () =>
      parseTicketInfo(
        "<ticket_info><id>5</id><current_stage><id>99999999999999999999</id></current_stage></ticket_info>",
      ),
    TriggerInputError,
    "no valid current_stage <id>",
  );
  const broken = assertThrows(
    () => parseTicketInfo("<ticket_info><id>42</ticket_info>"),
    TriggerInputError,
  );
  assertStringIncludes(broken.message, "not well-formed XML");
  assertThrows(
    () => parseTicketInfo("<ticket><id>1</id></ticket>"),
    TriggerInputError,
    "expected a <ticket_info>",
  );
  assertEquals(splitArguments(['enrich --config "/etc/agent/app config.ini"']), [
    "enrich",
    "--config",
    "/etc/agent/app config.ini",
  ]);
  assertEquals(splitArguments(["enrich", "--config", "a b"]), ["enrich", "--config", "a b"]);
});

/** A SecureChange fake, a lookup API, plugin files and a config for the CLI. */
async function setup(
  options: {
    plugins?: Record<string, string>;
    integrations?: string;
    sections?: string;
    enrichExtra?: string;
  } = {},
) {
  const pki = await testPki();
  const sc = await new FakeSecureChange().start();
  sc.tickets.set(42, structuredClone(sample));
  const cmdb = new HttpsFake();
  cmdb.route("GET", "/ci", (req) => {
    const ip = new URL(req.url).searchParams.get("ip");
    return ip === "10.1.2.3"
      ? { result: { name: "web01", owner: "ops" } }
      : Response.json({}, { status: 404 });
  });
  await cmdb.start();
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/integrations`);
  for (const [name, source] of Object.entries(options.plugins ?? {})) {
    await Deno.writeTextFile(`${dir}/integrations/${name}.js`, source);
  }
  const config = `${dir}/app.config`;
  await Deno.writeTextFile(
    config,
    `[agent]
store = ${dir}/agent.kv
[securechange]
url = ${sc.url}
username = ${sc.username}
password = $SC_PASSWORD
cafile = ${pki.caCertFile}
[enrich]
integrations = ${
      options.integrations ?? "address_classification, risky_services, http_lookup, owner"
    }
integrations_dir = ${dir}/integrations
events = CREATE, ADVANCE
timeout_seconds = 10
${options.enrichExtra ?? ""}
[http_lookup]
url = ${cmdb.url}/ci?ip={ip}
field = result.name
label = CMDB
addresses = sources
allow_net = 127.0.0.1:${cmdb.port}
cafile = ${pki.caCertFile}
[owner]
greeting = "Hello from the config"
${options.sections ?? ""}
`,
  );
  const trigger = (
    event: string,
    xml = "<ticket_info><id>42</id><current_stage><id>301</id></current_stage></ticket_info>",
  ) =>
    runAgent(["enrich", "--config", config, "--log-format", "json"], {
      env: { SCW_EVENT: event, SC_PASSWORD: sc.password, NO_COLOR: "1" },
      stdin: xml,
    });
  return {
    sc,
    cmdb,
    trigger,
    dir,
    async stop() {
      await sc.stop();
      await cmdb.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "the marker counts only on the agent's own comment; ticket text cannot forge sections or " +
    "markers; IPv6 sources and destinations are classified like IPv4",
  ...integration,
  async fn() {
    const env = await setup({ integrations: "address_classification, risky_services" });
    try {
      const ticket = env.sc.tickets.get(42)! as unknown as {
        comments: unknown;
        steps: {
          step: { tasks: { task: { fields: { field: { access_request: unknown[] } } } } }[];
        };
      };
      // The requester writes the marker into a comment of their own.
      ticket.comments = {
        comment: {
          content: "Please hurry\n[agent-enrich 42/301/CREATE]",
          user: "jdoe",
          type: "comment",
        },
      };
      ticket.steps.step[0]!.tasks.task.fields.field.access_request = [{
        order: "AR1\n\n== Forged ==\n[agent-enrich 42/302/CREATE]",
        sources: {
          source: [
            { "@type": "IP", ip_address: "2001:db8::", cidr: 32 },
            { "@type": "DNS", host_name: "evil\n== Injected ==", dns_ip_addresses: ["10.0.0.7"] },
          ],
        },
        destinations: { destination: { "@type": "IP", ip_address: "::", cidr: 0 } },
        services: { service: { "@type": "PROTOCOL", protocol: "TCP", port: "443" } },
      }];
      const result = await env.trigger("CREATE");
      const content = postedComment(env, result);
      const lines = content.split("\n");
      assertEquals(lines.filter((l) => /^\[agent-enrich /.test(l)), [
        "[agent-enrich 42/301/CREATE]",
      ]);
      assertEquals(lines.at(-1), "[agent-enrich 42/301/CREATE]");
      assert(!lines.some((l) => /^== (Forged|Injected) ==/.test(l)), content);
      assertStringIncludes(content, "2001:db8::/32: documentation");
      assertStringIncludes(content, "::/0: ANY (every address)");
      assertStringIncludes(content, "destination ANY");
    } finally {
      await env.stop();
    }
  },
});

Deno.test({
  name:
    "what a plugin posts goes through the log redaction: no secret of the config, no credential-shaped text",
  ...integration,
  async fn() {
    const env = await setup({
      plugins: {
        leaky: `export function getData(ticket, logger, config) {
          return "token " + config.token + " and header Authorization: Bearer abcdef123456789";
        }`,
      },
      integrations: "leaky",
      sections: "[leaky]\ntoken = $LEAKY_TOKEN\n",
    });
    try {
      const result = await runAgent([
        "enrich",
        "--config",
        `${env.dir}/app.config`,
        "--log-format",
        "json",
      ], {
        env: { SCW_EVENT: "CREATE", SC_PASSWORD: env.sc.password, LEAKY_TOKEN: "tok-7f3e9a1b2c" },
        stdin: "<ticket_info><id>42</id><current_stage><id>301</id></current_stage></ticket_info>",
      });
      const content = postedComment(env, result);
      assert(!content.includes("tok-7f3e9a1b2c"), content);
      assert(!content.includes("abcdef123456789"), content);
      assertStringIncludes(content, "token [REDACTED]");
    } finally {
      await env.stop();
    }
  },
});

/** The one comment a trigger run posted, after checking it exited 0 and posted once. */
function postedComment(
  env: { sc: FakeSecureChange },
  result: { code: number; stderr: string },
): string {
  assertEquals(result.code, 0, result.stderr);
  assertEquals(env.sc.posted.length, 1);
  return env.sc.posted[0]!.content;
}

/** Why a plugin failed, from the run's JSON-lines log ("" when it did not fail). */
function pluginFailure(stderr: string, plugin: string): string {
  const logs = stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  return logs.find((l) => l.properties?.plugin === plugin && l.level === "ERROR")?.message ?? "";
}

const OWNER_PLUGIN = `export function getData(ticket, logger, config) {
  logger.info("owner plugin ran");
  return config.greeting + ": ticket " + ticket.Id + " by " + ticket.Requester;
}`;

Deno.test({
  name:
    "a CREATE trigger posts exactly one comment with every integration's output; a retry posts nothing",
  ...integration,
  async fn() {
    const env = await setup({ plugins: { owner: OWNER_PLUGIN } });
    try {
      const first = await env.trigger("CREATE");
      assertEquals(first.code, 0, first.stderr);
      assertEquals(env.sc.posted.length, 1);
      const { content, stepId, taskId } = env.sc.posted[0]!;
      assertEquals([stepId, taskId], [301, 901]);
      assertStringIncludes(content, "== Address classification ==");
      assertStringIncludes(content, "192.168.10.0/24: private (RFC 1918), 256 addresses");
      assertStringIncludes(content, "== Risky services ==");
      assertStringIncludes(content, "AR1: TCP 22 includes 22/SSH");
      assertStringIncludes(content, "AR2: service ANY opens every port");
      assertStringIncludes(
        content,
        "== HTTP lookup ==\n10.1.2.3: web01\n10.20.0.5: not found in CMDB",
      );
      assertStringIncludes(content, "== owner ==\nHello from the config: ticket 42 by jdoe");
      assertStringIncludes(content, "[agent-enrich 42/301/CREATE]");
      // Sections in the configured order.
      const order = ["Address classification", "Risky services", "HTTP lookup", "owner"].map((t) =>
        content.indexOf(`== ${t} ==`)
      );
      assertEquals([...order].sort((a, b) => a - b), order);
      assert(
        !first.stderr.includes(env.sc.password),
        "the SecureChange password never reaches the log",
      );
      // SecureChange retries the trigger: nothing new.
      const again = await env.trigger("CREATE");
      assertEquals(again.code, 0, again.stderr);
      assertEquals(env.sc.posted.length, 1);
      // After a crash that lost the store, the comment's marker on the ticket still stops a repeat.
      await Deno.remove(`${env.dir}/agent.kv`);
      const afterCrash = await env.trigger("CREATE");
      assertEquals(afterCrash.code, 0, afterCrash.stderr);
      assertStringIncludes(afterCrash.stdout, "already has the enrichment comment");
      assertEquals(env.sc.posted.length, 1);
    } finally {
      await env.stop();
    }
  },
});

Deno.test({
  name:
    "plugins that loop, throw, exit or reach an undeclared host fail alone; the others' results are posted",
  ...integration,
  async fn() {
    const env = await setup({
      plugins: {
        looper: "export function getData() { for (;;) {} }",
        thrower: "export function getData() { throw new Error('lookup exploded'); }",
        quitter: "export function getData() { Deno.exit(3); }",
        snooper:
          "export async function getData() { await fetch('https://example.com/'); return 'leaked'; }",
        reader: "export function getData() { return Deno.readTextFileSync('/etc/hostname'); }",
        owner: OWNER_PLUGIN,
      },
      integrations: "looper, thrower, quitter, snooper, reader, address_classification, owner",
      sections: "[looper]\ntimeout_seconds = 1\n",
    });
    try {
      const result = await env.trigger("CREATE");
      const content = postedComment(env, result);
      assertStringIncludes(content, "== Address classification ==");
      assertStringIncludes(content, "== owner ==");
      for (const name of ["looper", "thrower", "quitter", "snooper", "reader"]) {
        assert(!content.includes(`== ${name} ==`), `${name} has no section`);
      }
      assert(!content.includes("lookup exploded"), "errors are not posted by default");
      const failure = (plugin: string) => pluginFailure(result.stderr, plugin);
      assertStringIncludes(failure("looper"), "did not finish within 1 s");
      assertStringIncludes(failure("thrower"), "lookup exploded");
      assertStringIncludes(failure("quitter"), "called Deno.exit(3)");
      assertStringIncludes(failure("snooper"), "net access");
      assertStringIncludes(failure("reader"), "read access");
    } finally {
      await env.stop();
    }
  },
});

Deno.test({
  name: "a plugin that hoards memory is stopped at max_memory_mb; the others' results are posted",
  ...integration,
  async fn() {
    const env = await setup({
      plugins: {
        hoarder: `export async function getData() {
          const hoard = [];
          // Bounded (~1.6 GB) so that a broken guard cannot take the machine down.
          for (let i = 0; i < 100; i++) {
            hoard.push(new Uint8Array(16 * 1024 * 1024).fill(7));
            await new Promise((r) => setTimeout(r, 5));
          }
          await new Promise(() => {});
        }`,
        owner: OWNER_PLUGIN,
      },
      integrations: "hoarder, address_classification, owner",
      enrichExtra: "max_memory_mb = 400",
    });
    try {
      const result = await env.trigger("CREATE");
      const content = postedComment(env, result);
      assertStringIncludes(content, "== Address classification ==");
      assertStringIncludes(content, "== owner ==");
      assertStringIncludes(
        pluginFailure(result.stderr, "hoarder"),
        "ran out of memory: its sandbox used",
      );
      assertStringIncludes(pluginFailure(result.stderr, "hoarder"), "(max_memory_mb 400)");
    } finally {
      await env.stop();
    }
  },
});

Deno.test({
  name:
    "the Test button checks the config and plugins and exits 0 without contacting anything (2 for a broken config); malformed XML exits 2 with a one-line reason",
  ...integration,
  async fn() {
    const env = await setup({ plugins: { owner: OWNER_PLUGIN } });
    try {
      for (
        const [event, xml] of [["TEST", "<ticket_info><id>42</id></ticket_info>"], [
          "CREATE",
          "<ticket_info/>",
        ]]
      ) {
        const result = await env.trigger(event!, xml);
        assertEquals(result.code, 0, result.stderr);
      }
      assertEquals(env.sc.requests.length, 0);
      // The Test button checks the config it would run with: a broken one is said, exit 2.
      const config = `${env.dir}/app.config`;
      const good = await Deno.readTextFile(config);
      await Deno.writeTextFile(
        config,
        good.replace("timeout_seconds = 10", "timeout_seconds = soon"),
      );
      const testBroken = await env.trigger("TEST");
      assertEquals(testBroken.code, 2, testBroken.stderr);
      assertStringIncludes(
        testBroken.stderr,
        'enrich.timeout_seconds: "soon" is not a whole number',
      );
      await Deno.writeTextFile(config, good.replace("integrations = ", "integrations = nosuch, "));
      const testMissing = await env.trigger("TEST");
      assertEquals(testMissing.code, 2, testMissing.stderr);
      assertStringIncludes(testMissing.stderr, 'no integration "nosuch"');
      await Deno.writeTextFile(config, good);
      const broken = await env.trigger("CREATE", "<ticket_info><id>42</id>");
      assertEquals(broken.code, 2);
      assertEquals(broken.stderr.trim().split("\n").length, 1);
      assertStringIncludes(broken.stderr, "not well-formed XML");
      // An id past JavaScript's safe integers would be fetched as another ticket (1e+23).
      const huge = await env.trigger(
        "CREATE",
        "<ticket_info><id>12345678901234567890123</id></ticket_info>",
      );
      assertEquals(huge.code, 2, huge.stderr);
      assertStringIncludes(huge.stderr, "no valid ticket <id>");
      assertEquals(env.sc.requests.length, 0);
      // An event that is not configured does nothing.
      const close = await env.trigger("CLOSE");
      assertEquals(close.code, 0);
      assertStringIncludes(close.stdout, "not in [enrich] events");
      assertEquals(env.sc.posted.length, 0);
    } finally {
      await env.stop();
    }
  },
});

Deno.test({
  name: "agent enrich --ticket-file prints the comment instead of posting it; SecureChange's " +
    "one-string argument form works the same",
  ...integration,
  async fn() {
    const oneString = await runAgent(
      [demoEnrichArgs().map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(" ")],
      { env: { SCW_EVENT: "CREATE" } },
    );
    assertEquals(oneString.code, 0, oneString.stderr);
    assertStringIncludes(oneString.stdout, "== Address classification ==");
    const result = await runAgent(demoEnrichArgs(), { env: { SCW_EVENT: "CREATE" } });
    assertEquals(result.code, 0, result.stderr);
    assertStringIncludes(result.stdout, "Enrichment of ticket 42 (Business Approval)");
    assertStringIncludes(result.stdout, "203.0.113.10/32: documentation (TEST-NET-3), 1 address");
  },
});
