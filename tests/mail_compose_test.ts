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
import { composeInvite, hasInviteShape, inviteMessage } from "../mod/smtp/compose.ts";
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
  // Lines of 76 characters are 7bit, one of 77 is not (for the text and the calendar part).
  { ...PLAIN, text: "a".repeat(76) + "\n" + "b".repeat(76), ics: ICS + "c".repeat(76) },
  { ...PLAIN, text: "a".repeat(76) + "\r\n" + "b".repeat(77), ics: ICS + "c".repeat(77) },
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

/** A small seeded generator (mulberry32), so that a failing mail can be made again. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pieces that steer nodemailer's choices: encodings, folding, quoting, line ends. */
const PIECES = [
  "Task",
  "Investigate",
  "the",
  "phishing",
  "mails",
  "(Incident 2095)",
  " ",
  " ",
  "  ",
  "\t",
  "=",
  "==",
  "=?utf-8?Q?x?=",
  '"',
  "\\",
  ";",
  ":",
  "<",
  ">",
  "@",
  ",",
  "'",
  "-",
  "Prüfe",
  "naïve",
  "—",
  "✓",
  "🔥",
  "调查网络钓鱼邮件",
  "Проверить",
  "\r\n",
  "\n",
  "\r",
  "\u0001",
  "\u007f",
  "\u2028",
  "é",
  "y".repeat(76),
  "x".repeat(80),
  "word ".repeat(20),
  "https://soar.example.com/#incidents/2095",
];

function pieces(next: () => number, count: number): string {
  let text = "";
  for (let i = 0; i < count; i++) text += PIECES[Math.floor(next() * PIECES.length)];
  return text;
}

function generated(seed: number): InviteMail {
  const next = random(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)]!;
  const mail: InviteMail = {
    from: pick([
      "soar-calendar@example.com",
      "SOAR Calendar <soar-calendar@example.com>",
      "Kalender Prüfung <kalender@example.com>",
      '"IBM SOAR, Calendar" <soar@example.com>',
    ]),
    to: requireAddress(
      pick(["ann@example.com", "o'brien@example.com", "jörg@bücher.example", "a.b+c@x.example"]),
      "a generated recipient",
    ),
    subject: pieces(next, Math.floor(next() * 30)),
    text: pieces(next, 1 + Math.floor(next() * 60)),
    ics: pieces(next, 1 + Math.floor(next() * 80)).replace(/\r?\n/g, "\r\n"),
    method: pick(["REQUEST", "CANCEL"] as const),
    messageId: pick([
      "<task-2095-80.seq0.request@example.com>",
      `<task-${seed}-${"9".repeat(40)}.seq12.cancel@a-rather-long-domain-name.example.com>`,
    ]),
    headers: pick([
      {},
      { "X-Agent-Origin": "agent-calendar" },
      { "x-agent-origin": pieces(next, 5), "X-Second": "two" },
      { "x-agent\r\n-origin": "agent-calendar", "x-SMTPAPI": pieces(next, 3) },
    ]),
  };
  return mail;
}

Deno.test("generated invites (all of nodemailer's encodings, folds and quotings) are nodemailer's own build of them, and the mails of another shape too", async () => {
  let shaped = 0;
  const seen = new Map<string, number>();
  const count = (what: string, found: boolean) => {
    if (found) seen.set(what, (seen.get(what) ?? 0) + 1);
  };
  for (let seed = 1; seed <= 400; seed++) {
    const mail = generated(seed);
    if (hasInviteShape(mail)) shaped++;
    const ours = new TextDecoder().decode(composeInvite(mail));
    assertEquals(stable(ours), stable(await byNodemailer(mail)), `seed ${seed}`);
    const [head = "", , text = "", calendar = ""] = ours.split(/\r\n----_NmP-\w+-Part_\d\r\n/);
    for (const encoding of ["7bit", "quoted-printable", "base64"]) {
      count(`text ${encoding}`, text.includes(`Content-Transfer-Encoding: ${encoding}\r\n`));
      count(`calendar ${encoding}`, calendar.includes(`Encoding: ${encoding}\r\n`));
    }
    count("encoded subject", /^Subject: =\?UTF-8\?[QB]\?/m.test(head));
    count("folded subject", /^Subject: .*\r\n [^\r]/m.test(head));
    count("no subject", !/^Subject:/m.test(head));
  }
  assertEquals(shaped, 400, "every generated invite is built from the invite's shape");
  // The generated mails reach every branch of nodemailer's choices, each many times.
  for (const encoding of ["7bit", "quoted-printable", "base64"]) {
    for (const part of ["text", "calendar"]) {
      assert((seen.get(`${part} ${encoding}`) ?? 0) >= 10, `${part} ${encoding}: ${[...seen]}`);
    }
  }
  for (const what of ["encoded subject", "folded subject", "no subject"]) {
    assert((seen.get(what) ?? 0) >= 5, `${what}: ${[...seen]}`);
  }
  const others: InviteMail[] = [
    { ...PLAIN, text: "" },
    { ...PLAIN, headers: { "Reply-To": "someone@example.com" } },
    { ...PLAIN, headers: { "X-Agent-Origin": "agent-calendar", "content-type": "text/html" } },
    { ...PLAIN, headers: { "From": "ceo@example.com" } },
  ];
  for (const mail of others) {
    assertEquals(hasInviteShape(mail), false, JSON.stringify(mail.headers));
    const ours = new TextDecoder().decode(composeInvite(mail));
    assertEquals(stable(ours), stable(await byNodemailer(mail)), JSON.stringify(mail.headers));
  }
  assert(hasInviteShape(PLAIN) && HOSTILE.every(hasInviteShape), "the fixed invites are shaped");
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
