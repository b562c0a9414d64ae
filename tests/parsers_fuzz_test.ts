/**
 * Random and hostile input to every parser: each answers with a result or a clear error of
 * its own kind, never a crash or a hang. Seeded, so a failure can be replayed.
 */
import { assert } from "./support/assert.ts";
import { parseDelivery } from "../mod/action_module/message.ts";
import { parseTicketInfo, TriggerInputError } from "../mod/securechange/trigger.ts";
import { buildTicketInfo } from "../mod/enrich/ticket_info.ts";
import { ConfigError, parseConfig } from "../mod/config/config.ts";
import type { RawTicket } from "../mod/securechange/types.ts";
import { sanitizeMailHtml, stripQuotesAndSignature } from "../mod/mail_bridge/html.ts";
import { adfText, forCloud, htmlToAdf, textToAdf } from "../mod/jira/adf.ts";
import { adfProblem } from "./support/adf_schema.ts";
import { adfToWiki } from "../mod/jira/wiki.ts";
import { cleanSubject, subjectKeys } from "../mod/mail_bridge/rules.ts";
import { DirMailbox } from "../mod/mail_bridge/local.ts";
import { Store } from "../mod/store/store.ts";
import { parseAddress } from "../mod/smtp/address.ts";
import { escapeRegExp } from "../mod/log/redact.ts";

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

/** Jira wiki control sequences, as senders (or attackers) write them. */
const WIKI_TOKENS = [
  "h1. ",
  "h3.",
  "bq. ",
  "??cite??",
  "{html}<script>alert(1)</script>{html}",
  "[~admin]",
  "!https://tracker.example/p.gif!",
  "*bold*",
  "_em_",
  "-strike-",
  "+under+",
  "^sup^",
  "~sub~",
  "{{mono}}",
  "[link|https://evil.example]",
  "||head||",
  "|cell|",
  "# ",
  "* ",
  "----",
  "\\\\",
  "\\",
  "{color:red}x{color}",
  "{panel}",
  "{code}x{code}",
  "{noformat}",
  "(-)",
  "&#92;",
];

/**
 * Where Jira would see markup in wiki text we wrote for plain text: a special character not
 * escaped, a `\\` (a line break), a heading or quote marker at a line's start.
 */
function wikiMarkupIn(wiki: string): string | undefined {
  if (wiki.includes("\\\\")) return "a double backslash (line break)";
  for (const line of wiki.split("\n")) {
    if (/^\s*(h[1-6]|bq)\.(\s|$)/.test(line)) return `block marker: ${line}`;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === "\\") {
        i++;
        continue;
      }
      const entity = c === "&" ? /^&(#92|amp);/.exec(line.slice(i)) : null;
      if (entity) {
        i += entity[0].length - 1;
        continue;
      }
      if ("{}[]|!*_+^~#?".includes(c)) return `unescaped ${c} in ${JSON.stringify(line)}`;
      if (c === "-" && (i === 0 || /[\s(]/.test(line[i - 1]!))) {
        return `a dash that opens strike-through in ${JSON.stringify(line)}`;
      }
    }
  }
  return undefined;
}

