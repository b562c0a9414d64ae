import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import ical, { type VEvent } from "node-ical";
import { simpleParser } from "mailparser";
import { startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { FakeResilient } from "./support/fake_resilient.ts";
import { PlatformClient, taskAction } from "./support/stomp_client.ts";
import { startCore } from "./support/agent_core.ts";
import { type ReceivedMail, TestSmtpServer } from "./support/smtp_server.ts";
import { calendarProcessor } from "../mod/calendar/processor.ts";
import { buildInvite, eventTimes } from "../mod/calendar/invite.ts";
import { SmtpMailer } from "../mod/smtp/mailer.ts";
import type { TaskCalendarConfig } from "../mod/config/config.ts";
import type { InviteMail } from "../mod/smtp/types.ts";
import { calendarConfig } from "./support/calendar.ts";
import type { Processor, TaskDTO } from "../mod/action_module/types.ts";
import { runProcessor } from "../mod/action_module/run_processor.ts";
import { parseDelivery } from "../mod/action_module/message.ts";
import { ResilientMock } from "../mod/resilient/mock.ts";
import { Store } from "../mod/store/store.ts";

const ORG = 201;
/** An iCalendar date as epoch ms (node-ical gives Date subclasses). */
const time = (value: unknown) => new Date(value as string).getTime();
const integration = { sanitizeOps: false, sanitizeResources: false };
const HOUR = 3600_000;

interface ParsedMail {
  to: string;
  subject: string;
  headers: Map<string, unknown>;
  messageId: string | undefined;
  event: VEvent;
  method: string;
  text: string;
}

async function parseMail(mail: ReceivedMail): Promise<ParsedMail> {
  const parsed = await simpleParser(mail.raw);
  const ics = parsed.attachments.find((a) =>
    a.contentType.startsWith("text/calendar") || a.filename?.endsWith(".ics")
  );
  assert(ics, "the mail carries the invite");
  const calendar = ical.sync.parseICS(ics.content.toString("utf8"));
  const event = Object.values(calendar).find((c) => c?.type === "VEVENT") as VEvent;
  const method = String((calendar["vcalendar"] as unknown as { method: string }).method);
  return {
    to: mail.to.join(","),
    subject: parsed.subject ?? "",
    headers: parsed.headers as Map<string, unknown>,
    messageId: parsed.messageId,
    event,
    method,
    text: parsed.text ?? "",
  };
}

const broker = await startBroker();
const fake = await new FakeResilient({ orgId: ORG }).start();
fake.users.set(4, { id: 4, email: "ann@example.com", fname: "Ann", lname: "Example" });
fake.users.set(5, { id: 5, email: "bob@example.com", fname: "Bob", lname: "Builder" });
fake.users.set(6, { id: 6, email: null, fname: "No", lname: "Mail" });
fake.groups.set(9, { id: 9, name: "SOC Tier 2" });
const platform = await PlatformClient.connect(broker);
const pki = await testPki();
let queueSeq = 0;

async function withCalendar(
  options: { smtp?: TestSmtpServer; mailer?: SmtpMailer; config?: Partial<TaskCalendarConfig> },
  fn: (queue: string, smtp: TestSmtpServer) => Promise<void>,
): Promise<void> {
  const queue = `cal${++queueSeq}`;
  const smtp = options.smtp ?? await new TestSmtpServer().start();
  const mailer = options.mailer ??
    new SmtpMailer({
      host: "127.0.0.1",
      port: smtp.port,
      secure: false,
      requireStartTls: false,
      retryDelaysMs: [50],
    });
  const processor: Processor = calendarProcessor(calendarConfig({ queue, ...options.config }), {
    mailer,
    platformHost: "soar.example.com",
  });
  platform.listenForReplies(ORG, queue);
  const core = await startCore(broker, fake, [processor]);
  try {
    await fn(queue, smtp);
  } finally {
    await core.stop();
    mailer.close();
    if (!options.smtp) await smtp.stop();
  }
}

async function replyFor(id: string) {
  await platform.waitFor((r) => r.some((x) => x.correlationId === id));
  return platform.replies.find((r) => r.correlationId === id)!.json!;
}

Deno.test({
  name: "an owner-changed task message mails the owner one REQUEST that calendars accept",
  ...integration,
  async fn() {
    await withCalendar({}, async (queue, smtp) => {
      const due = Date.UTC(2026, 11, 1, 16, 0);
      const init = Date.UTC(2026, 10, 20, 9, 0);
      const id = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 80, inc_id: 2095, owner_id: 4, due_date: due }, {
          task: {
            ...taskAction().task,
            id: 80,
            inc_id: 2095,
            owner_id: 4,
            due_date: due,
            init_date: init,
          },
        }),
      );
      const reply = await replyFor(id);
      assertEquals(reply.message_type, 0);
      assertEquals(reply.complete, true);
      assertStringIncludes(reply.message, "SEQUENCE 0");
      const [mail] = await smtp.waitForMessages(1);
      const parsed = await parseMail(mail!);
      assertEquals(parsed.to, "ann@example.com");
      assertEquals(parsed.method, "REQUEST");
      assertEquals(parsed.event.uid, "task-2095-80@soar.example.com");
      assertEquals(Number(parsed.event.sequence), 0);
      assertEquals(
        String((parsed.event.organizer as unknown as { val: string }).val).toLowerCase(),
        "mailto:soar@example.com",
      );
      const attendee = parsed.event.attendee as unknown as {
        val: string;
        params: Record<string, unknown>;
      };
      assertEquals(attendee.val.toLowerCase(), "mailto:ann@example.com");
      assertEquals(attendee.params["RSVP"], true);
      assertEquals(time(parsed.event.start), init);
      assertEquals(time(parsed.event.end), due);
      assertEquals(
        (parsed.event.url as unknown as { val: string }).val,
        "https://soar.example.com/#incidents/2095?tab=tasks&task_id=80",
      );
      assertEquals(parsed.messageId, "<task-2095-80.seq0.request@example.com>");
      assertStringIncludes(parsed.text, "Check the mail headers");
      // The REST lookup carried the message's context token.
      const lookup = fake.seen(/GET \/rest\/orgs\/201\/users\/4/).at(-1)!;
      assertEquals(lookup.headers.get("x-co3contexttoken"), `ctx-${id}`);
    });
  },
});

