/**
 * Random and hostile input to every parser: each answers with a result or a clear error of
 * its own kind, never a crash or a hang. Seeded, so a failure can be replayed.
 */
import { assert } from "./support/assert.ts";
import { parseDelivery } from "../mod/actions/message.ts";
import { parseTicketInfo, TriggerInputError } from "../mod/securechange/trigger.ts";
import { buildTicketInfo } from "../mod/enrich/ticket_info.ts";
import { ConfigError, parseConfig } from "../mod/config/config.ts";
import type { RawTicket } from "../mod/securechange/types.ts";
import { sanitizeMailHtml, stripQuotesAndSignature } from "../mod/mail_bridge/html.ts";
import { htmlToAdf } from "../mod/jira/adf.ts";
import { adfToWiki } from "../mod/jira/wiki.ts";
import { cleanSubject, subjectKeys } from "../mod/mail_bridge/rules.ts";
import { DirMailbox } from "../mod/mail_bridge/local.ts";
import { Store } from "../mod/store/store.ts";
import { parseAddress } from "../mod/smtp/address.ts";

/** mulberry32: a small seeded PRNG. */
function rng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261123);
const ROUNDS = 400;

function randomValue(r: () => number, depth = 0): unknown {
  const pick = Math.floor(r() * (depth > 4 ? 5 : 8));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return Math.floor(r() * 2 ** 32) - 2 ** 31;
    case 3:
      return [
        "",
        "ANY",
        "10.0.0.1",
        "255.255.255.0",
        "1000-2000",
        "\u0000\r\n",
        "🎉",
        "x".repeat(5000),
      ][Math.floor(r() * 8)];
    case 4:
      return r() * 1e6;
    case 5:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    default: {
      const keys = [
        "id",
        "incident",
        "task",
        "object_type",
        "steps",
        "step",
        "tasks",
        "fields",
        "field",
        "access_request",
        "sources",
        "source",
        "destinations",
        "destination",
        "services",
        "service",
        "@type",
        "ip_address",
        "netmask",
        "cidr",
        "range_first_ip",
        "range_last_ip",
        "dns_ip_addresses",
        "port",
        "protocol",
        "comments",
        "comment",
        "content",
        "current_step",
        "workflow",
        "server_decommission_request",
        "servers",
      ];
      const out: Record<string, unknown> = {};
      for (let i = 0; i < Math.floor(r() * 6); i++) {
        out[keys[Math.floor(r() * keys.length)]!] = randomValue(r, depth + 1);
      }
      return out;
    }
  }
}