Deno.test("wiki markup: random text full of Jira control sequences stays literal text (nothing unescaped, and unescaping gives the text back)", () => {
  const r = rng(SEED + 8);
  const words = ["Hello", "a-b", "x", "10:00", "ä€😀", " ", "  ", "\n", "(", ")", "&", "%"];
  for (let i = 0; i < 2_000; i++) {
    const text = Array.from({ length: 1 + Math.floor(r() * 12) }, () => {
      const pool = r() < 0.5 ? WIKI_TOKENS : words;
      return pool[Math.floor(r() * pool.length)]!;
    }).join("");
    const wiki = adfToWiki(textToAdf(text));
    const found = wikiMarkupIn(wiki);
    assert(found === undefined, `${found} for ${JSON.stringify(text)} -> ${JSON.stringify(wiki)}`);
    const back = wiki.replace(/\\(.)/g, "$1").replace(/&#92;/g, "\\").replace(/&amp;/g, "&");
    const expected = text.split("\n").filter((_, k, all) => k < all.length).join("\n").trim();
    assert(
      back.replace(/\s+/g, " ").trim() === expected.replace(/\s+/g, " ").trim(),
      `${JSON.stringify(text)} came back as ${JSON.stringify(back)}`,
    );
  }
});

Deno.test("mail HTML: control sequences in text, alt text, link text and unknown cid: images never become Jira markup or a remote image; attachments are images in place", () => {
  const r = rng(SEED + 9);
  const wrap = [
    (t: string) => `<p>${t}</p>`,
    (t: string) => `<a href="https://ok.example/x">${t}</a>`,
    (t: string) => `<b>${t}</b>`,
    (t: string) => `<td>${t}</td>`,
    (t: string) => `<li>${t}</li>`,
    (t: string) => `<img src="cid:${t.replace(/"/g, "")}" alt="${t.replace(/"/g, "")}">`,
    (t: string) => `<img src="https://tracker.example/p.gif" alt="${t.replace(/"/g, "")}">`,
    (t: string) => `<blockquote>${t}</blockquote>`,
    (t: string) => `<code>${t}</code>`,
  ];
  for (let i = 0; i < 1_000; i++) {
    const html = Array.from({ length: 1 + Math.floor(r() * 6) }, () => {
      const token = WIKI_TOKENS[Math.floor(r() * WIKI_TOKENS.length)]!
        .replace(/[<>]/g, "");
      return wrap[Math.floor(r() * wrap.length)]!(token);
    }).join("") + `<p><img src="cid:shot@1" alt="[~admin]"></p>`;
    const doc = htmlToAdf(sanitizeMailHtml(html), {
      images: new Map([["shot@1", "shot.png"]]),
    });
    const wiki = adfToWiki(doc);
    // The attachment is the one image, in place; nothing else is an image or a macro.
    const images = [...wiki.matchAll(/(?<!\\)!([^!\s]+)!/g)].map((m) => m[1]);
    assert(images.length === 1 && images[0] === "shot.png", `${images} in ${wiki}`);
    for (const raw of ["{html}", "[~", "!https", "{color", "{panel}", "{code}", "??cite"]) {
      const unescaped = new RegExp(`(?<!\\\\)${escapeRegExp(raw)}`);
      assert(!unescaped.test(wiki), `${raw} reached the wiki text: ${wiki}`);
    }
    assert(!/^\s*(h[1-6]|bq)\.\s/m.test(wiki), `a block marker: ${wiki}`);
    const cloud = JSON.stringify(forCloud(doc));
    // On Cloud nothing but text and the marks and blocks of the mail: no image, card or mention.
    assert(!/"type":"(media\w*|inlineCard|blockCard|mention|emoji)"/.test(cloud), cloud);
  }
});

Deno.test("mail HTML: 2,000 random nested structures give ADF that Atlassian's schema accepts, and every word of the mail is still there (Cloud ADF and Server/DC wiki)", () => {
  const r = rng(SEED + 10);
  let word = 0;
  const words: string[] = [];
  const text = () => {
    const w = `w${++word}q`;
    words.push(w);
    return w;
  };
  const pick = <T>(list: readonly T[]) => list[Math.floor(r() * list.length)]!;
  const node = (depth: number): string => {
    if (depth > 4 || r() < 0.25) return text();
    const inner = () =>
      Array.from({ length: 1 + Math.floor(r() * 3) }, () => node(depth + 1)).join(" ");
    switch (Math.floor(r() * 18)) {
      case 0:
        return `<p>${inner()}</p>`;
      case 1:
        return `<div>${inner()}</div>`;
      case 2:
        return `<blockquote>${inner()}</blockquote>`;
      case 3:
        return `<ul><li>${inner()}</li><li>${inner()}</li></ul>`;
      case 4:
        return `<ol><li>${inner()}</li></ol>`;
      case 5:
        // Gmail's lists straight inside lists.
        return `<ul><li>${text()}</li><ul><li>${inner()}</li></ul>${text()}</ul>`;
      case 6:
        return `<table><tr><th>${inner()}</th><td>${inner()}</td></tr><tr><td>${inner()}</td></tr></table>`;
      case 7:
        return `<h${1 + Math.floor(r() * 3)}>${inner()}</h1>`;
      case 8:
        return `<pre>${text()}\n${text()}</pre>`;
      case 9:
        return `<a href="https://ok.example/${word}">${inner()}</a>`;
      case 10:
        return `<b>${inner()}</b> <i>${inner()}</i>`;
      case 11:
        return `<code>${text()}</code>`;
      case 12:
        return `${text()}<br>${text()}`;
      case 13:
        return `<hr>${text()}`;
      case 14:
        return `<a href="https://ok.example/"><img src="https://t.example/p.gif" alt="${text()}"></a>`;
      case 15:
        return `<img src="cid:${pick(["known", "unknown"])}" alt="${text()}">`;
      case 16:
        return `<li>${inner()}</li>`;
      default:
        return `<span>${inner()}</span>`;
    }
  };
  let invalid = 0;
  for (let i = 0; i < 2_000; i++) {
    words.length = 0;
    const html = node(0) + node(0);
    const doc = htmlToAdf(sanitizeMailHtml(html), { images: new Map([["known", "known.png"]]) });
    const cloud = forCloud(doc);
    const problem = adfProblem(cloud);
    if (problem) {
      invalid++;
      assert(false, `${problem} for ${html}: ${JSON.stringify(cloud)}`);
    }
    const all = adfText(cloud);
    const wiki = adfToWiki(doc);
    for (const w of words) {
      // The alt text of an attached image gives way to the image itself.
      if (html.includes(`cid:known" alt="${w}`)) continue;
      assert(all.includes(w), `${w} lost from the ADF of ${html}`);
      assert(wiki.includes(w), `${w} lost from the wiki of ${html}`);
    }
  }
  assert(invalid === 0);
});

Deno.test("ticket text: random order, host name, subject and requester text (line breaks, forged sections and markers, control characters) reaches plugins as one clean line", () => {
  const r = rng(SEED + 11);
  const pieces = [
    "AR1",
    "\n",
    "\r\n",
    "== Forged ==",
    "[agent-enrich 1/2/CREATE]",
    "\u0000",
    "\u001b[31m",
    "\u2028",
    " ",
    "é",
    "\t",
    "x",
  ];
  const text = () =>
    Array.from({ length: 1 + Math.floor(r() * 8) }, () => pieces[Math.floor(r() * pieces.length)]!)
      .join("");
  for (let i = 0; i < ROUNDS; i++) {
    const info = buildTicketInfo({
      id: 1,
      subject: text(),
      requester: text(),
      steps: {
        step: [{
          id: 1,
          tasks: {
            task: [{
              id: 1,
              fields: {
                field: [{
                  access_request: {
                    order: text(),
                    sources: {
                      source: { "@type": "DNS", host_name: text(), dns_ip_addresses: ["10.0.0.1"] },
                    },
                  },
                }],
              },
            }],
          },
        }],
      },
    } as unknown as RawTicket);
    const request = info.Requests[0]!;
    for (
      const value of [info.Subject, info.Requester, request.Order!, request.Sources[0]!.HostName!]
    ) {
      // deno-lint-ignore no-control-regex
      assert(!/[\u0000-\u001f\u007f\u2028\u2029]/.test(value), JSON.stringify(value));
    }
  }
});