Deno.test({
  name:
    "a due date change gives SEQUENCE 1 with the same UID; an owner change sends REQUEST and CANCEL",
  ...integration,
  async fn() {
    await withCalendar({}, async (queue, smtp) => {
      const first = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 90, owner_id: 4, due_date: Date.UTC(2026, 11, 2) }),
      );
      await replyFor(first);
      const second = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 90, owner_id: 4, due_date: Date.UTC(2026, 11, 3) }),
      );
      await replyFor(second);
      const third = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 90, owner_id: 5, due_date: Date.UTC(2026, 11, 3) }),
      );
      const reply = await replyFor(third);
      assertStringIncludes(reply.message, "cancelled the invite of ann@example.com");
      const mails = await Promise.all((await smtp.waitForMessages(4)).map(parseMail));
      const summary = mails.map((m) => `${m.method} ${m.to} ${m.event.sequence} ${m.event.uid}`);
      assertEquals(summary.sort(), [
        "CANCEL ann@example.com 2 task-2095-90@soar.example.com",
        "REQUEST ann@example.com 0 task-2095-90@soar.example.com",
        "REQUEST ann@example.com 1 task-2095-90@soar.example.com",
        "REQUEST bob@example.com 2 task-2095-90@soar.example.com",
      ]);
      const second_ = mails.find((m) => Number(m.event.sequence) === 1)!;
      assertEquals(time(second_.event.end), Date.UTC(2026, 11, 3));
    });
  },
});