function randomBytes(r: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

Deno.test("action message parser: random bytes, random JSON and hostile shapes give a result or a stated problem", () => {
  const r = rng(SEED);
  for (let i = 0; i < ROUNDS; i++) {
    const body = i % 3 === 0
      ? randomBytes(r, Math.floor(r() * 200))
      : new TextEncoder().encode(JSON.stringify(randomValue(r)));
    const result = parseDelivery(
      { "message-id": `m${i}`, destination: "/queue/actions.201.q" },
      body,
    );
    assert(
      result.ok || (typeof result.problem === "string" && result.problem.length > 0),
      `round ${i}`,
    );
  }
  // Deep nesting and a huge body.
  const deep = new TextEncoder().encode("[".repeat(100_000) + "]".repeat(100_000));
  const result = parseDelivery({}, deep);
  assert(!result.ok);
});

Deno.test("ticket_info XML: random, truncated and hostile documents give a result or a TriggerInputError", () => {
  const r = rng(SEED + 1);
  const good =
    "<ticket_info><id>42</id><subject>s</subject><current_stage><id>3</id></current_stage></ticket_info>";
  const hostile = [
    `<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><ticket_info><id>1</id><subject>&b;</subject></ticket_info>`,
    `<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><ticket_info><id>1</id><subject>&xxe;</subject></ticket_info>`,
    "<ticket_info>" + "<a>".repeat(5000) + "</a>".repeat(5000) + "</ticket_info>",
    "<ticket_info><id>-1</id></ticket_info>",
    "<ticket_info><id>4e2</id></ticket_info>",
    "\u0000\u0001<ticket_info/>",
  ];
  const inputs = [...hostile];
  for (let i = 0; i < ROUNDS; i++) {
    const cut = Math.floor(r() * good.length);
    const mutated = good.slice(0, cut) + String.fromCharCode(Math.floor(r() * 128)) +
      good.slice(cut + (r() < 0.5 ? 1 : 0));
    inputs.push(i % 2 ? mutated : good.slice(0, cut));
  }
  for (const [i, xml] of inputs.entries()) {
    try {
      const info = parseTicketInfo(xml);
      assert(
        info.ticketId === undefined || (Number.isInteger(info.ticketId) && info.ticketId > 0),
        `input ${i}`,
      );
    } catch (error) {
      assert(error instanceof TriggerInputError, `input ${i}: ${String(error)}`);
    }
  }
});

Deno.test("ticket JSON: random ticket shapes never throw while building ticket_info", () => {
  const r = rng(SEED + 2);
  for (let i = 0; i < ROUNDS; i++) {
    const ticket = { id: i, ...(randomValue(r) as object) } as RawTicket;
    const info = buildTicketInfo(ticket);
    assert(Array.isArray(info.Requests), `round ${i}`);
    for (const request of info.Requests) {
      for (const a of [...request.Sources, ...request.Destinations]) {
        assert(
          /^\d+\.\d+\.\d+\.\d+$/.test(a.Ip) && /^\d+$/.test(a.Cidr),
          `round ${i}: ${JSON.stringify(a)}`,
        );
      }
    }
  }
});

Deno.test("config: random INI text gives a Config or a ConfigError, nothing else", () => {
  const r = rng(SEED + 3);
  const pieces = [
    "[resilient]\n",
    "[taskcalendar]\n",
    "[agent]\n",
    "host = h\n",
    "port = x\n",
    "org: o\n",
    "  cont\n",
    "# c\n",
    "; c\n",
    "key\n",
    "= v\n",
    "[\n",
    "smtpfrom = a@b\n",
    "api_key_id = i\napi_key_secret = $X\n",
    "\r\n",
    "\u0000",
  ];
  for (let i = 0; i < ROUNDS; i++) {
    const text = Array.from(
      { length: Math.floor(r() * 12) },
      () => pieces[Math.floor(r() * pieces.length)],
    ).join("");
    try {
      parseConfig(text, { file: "fuzz.ini", env: () => undefined });
    } catch (error) {
      assert(error instanceof ConfigError, `round ${i}: ${String(error)}\n${JSON.stringify(text)}`);
      assert(error.message.startsWith("fuzz.ini"), `round ${i}: ${error.message}`);
    }
  }
});

Deno.test("mail content: random and hostile HTML and subjects always give sanitised ADF and wiki text", () => {
  const r = rng(SEED + 5);
  const pieces = [
    "<p>",
    "</p>",
    "<div class=gmail_quote>",
    "<blockquote type=cite>",
    "<table><tr><td>",
    "</td>",
    "<ul><li>",
    "</li></ul>",
    "<pre>",
    "</pre>",
    "<a href='javascript:x()'>",
    "<a href=https://x.example>",
    "</a>",
    "<img src=cid:a>",
    "<img src=https://t.example/p.gif>",
    "<script>alert(1)</script>",
    "<b><i>",
    "</b>",
    "-- ",
    "\n",
    "On Mon, Ann wrote:",
    "&amp;",
    "&#0;",
    "<!--",
    "-->",
    "<",
    ">",
    "[SUP-1]",
    "RE: ",
    "*_{|}!",
    "\u0000",
    "\u202e",
    "ä€😀",
  ];
  for (let i = 0; i < ROUNDS; i++) {
    const html = Array.from(
      { length: Math.floor(r() * 40) },
      () => pieces[Math.floor(r() * pieces.length)]!,
    ).join("");
    const clean = sanitizeMailHtml(stripQuotesAndSignature(html));
    assert(!/<script|javascript:|t\.example/i.test(clean), clean);
    const doc = htmlToAdf(clean, { images: new Map([["a", "a.png"]]) });
    assert(doc.type === "doc" && Array.isArray(doc.content));
    assert(typeof adfToWiki(doc) === "string");
    const summary = cleanSubject(html, ["general"], 200);
    assert(summary.length > 0 && summary.length <= 200 && !/[\r\n]/.test(summary), summary);
    subjectKeys(html, ["SUP"]);
  }
});

Deno.test("MIME mail: random, truncated and hostile .eml files give a message or an error naming the file", async () => {
  const r = rng(SEED + 6);
  const dir = await Deno.makeTempDir({ prefix: "agent-fuzz-mime-" });
  const store = await Store.open(":memory:");
  const parts = [
    "From: Ann <ann@example.com>\r\n",
    "From: =?utf-8?B?AAAA?= <\r\n",
    'To: support@example.com, "x\r\n',
    "Subject: =?UTF-8?Q?Re=3A_=E2=80=AE?=\r\n",
    "Subject: " + "A".repeat(5000) + "\r\n",
    "Message-ID: <a@b>\r\n",
    "References: <a@b> <c@d\r\n",
    "Content-Type: multipart/mixed; boundary=XX\r\n",
    "Content-Type: text/html; charset=x-unknown\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "\r\n",
    "--XX\r\n",
    "--XX--\r\n",
    "=E2=80=\r\n",
    "<script>alert(1)</script>",
    "\u0000\u0001",
    "\r\n\r\n",
    'Content-Disposition: attachment; filename="../../etc/passwd"\r\n',
  ];
  try {
    for (let i = 0; i < 150; i++) {
      const text = Array.from(
        { length: Math.floor(r() * 14) },
        () =>
          r() < 0.15
            ? String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(r() * 256)))
            : parts[Math.floor(r() * parts.length)]!,
      ).join("");
      await Deno.writeTextFile(`${dir}/m${i}.eml`, text);
    }
    const mailbox = new DirMailbox(dir, { store, outbox: `${dir}/outbox` });
    for (let i = 0; i < 150; i++) {
      try {
        const message = await mailbox.get(`m${i}.eml`);
        assert(typeof message.subject === "string" && typeof message.from.address === "string");
        assert(!message.from.address.includes("\n"), `round ${i}: a line break in an address`);
      } catch (error) {
        assert(
          error instanceof Error && error.message.includes(`"m${i}.eml"`),
          `round ${i}: ${error}`,
        );
      }
    }
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recipient strings: an address parseAddress accepts is exactly one address to nodemailer and to SMTP; anything with a name, list, header or control character is refused", async () => {
  const { default: addressparser } = await import("nodemailer/lib/addressparser");
  const r = rng(SEED + 7);
  const pieces = [
    "ann",
    "@",
    "example.com",
    "evil.example",
    ".",
    ",",
    ";",
    " ",
    "<",
    ">",
    '"',
    "\r\n",
    "\n",
    "\u0000",
    "Bcc: ",
    "(c)",
    "é",
    "+tag",
    "-",
    "\\",
    ":",
    "[1.2.3.4]",
    "\u2028",
    "\t",
  ];
  let accepted = 0;
  for (let i = 0; i < 4000; i++) {
    // A plausible address, with hostile pieces put in at random places half of the time.
    const locals = ["ann", "a.b", "x+tag", "é", "o'neil", "soc-team"];
    const domains = ["example.com", "evil.example", "mail.example.co", "EXAMPLE.org"];
    let text = `${locals[Math.floor(r() * locals.length)]}@${
      domains[Math.floor(r() * domains.length)]
    }`;
    for (let k = r() < 0.5 ? 0 : 1 + Math.floor(r() * 3); k > 0; k--) {
      const at = Math.floor(r() * (text.length + 1));
      text = text.slice(0, at) + pieces[Math.floor(r() * pieces.length)] + text.slice(at);
    }
    const parsed = parseAddress(text);
    if (!parsed.ok) {
      assert(parsed.problem.length > 0);
      continue;
    }
    accepted++;
    const address = parsed.address;
    // deno-lint-ignore no-control-regex
    assert(!/[\s,;<>"()\u0000-\u001f\u007f]/.test(address), JSON.stringify(address));
    assert(address.split("@").length === 2, address);
    const seen = (addressparser as (s: string) => { address?: string; group?: unknown }[])(address);
    assert(seen.length === 1 && !seen[0]!.group, `${address}: ${JSON.stringify(seen)}`);
    assert(seen[0]!.address?.toLowerCase() === address.toLowerCase(), JSON.stringify(seen));
  }
  for (
    const hostile of [
      "ann@example.com\r\nBcc: attacker@evil.example",
      '"ann@example.com" <attacker@evil.example>',
      "a@x.example, evil@y.example",
      "a@x.example;evil@y.example",
      "Ann <ann@example.com>",
      "ann@example.com (Ann)",
      "ann@@example.com",
      "@example.com",
      "ann@",
      "ann@-example.com",
      "ann..x@example.com",
    ]
  ) {
    assert(!parseAddress(hostile).ok, hostile);
  }
  assert(accepted > 50, `only ${accepted} random strings were addresses`);
  assert(parseAddress("Ann.O'Neil+soc@Example.COM").ok);
});
