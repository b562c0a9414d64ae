import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { sanitizeMailHtml, stripQuotesAndSignature } from "../mod/mail_bridge/html.ts";
import { htmlToAdf } from "../mod/jira/adf.ts";
import { adfToWiki } from "../mod/jira/wiki.ts";
import { cleanSubject, isForward, subjectKeys } from "../mod/mail_bridge/rules.ts";

const newPart = (html: string) =>
  adfToWiki(htmlToAdf(sanitizeMailHtml(stripQuotesAndSignature(html))));

Deno.test("replies from real clients keep only the new text", async (t) => {
  const cases: [string, string][] = [
    [
      "Gmail",
      `<div dir="ltr">Fixed on our side.</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, 23 Nov 2026 at 09:05, Ann &lt;ann@example.com&gt; wrote:<br></div><blockquote class="gmail_quote">VPN down</blockquote></div>`,
    ],
    [
      "Outlook desktop",
      `<div class="WordSection1"><p class="MsoNormal">Fixed on our side.</p><div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> Ann<br><b>Sent:</b> Monday</p></div></div><p>VPN down</p></div>`,
    ],
    [
      "Outlook on the web",
      `<div>Fixed on our side.</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> Ann</div><div>VPN down</div>`,
    ],
    [
      "Apple Mail",
      `<div>Fixed on our side.</div><div><br><blockquote type="cite"><div>On 23 Nov 2026, at 09:05, Ann wrote:</div><div>VPN down</div></blockquote></div>`,
    ],
    [
      "iPhone, plain text",
      `<p>Fixed on our side.<br><br>Sent from my iPhone<br><br>On 23 Nov 2026, at 09:05, Ann wrote:<br>&gt; VPN down</p>`,
    ],
    [
      "Thunderbird",
      `<p>Fixed on our side.</p><div class="moz-cite-prefix">On 23.11.26 09:05, Ann wrote:<br></div><blockquote type="cite">VPN down</blockquote>`,
    ],
    ["signature only", `<p>Fixed on our side.</p><p>-- <br>Bob Builder<br>NOC, ext. 4711</p>`],
  ];
  for (const [client, html] of cases) {
    await t.step(client, () => {
      const text = newPart(html);
      assertStringIncludes(text, "Fixed on our side.");
      for (const gone of ["VPN down", "Bob Builder", "iPhone", "wrote"]) {
        assert(!text.includes(gone), `${client}: "${gone}" left in ${JSON.stringify(text)}`);
      }
    });
  }
});

Deno.test("ADF keeps structure: nested lists, tables with headers, code, quotes, links with marks", () => {
  const doc = htmlToAdf(sanitizeMailHtml(
    `<h2>Summary</h2><ol><li>one<ul><li>one.a</li></ul></li><li><b><a href="https://x.example/a">two</a></b></li></ol>` +
      `<table><thead><tr><th>h</th></tr></thead><tbody><tr><td><p>c</p></td></tr></tbody></table>` +
      `<blockquote><p>quoted</p></blockquote><pre><code>x = 1\ny = 2</code></pre><p>a<br>b <code>inline</code></p>`,
  ));
  assertEquals(doc.content.map((n) => n.type), [
    "heading",
    "orderedList",
    "table",
    "blockquote",
    "codeBlock",
    "paragraph",
  ]);
  const list = JSON.stringify(doc.content[1]);
  assertStringIncludes(list, `"bulletList"`);
  assertStringIncludes(
    list,
    `"marks":[{"type":"strong"},{"type":"link","attrs":{"href":"https://x.example/a"}}]`,
  );
  assertEquals(doc.content[4]!.content![0]!.text, "x = 1\ny = 2");
  assertEquals(
    adfToWiki(doc),
    "h2. Summary\n\n# one\n#* one.a\n# [*two*|https://x.example/a]\n\n||h||\n|c|\n\n{quote}\nquoted\n{quote}\n\n" +
      "{noformat}\nx = 1\ny = 2\n{noformat}\n\na\nb {{inline}}",
  );
});

Deno.test("subjects: reply and forward tags go, keys of configured projects are found left-most first", () => {
  assertEquals(
    cleanSubject("RE: AW: Fwd: [general] Printer\r\nbroken", ["general"], 200),
    "Printer broken",
  );
  assertEquals(cleanSubject("Re[2]: SV: WG: hello", [], 200), "hello");
  assertEquals(cleanSubject("RE:", [], 200), "(no subject)");
  assertEquals(cleanSubject("x".repeat(300), [], 50).length, 50);
  assertEquals(subjectKeys("RE: OPS-7 and SUP-12 (see ABC-1, SUP-3x, xSUP-4)", ["SUP", "OPS"]), [
    "OPS-7",
    "SUP-12",
  ]);
  assert(
    isForward("FW: x") && isForward("Fwd: x") && isForward("WG: x") && !isForward("RE: FW: x"),
  );
});