Deno.test({
  name: "owner and due date changed together within the debounce window give one invite",
  ...integration,
  async fn() {
    await withCalendar({ config: { debounceSeconds: 0.3 } }, async (queue, smtp) => {
      const owner = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 91, owner_id: 4, due_date: null }),
      );
      const due = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 91, owner_id: 4, due_date: Date.UTC(2026, 11, 5) }),
      );
      const [absorbed, final] = [await replyFor(owner), await replyFor(due)];
      assertStringIncludes(absorbed.message, "Superseded");
      assertStringIncludes(final.message, "SEQUENCE 0");
      await smtp.waitForMessages(1);
      await new Promise((r) => setTimeout(r, 500)); // room for a second invite to show up
      assertEquals(smtp.messages.length, 1);
      const mail = await parseMail(smtp.messages[0]!);
      assertEquals(time(mail.event.end), Date.UTC(2026, 11, 5));
    });
  },
});

Deno.test({
  name: "200 owner changes on 200 tasks with debounce_seconds = 5 are all answered within 7 s " +
    "(debounced messages hold no prefetch slot), one invite per task; per-task coalescing holds",
  ...integration,
  async fn() {
    await withCalendar({ config: { debounceSeconds: 5 } }, async (queue, smtp) => {
      const started = Date.now();
      const ids = Array.from(
        { length: 200 },
        (_, i) => platform.sendAction(ORG, queue, taskAction({ id: 30_000 + i, owner_id: 4 })),
      );
      // One task changed twice within its window: one invite, the first change superseded.
      const first = platform.sendAction(ORG, queue, taskAction({ id: 39_999, owner_id: 4 }));
      const second = platform.sendAction(
        ORG,
        queue,
        taskAction({ id: 39_999, owner_id: 5, due_date: Date.UTC(2026, 11, 9) }),
      );
      const all = [...ids, first, second];
      await platform.waitFor(
        (r) => all.every((id) => r.some((x) => x.correlationId === id)),
        20_000,
      );
      const elapsed = Date.now() - started;
      assert(elapsed < 7_000, `all answered after ${elapsed} ms`);
      assertStringIncludes((await replyFor(first)).message, "Superseded");
      await smtp.waitForMessages(201);
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(smtp.messages.length, 201, "one invite per task");
      const toBob = (await Promise.all(smtp.messages.map(parseMail))).filter((m) =>
        m.to.includes("bob@example.com")
      );
      assertEquals(toBob.length, 1, "the coalesced task's invite went to its final owner");
    });
  },
});

Deno.test({
  name:
    "closed or deleted tasks cancel the invite; groups, missing owners and unknown users get clear replies",
  ...integration,
  async fn(t) {
    await withCalendar({}, async (queue, smtp) => {
      await t.step("closed task: CANCEL to the current owner", async () => {
        await replyFor(platform.sendAction(ORG, queue, taskAction({ id: 92, owner_id: 5 })));
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 92, owner_id: 5, status: "C" })),
        );
        assertStringIncludes(
          reply.message,
          "Task 92 is closed; cancelled the invite of bob@example.com",
        );
        const mails = await Promise.all((await smtp.waitForMessages(2)).map(parseMail));
        assertEquals(mails.map((m) => m.method), ["REQUEST", "CANCEL"]);
        assertEquals(String(mails[1]!.event.status), "CANCELLED");
      });
      await t.step("deleted task", async () => {
        await replyFor(platform.sendAction(ORG, queue, taskAction({ id: 93, owner_id: 4 })));
        const reply = await replyFor(
          platform.sendAction(ORG, queue, {
            ...taskAction({ id: 93, owner_id: 4 }),
            operation_type: "deleted",
          }),
        );
        assertStringIncludes(
          reply.message,
          "Task 93 is deleted; cancelled the invite of ann@example.com",
        );
      });
      const before = smtp.messages.length;
      await t.step("no owner", async () => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 94, owner_id: null })),
        );
        assertEquals(reply, {
          message_type: 0,
          message: "Task has no owner; no invite sent",
          complete: true,
        });
      });
      await t.step("the owner is a group", async () => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 95, owner_id: 9 })),
        );
        assertEquals(reply.message_type, 0);
        assertStringIncludes(reply.message, 'group "SOC Tier 2"');
      });
      await t.step("unknown owner id", async () => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 96, owner_id: 777 })),
        );
        assertEquals(reply.message_type, 1);
        assertStringIncludes(reply.message, "Task owner 777 is not a user or group");
      });
      await t.step("owner without an email address", async () => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 97, owner_id: 6 })),
        );
        assertEquals(reply.message_type, 1);
        assertStringIncludes(reply.message, "Task owner 6 (No Mail) has no email address");
      });
      assertEquals(smtp.messages.length, before);
    });
  },
});

