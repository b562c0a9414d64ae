/**
 * The invite's bytes (mod/smtp/compose.ts) against nodemailer's own stream build of the same
 * message: identical apart from the random boundary and the Date, for plain and hostile
 * input (non-ASCII everywhere, CR/LF in the subject, '=' and trailing spaces, long lines,
 * CANCEL); and what a mail reader makes of it.
 */
// @ts-types="@types/nodemailer"
import nodemailer from "nodemailer";
import { simpleParser } from "mailparser";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./support/assert.ts";
import { composeInvite, inviteMessage } from "../mod/smtp/compose.ts";
import type { InviteMail } from "../mod/smtp/types.ts";
import { requireAddress } from "../mod/smtp/address.ts";
import { FileMailer } from "../mod/smtp/mailer.ts";
import { tempDir } from "./support/temp.ts";

const ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n" +
  "UID:task-2095-80@soar.example.com\r\nSUMMARY:Task: Investigate\r\nEND:VEVENT\r\n" +
  "END:VCALENDAR\r\n";

const PLAIN: InviteMail = {
  from: "soar-calendar@example.com",
  to: requireAddress("ann@example.com", "the test recipient"),
  subject: "Task: Investigate (Incident 2095: Phishing campaign)",
  text: "Ann Example, you own this task in IBM SOAR.\n\nTask: Investigate\nIncident 2095",
  ics: ICS,
  method: "REQUEST",
  messageId: "<task-2095-80.seq0.request@example.com>",
  headers: { "X-Agent-Origin": "agent-calendar" },
};

const HOSTILE: InviteMail[] = [
  {
    ...PLAIN,
    subject: "Task: Prüfe die Firewall — naïve ✓ 🔥 (Incident 2095: Phishing)",
    text: "Änn Exämple, you own this task.\n\nTask: Prüfe — ✓ 🔥\nDue: Freitag, 1. Januar 2027",
    ics: ICS.replace("Investigate", "Prüfe die Firewall — naïve ✓ 🔥"),
  },
  {
    ...PLAIN,
    subject: "Task: a\r\nBcc: victim@example.com\r\n\r\nbody (Incident 1)",
    text: "line with = signs == and trailing spaces   \nand a tab\t\n" + "x".repeat(300),
    ics: ICS.replace("Investigate", "=".repeat(90) + " " + "y".repeat(200)),
  },
  { ...PLAIN, method: "CANCEL", subject: "Cancelled: Task: Investigate (Incident 2095)" },
  { ...PLAIN, from: "SOAR Calendar <soar-calendar@example.com>", text: "" + "é".repeat(500) },
];

async function byNodemailer(mail: InviteMail): Promise<string> {
  const transport = nodemailer.createTransport({
    streamTransport: true,
    buffer: true,
    newline: "windows",
  });
  const info = await transport.sendMail(inviteMessage(mail));
  return String(info.message);
}

/** The random parts: the boundary and the Date header. */
function stable(message: string): string {
  return message.replace(/--_NmP-[0-9a-f]+-Part_/g, "--BOUNDARY-").replace(/^Date: .*$/m, "Date:");
}

Deno.test("an invite's bytes are nodemailer's own build of it, for plain and hostile input", async () => {
  for (const mail of [PLAIN, ...HOSTILE]) {
    const ours = new TextDecoder().decode(composeInvite(mail));
    assertEquals(stable(ours), stable(await byNodemailer(mail)), mail.subject);
    assert(!/[^\r]\n/.test(ours), "every line ends in CRLF");
    assert(ours.split("\r\n").every((line) => line.length <= 998), "no line over 998 octets");
  }
});

Deno.test("a mail reader finds the subject, one recipient, the text, the calendar part and the .ics", async () => {
  const mail = HOSTILE[0]!;
  const parsed = await simpleParser(new TextDecoder().decode(composeInvite(mail)));
  assertEquals(parsed.subject, mail.subject);
  assertEquals(parsed.messageId, mail.messageId);
  assertEquals(parsed.text?.trim(), mail.text);
  const to = Array.isArray(parsed.to) ? parsed.to : [parsed.to];
  assertEquals(to.flatMap((t) => t?.value.map((v) => v.address)), ["ann@example.com"]);
  assertEquals(parsed.headers.get("x-agent-origin"), "agent-calendar");
  const ics = parsed.attachments.find((a) => a.filename === "invite.ics");
  assertEquals(ics?.content.toString("utf-8"), mail.ics);
  const calendar = parsed.attachments.find((a) => a.contentType === "text/calendar");
  assertStringIncludes(
    calendar?.content.toString("utf-8") ?? "",
    "Prüfe die Firewall — naïve ✓ 🔥",
  );

  // CR/LF in the subject adds no header and no recipient.
  const injected = await simpleParser(new TextDecoder().decode(composeInvite(HOSTILE[1]!)));
  assertEquals(injected.headers.has("bcc"), false);
  assertEquals(injected.bcc, undefined);
  assertEquals(injected.subject, "Task: a Bcc: victim@example.com body (Incident 1)");
});

Deno.test("header names are spelled as nodemailer spells them, the first time and once remembered, past the names kept and for hostile names", async () => {
  // @ts-types="@types/nodemailer/lib/mime-node/index.d.ts"
  const { default: MimeNode } = await import("nodemailer/lib/mime-node");
  const spelled = (key: string) =>
    (new MimeNode() as unknown as { _normalizeHeaderKey(key: string): string })
      ._normalizeHeaderKey(key);
  const expected: [string, string][] = [
    ["message-id", "Message-ID"],
    ["mime-version", "MIME-Version"],
    ["content-features", "Content-features"],
    ["x-smtpapi", "X-SMTPAPI"],
    ["dkim-signature", "DKIM-Signature"],
    ["From: ceo@example.com (", "Fromceo@example.com("],
    ["x-agent\r\n-origin", "X-Agent-Origin"],
  ];
  // More names than are kept, so that some are spelled each time.
  const many = Array.from({ length: 400 }, (_, i) => [`x-name-${i}`, `X-Name-${i}`]);
  for (let pass = 0; pass < 2; pass++) {
    for (const [key, name] of [...expected, ...many]) assertEquals(spelled(key!), name, key);
  }
});

Deno.test("the .eml outbox makes its folder when it is missing, writes each invite whole, and a write that fails rejects (it does not throw at the caller)", async () => {
  const dir = await tempDir();
  const mailer = new FileMailer(`${dir}/outbox`);
  const sent = await Promise.all(
    [PLAIN, ...HOSTILE].map((mail, i) =>
      mailer.send({ ...mail, messageId: `<task-${i}.seq0.request@example.com>` })
    ),
  );
  assertEquals(sent.length, 1 + HOSTILE.length);
  for (const { kind, detail } of sent) {
    assertEquals(kind, "file");
    const text = await Deno.readTextFile(detail);
    assertStringIncludes(text, "END:VCALENDAR");
  }
  await Deno.writeTextFile(`${dir}/not-a-folder`, "");
  const broken = new FileMailer(`${dir}/not-a-folder`);
  const pending = broken.send(PLAIN); // a rejection, not an exception here
  await assertRejects(() => pending);
});