Deno.test({
  name: "STARTTLS with the test CA works; an untrusted SMTP certificate gives a clear error reply",
  ...integration,
  async fn() {
    const good = await new TestSmtpServer({
      tls: "server",
      auth: { user: "cal", pass: "smtp-secret" },
    }).start();
    const bad = await new TestSmtpServer({ tls: "untrusted" }).start();
    try {
      // By name: TLS verifies the certificate's DNS name (SNI cannot carry an IP address).
      const tlsMailer = new SmtpMailer({
        host: "localhost",
        port: good.port,
        secure: false,
        requireStartTls: true,
        auth: { user: "cal", pass: "smtp-secret" },
        ca: pki.caCert,
      });
      await withCalendar({ smtp: good, mailer: tlsMailer }, async (queue) => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 100, owner_id: 4 })),
        );
        assertEquals(reply.message_type, 0, reply.message);
        assertEquals((await good.waitForMessages(1)).length, 1);
      });
      const untrustedMailer = new SmtpMailer({
        host: "localhost",
        port: bad.port,
        secure: false,
        requireStartTls: true,
        ca: pki.caCert,
      });
      await withCalendar({ smtp: bad, mailer: untrustedMailer }, async (queue) => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 101, owner_id: 4 })),
        );
        assertEquals(reply.message_type, 1);
        assertMatch(reply.message, /TLS verification of SMTP server localhost:\d+ failed/);
        assertEquals(bad.messages.length, 0);
      });
    } finally {
      await good.stop();
      await bad.stop();
    }
  },
});

Deno.test({
  name:
    "SMTP down for 10 s then back: the invite is delivered once; SMTP 550 gives the server's text",
  ...integration,
  async fn(t) {
    await t.step("down, then back", async () => {
      const smtp = new TestSmtpServer();
      const port = (await smtp.start()).port;
      await smtp.stop();
      // A virtual clock: each backoff wait advances it; at 10 s the server comes back.
      let virtualMs = 0;
      const waits: number[] = [];
      const mailer = new SmtpMailer({
        host: "127.0.0.1",
        port,
        secure: false,
        requireStartTls: false,
        retryDelaysMs: [1_000, 2_000, 4_000, 8_000],
        sleep: async (ms) => {
          waits.push(ms);
          virtualMs += ms;
          if (virtualMs >= 10_000 && smtp.port && waits.length && !restarted) {
            restarted = true;
            await smtp.start(port);
          }
        },
      });
      let restarted = false;
      await withCalendar({ smtp, mailer }, async (queue) => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 110, owner_id: 4 })),
        );
        assertEquals(reply.message_type, 0, reply.message);
        await new Promise((r) => setTimeout(r, 300));
        assertEquals(smtp.messages.length, 1);
        assert(virtualMs >= 10_000, `waited ${virtualMs} ms of virtual time`);
        assertEquals(waits.slice(0, 3), [1_000, 2_000, 4_000]);
      });
      await smtp.stop();
    });
    await t.step("550", async () => {
      await withCalendar({}, async (queue, smtp) => {
        smtp.rejectRecipients = { code: 550, message: "5.1.1 mailbox ann@example.com unavailable" };
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 111, owner_id: 4 })),
        );
        assertEquals(reply.message_type, 1);
        assertStringIncludes(reply.message, "550");
        assertStringIncludes(reply.message, "mailbox ann@example.com unavailable");
      });
    });
  },
});

Deno.test({
  name: "use_ssl: implicit TLS (SMTPS) with the test CA delivers the invite",
  ...integration,
  async fn() {
    const smtps = await new TestSmtpServer({ tls: "server", implicitTls: true }).start();
    try {
      const mailer = new SmtpMailer({
        host: "localhost",
        port: smtps.port,
        secure: true,
        requireStartTls: false,
        ca: pki.caCert,
      });
      await withCalendar({ smtp: smtps, mailer }, async (queue) => {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 105, owner_id: 4 })),
        );
        assertEquals(reply.message_type, 0, reply.message);
        const [mail] = await smtps.waitForMessages(1);
        assertEquals((await parseMail(mail!)).method, "REQUEST");
      });
    } finally {
      await smtps.stop();
    }
  },
});

Deno.test({
  name: "a task name with CR/LF and emoji cannot inject mail headers or break the calendar file",
  ...integration,
  async fn() {
    await withCalendar({}, async (queue, smtp) => {
      const evil = "Rotate keys\r\nBCC: x@evil.example\r\nX-Injected: yes 🎉;,\\";
      const action = taskAction({ id: 120, owner_id: 4, name: evil });
      const reply = await replyFor(platform.sendAction(ORG, queue, action));
      assertEquals(reply.message_type, 0, reply.message);
      const [mail] = await smtp.waitForMessages(1);
      assertEquals(mail!.to, ["ann@example.com"]); // no extra recipient
      const parsed = await parseMail(mail!);
      assert(!parsed.headers.has("bcc"), "no Bcc header");
      assert(!parsed.headers.has("x-injected"), "no injected header");
      assertStringIncludes(
        parsed.subject,
        "Rotate keys BCC: x@evil.example X-Injected: yes 🎉;,\\",
      );
      assertEquals(
        parsed.event.summary,
        "Task: Rotate keys BCC: x@evil.example X-Injected: yes 🎉;,\\ (Incident 2095: Phishing campaign)",
      );
    });
  },
});

Deno.test({
  name: "hostile owner addresses from SOAR (CR/LF Bcc, a display name, a list) give an error " +
    "reply naming the user and no mail; NUL bytes and a 900 KB task name never reach the mail",
  ...integration,
  async fn() {
    const hostile: [number, string][] = [
      [31, "ann@example.com\r\nBcc: attacker@evil.example"],
      [32, '"ann@example.com" <attacker@evil.example>'],
      [33, "a@x.example, evil@y.example"],
      [34, "a@x.example;evil@y.example"],
      [35, "ann@example.com\u0000"],
    ];
    for (const [id, email] of hostile) {
      fake.users.set(id, { id, email, fname: "Mallory", lname: `Nr ${id}` });
    }
    fake.users.set(36, {
      id: 36,
      email: "carol@example.com",
      fname: "Car\u0000ol",
      lname: "\r\nX",
    });
    await withCalendar({}, async (queue, smtp) => {
      for (const [id, email] of hostile) {
        const reply = await replyFor(
          platform.sendAction(ORG, queue, taskAction({ id: 200 + id, owner_id: id })),
        );
        assertEquals(reply.message_type, 1, `${JSON.stringify(email)}: ${reply.message}`);
        assertStringIncludes(reply.message, `Task owner ${id} (Mallory Nr ${id})`);
        assertStringIncludes(reply.message, "unusable email address");
      }
      const huge = "Patch\u0000 " + "x".repeat(900 * 1024);
      const reply = await replyFor(
        platform.sendAction(ORG, queue, {
          ...taskAction({ id: 300, owner_id: 36, name: huge }),
        }),
      );
      assertEquals(reply.message_type, 0, reply.message);
      const mails = await smtp.waitForMessages(1);
      assertEquals(mails.length, 1, "only the valid owner got mail");
      assertEquals(mails[0]!.to, ["carol@example.com"]);
      assert(mails[0]!.raw.length < 100_000, `the mail is ${mails[0]!.raw.length} bytes`);
      assert(!mails[0]!.raw.includes("\u0000"), "no NUL byte in the mail");
      const parsed = await parseMail(mails[0]!);
      assert(parsed.subject.length < 300, `subject of ${parsed.subject.length} characters`);
      assertStringIncludes(parsed.subject, "Task: Patch xxx");
      assert(!String(parsed.event.summary).includes("\u0000"), "no NUL in SUMMARY");
      assert(String(parsed.event.summary).length < 300);
      const attendee = JSON.stringify((parsed.event as unknown as { attendee: unknown }).attendee);
      assertStringIncludes(attendee.toLowerCase(), "mailto:carol@example.com");
      assertStringIncludes(attendee, `"CN":"Carol X"`);
      assert(!attendee.includes("\\r") && !attendee.includes("\\u0000"), attendee);
    });
  },
});

/**
 * The calendar processor on a memory store and a mock platform, its mails kept: `run` handles
 * one message as the listener runs it, `restart` is the agent started again (nothing cached),
 * and `failOn` makes that method's mails fail (as if the agent died sending them).
 */
async function calendarRuns(fixtures: Record<string, unknown>) {
  const sent: InviteMail[] = [];
  const mailer = {
    failOn: undefined as InviteMail["method"] | undefined,
    send(mail: InviteMail) {
      if (mail.method === this.failOn) return Promise.reject(new Error("the agent died here"));
      sent.push(mail);
      return Promise.resolve({ kind: "smtp" as const, detail: "250 ok" });
    },
    close() {},
  };
  const store = await Store.open(":memory:");
  const rest = new ResilientMock({ fixtures });
  const start = () =>
    calendarProcessor(calendarConfig(), { mailer, platformHost: "soar.example.com" });
  let processor = start();
  return {
    sent,
    mailer,
    store,
    rest,
    restart: () => void (processor = start()),
    async run(action: unknown, headers: Record<string, string>) {
      const parsed = parseDelivery(
        { destination: "/queue/actions.201.taskcalendar", ...headers },
        new TextEncoder().encode(JSON.stringify(action)),
      );
      assert(parsed.ok);
      return await runProcessor(processor, parsed.message, {
        rest,
        store,
        signal: new AbortController().signal,
      });
    },
  };
}

Deno.test("a redelivered message does not send a second mail, and the SEQUENCE does not jump", async () => {
  const calendar = await calendarRuns({ "GET /users/4": { id: 4, email: "ann@example.com" } });
  const headers = { "message-id": "ID:redelivered-1", "correlation-id": "invid:1" };
  try {
    for (let i = 0; i < 2; i++) {
      // The same message handled twice, as when the broker hands it out again although its
      // outcome was stored (the listener would answer it from its ledger; the processor must
      // not need that).
      const outcome = await calendar.run(taskAction({ id: 130, owner_id: 4 }), headers);
      assertStringIncludes(outcome.reply.message, "SEQUENCE 0");
      // What the listener stores with its ledger record: the task's state and the mail's record.
      await calendar.store.commit({ set: outcome.writes ?? [] });
    }
    assertEquals(calendar.sent.length, 1);
  } finally {
    calendar.store.close();
  }
});

Deno.test("a new owner, and a crash between the CANCEL to the old one and the invite to the new: the redelivery sends the invite only, with the planned SEQUENCE", async () => {
  const calendar = await calendarRuns({
    "GET /users/5": { id: 5, email: "bob@example.com", fname: "Bob" },
  });
  const action = taskAction({ id: 131, owner_id: 5 });
  const ann = { id: 4, email: "ann@example.com", name: "Ann" };
  await calendar.store.set(["calendar", "task", action.task.inc_id, 131], {
    sequence: 2,
    owner: ann,
  });
  const headers = { "message-id": "ID:moved-1", "correlation-id": "invid:1" };
  const mails = () => calendar.sent.map((m) => `${m.method} ${m.to}`);
  try {
    calendar.mailer.failOn = "REQUEST";
    const failed = await calendar.run(action, headers);
    assertEquals(failed.reply.message_type, 1);
    assertEquals(mails(), ["CANCEL ann@example.com"]);
    // The agent starts again, and Bob's address has changed meanwhile: what was planned (and
    // half done) stands.
    calendar.restart();
    calendar.rest.on("GET", "/users/5", { id: 5, email: "robert@example.com" });
    calendar.mailer.failOn = undefined;
    const again = await calendar.run(action, headers);
    assertStringIncludes(again.reply.message, "SEQUENCE 3) to bob@example.com");
    assertStringIncludes(again.reply.message, "cancelled the invite of ann@example.com");
    assertEquals(mails(), ["CANCEL ann@example.com", "REQUEST bob@example.com"]);
    assertMatch(calendar.sent[1]!.messageId, /\.seq3\.request@/);
  } finally {
    calendar.store.close();
  }
});

Deno.test("task instructions: each invite carries its own task's, also when instructions repeat (they are remembered) and after more distinct ones than are remembered", async () => {
  const calendar = await calendarRuns({ "GET /users/4": { id: 4, email: "ann@example.com" } });
  const steps = [1, 2, 1, ...Array.from({ length: 40 }, (_, i) => 100 + i), 1, 2];
  try {
    for (const [n, step] of steps.entries()) {
      const action = taskAction({ id: 500 + n });
      const instructions = `<p>Step <b>${step}</b>: check &amp; report</p>`;
      await calendar.run(
        { ...action, task: { ...action.task, instr_text: instructions } },
        { "message-id": `ID:instr-${n}` },
      );
    }
    assertEquals(calendar.sent.length, steps.length);
    calendar.sent.forEach(({ text }, i) => {
      assertStringIncludes(text, `Step ${steps[i]}: check & report`);
      assert(!text.includes("<p>"), text);
    });
  } finally {
    calendar.store.close();
  }
});

Deno.test("invite times: due date, overdue, no due date, all-day dates in the configured time zone", async (t) => {
  const now = new Date(Date.UTC(2026, 10, 23, 23, 30)); // 23 Nov 23:30 UTC = 24 Nov in Berlin
  const task = (due: number | null, init?: number): TaskDTO => ({
    id: 1,
    inc_id: 2,
    name: "t",
    due_date: due,
    init_date: init ?? null,
  });
  const invite = (spec: TaskDTO, allDay: boolean) =>
    buildInvite({
      method: "REQUEST",
      uid: "u@h",
      sequence: 0,
      task: spec,
      incidentName: undefined,
      organizer: { email: "o@example.com" },
      attendee: { email: "a@example.com" },
      url: "https://h/",
      description: "",
      timezone: "Europe/Berlin",
      allDay,
      now,
    });
  await t.step("from the task's start to the due date", () => {
    const times = eventTimes({
      task: task(Date.UTC(2026, 11, 1), Date.UTC(2026, 10, 1)),
      now,
      timezone: "UTC",
      allDay: false,
    });
    assertEquals([times.start.toISOString(), times.end.toISOString(), times.allDay], [
      "2026-11-01T00:00:00.000Z",
      "2026-12-01T00:00:00.000Z",
      false,
    ]);
  });
  await t.step("overdue: the hour before it was due", () => {
    const due = Date.UTC(2026, 10, 1, 12);
    const times = eventTimes({ task: task(due), now, timezone: "UTC", allDay: false });
    assertEquals(times.end.getTime() - times.start.getTime(), HOUR);
  });
  await t.step("no due date: a single all-day event on today's date in the time zone", () => {
    const ics = invite(task(null), false);
    assertStringIncludes(ics, "DTSTART;VALUE=DATE:20261124");
    assertStringIncludes(ics, "DTEND;VALUE=DATE:20261125");
  });
  await t.step("all_day with a due date", () => {
    const ics = invite(task(Date.UTC(2026, 11, 1, 23, 30)), true);
    assertStringIncludes(ics, "DTSTART;VALUE=DATE:20261124");
    assertStringIncludes(ics, "DTEND;VALUE=DATE:20261203"); // due 2 Dec 00:30 in Berlin; DTEND is exclusive
  });
});

// After the last test of this file (a hook, not a test: it asserts nothing): stop the calendar test's broker and fakes.
Deno.test.afterAll(async () => {
  await platform.close();
  await fake.stop();
  await broker.dispose();
});
