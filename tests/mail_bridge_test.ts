import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { startBridge, textOf } from "./support/mail_bridge.ts";
import { mailMarker } from "../mod/mail_bridge/bridge.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]);

Deno.test(
  "mail bridge (Cloud): a new mail becomes one issue with ADF, attachments and the Message-ID property; its reply one comment",
  integration,
  async () => {
    const h = await startBridge();
    try {
      const mail = h.graph.deliver({
        from: "ann@example.com",
        fromName: "Ann Agent",
        subject: "[network] VPN is down",
        importance: "high",
        cc: ["bob@example.com", "nobody@example.com"],
        html:
          `<p>Hello,</p><p>The <b>VPN</b> is down since <a href="https://status.example.com/vpn">09:00</a>:</p>
        <ul><li>site A</li><li>site B<ol><li>floor 2</li></ol></li></ul>
        <table><tr><th>Site</th><th>Users</th></tr><tr><td>A</td><td>40</td></tr></table>
        <pre>ping 10.0.0.1\nTimeout</pre><p><img src="cid:shot@1"></p>`,
        attachments: [
          {
            name: "log.txt",
            contentType: "text/plain",
            isInline: false,
            content: new TextEncoder().encode("line 1\nline 2\n"),
            size: 14,
          },
          {
            name: "shot.png",
            contentType: "image/png",
            isInline: true,
            contentId: "shot@1",
            content: PNG,
            size: PNG.length,
          },
        ],
      });
      await h.sync();

      const issues = [...h.jira.issues.values()];
      assertEquals(issues.length, 1);
      const issue = issues[0]!;
      assertEquals(issue.key, "SUP-1");
      assertEquals(issue.fields.summary, "VPN is down");
      // The mail's own marker label is what crash recovery searches for (on both flavours).
      assertEquals(issue.fields.labels, [
        "mail-bridge",
        "network",
        await mailMarker(mail.internetMessageId),
      ]);
      assertMatch(String((issue.fields.labels as string[])[2]), /^mail-[0-9a-f]{20}$/);
      assertEquals(issue.fields.priority, { name: "High" });
      assertEquals(issue.fields.reporter, { accountId: "557058:ann" });
      assertEquals(issue.properties["agent.mail"], {
        messageId: mail.internetMessageId,
        mailbox: h.graph.mailbox,
      });
      const doc = issue.fields.description as { type: string; content: { type: string }[] };
      assertEquals(doc.type, "doc");
      const types = doc.content.map((n) => n.type);
      for (const t of ["paragraph", "bulletList", "table", "codeBlock"]) {
        assert(
          types.includes(t),
          `${t} in ${types}`,
        );
      }
      const json = JSON.stringify(doc);
      assertStringIncludes(json, `"href":"https://status.example.com/vpn"`);
      assertStringIncludes(json, `"orderedList"`);
      assertStringIncludes(json, "[image: shot.png (attached)]");
      assertStringIncludes(textOf(doc), "Ann Agent <ann@example.com> wrote:");
      assertEquals(issue.attachments.map((a) => [a.filename, a.size]), [["log.txt", 14], [
        "shot.png",
        PNG.length,
      ]]);
      assertEquals(new TextDecoder().decode(issue.attachments[0]!.bytes), "line 1\nline 2\n");
      assertEquals(issue.watchers, ["557058:bob"]);
      assertEquals(h.graph.messages.get(mail.id)!.categories, ["Jira: SUP-1"]);
      assertEquals(h.graph.replies.length, 1);
      assertStringIncludes(h.graph.replies[0]!.body, "SUP-1");
      assertEquals(h.graph.replies[0]!.headers, [
        { name: "X-Auto-Response-Suppress", value: "All" },
        { name: "X-Agent-Mail-Bridge", value: "ack; issue=SUP-1" },
      ]);
      // Every Graph request asked for immutable ids.
      const graphRequests = h.graph.requests.filter((r) => r.path.startsWith("/v1.0/"));
      assert(
        graphRequests.every((r) => /IdType="ImmutableId"/.test(r.headers.get("prefer") ?? "")),
      );

      const reply = h.graph.replyTo(mail, {
        from: "bob@example.com",
        subject: "RE: [network] VPN is down",
        html:
          `<div>Site B is back.</div><div id="divRplyFwdMsg"><b>From:</b> Ann</div><div>The VPN is down since 09:00</div>`,
        uniqueHtml: `<div>Site B is back.<br>-- <br>Bob, NOC</div>`,
      });
      await h.sync();
      assertEquals(h.jira.issues.size, 1);
      assertEquals(issue.comments.length, 1);
      const comment = textOf(issue.comments[0]!.body);
      assertStringIncludes(comment, "Site B is back.");
      assert(!comment.includes("Bob, NOC"), comment);
      assertEquals(issue.comments[0]!.properties, [{
        key: "agent.mail",
        value: { messageId: reply.internetMessageId, mailbox: h.graph.mailbox },
      }]);
      assertEquals(h.graph.messages.get(reply.id)!.categories, ["Jira: SUP-1"]);
      assertEquals(h.graph.replies.length, 1, "no acknowledgement for a comment");

      // The mailbox marks come back through the delta as changes: nothing is done twice.
      await h.sync();
      assertEquals([h.jira.issues.size, issue.comments.length, issue.attachments.length], [
        1,
        1,
        2,
      ]);
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge (Server/DC): wiki markup with the inline image in place, reporter by name, default reporter for strangers",
  integration,
  async () => {
    const h = await startBridge({
      deployment: "server",
      bridge: { default_reporter: "servicedesk@example.com", project_keys: "OPS" },
    });
    try {
      h.graph.deliver({
        from: "ann@example.com",
        subject: "Printer *on fire*",
        html:
          `<p>See <a href="https://wiki.example.com/p">the page</a>:</p><ul><li>one</li><li>two</li></ul><img src="cid:pic"><table><tr><th>a</th></tr><tr><td>b</td></tr></table>`,
        attachments: [{
          name: "pic.png",
          contentType: "image/png",
          isInline: true,
          contentId: "pic",
          content: PNG,
          size: PNG.length,
        }],
      });
      h.graph.deliver({
        from: "stranger@partner.example",
        subject: "Hello",
        text: "Plain text\n\nsecond paragraph",
      });
      await h.sync();
      const bySummary = (s: string) =>
        [...h.jira.issues.values()].find((i) => i.fields.summary === s);
      const [first, second] = [bySummary("Printer *on fire*")!, bySummary("Hello")!];
      assert(first && second, "two issues");
      const wiki = first.fields.description as string;
      assertEquals(typeof wiki, "string");
      assertStringIncludes(wiki, "[the page|https://wiki.example.com/p]");
      assertStringIncludes(wiki, "* one\n* two");
      assertStringIncludes(wiki, "!pic.png!");
      assertStringIncludes(wiki, "||a||\n|b|");
      assertEquals(first.fields.reporter, { name: "ann" });
      assertEquals(first.fields.summary, "Printer *on fire*");
      assertEquals(second.fields.reporter, { name: "svc" });
      assertStringIncludes(
        second.fields.description as string,
        "stranger@partner.example wrote (not a Jira user):",
      );
      assertStringIncludes(second.fields.description as string, "Plain text\n\nsecond paragraph");
      const original = [...h.graph.messages.values()][0]!;
      assertEquals(first.properties["agent.mail"], {
        messageId: original.internetMessageId,
        mailbox: h.graph.mailbox,
      });

      // The reply becomes one wiki comment with its property; a [OPS] subject tag picks OPS.
      const reply = h.graph.replyTo(original, {
        from: "bob@example.com",
        subject: "RE: Printer *on fire*",
        html: "<p>Extinguished.</p><blockquote type=cite>See the page</blockquote>",
      });
      h.graph.deliver({ from: "ann@example.com", subject: "[OPS] Rack 4 is warm", text: "x" });
      await h.sync();
      assertEquals(first.comments.length, 1);
      assertEquals(first.comments[0]!.body, "*bob@example.com wrote:*\n\nExtinguished.");
      assertEquals(first.comments[0]!.properties, [{
        key: "agent.mail",
        value: { messageId: reply.internetMessageId, mailbox: h.graph.mailbox },
      }]);
      assertEquals(h.jira.issues.get("OPS-1")?.fields.summary, "Rack 4 is warm");
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge (Server/DC): alt text, unknown cid: images and plain-text markers stay literal wiki text; the one inline attachment is shown in place and attached once",
  integration,
  async () => {
    const h = await startBridge({ deployment: "server", bridge: { ack_mail: "false" } });
    try {
      const mail = h.graph.deliver({
        from: "ann@example.com",
        subject: "Hostile",
        html: `<p><img src="cid:nothere" alt="!https://tracker.example/p.gif!"> ` +
          `<img src="cid:ghost" alt="[~admin]"> <img src="cid:x" alt="{html}<script>alert(1)</script>{html}"></p>` +
          `<p>h1. Not a heading</p><p>bq. not a quote ??not a cite?? and a \\ backslash</p>` +
          `<p><img src="cid:real@1" alt="Screenshot"></p>`,
        attachments: [{
          name: "real.png",
          contentType: "image/png",
          isInline: true,
          contentId: "real@1",
          content: PNG,
          size: PNG.length,
        }],
      });
      await h.sync();
      const issue = h.jira.issuesForMessage(mail.internetMessageId)[0]!;
      const wiki = issue.fields.description as string;
      // Only the attachment is an image; it is in place and was uploaded once.
      assertEquals([...wiki.matchAll(/(?<!\\)!([^!\s]+)!/g)].map((m) => m[1]), ["real.png"]);
      assertEquals(issue.attachments.map((a) => a.filename), ["real.png"]);
      for (
        const raw of [/(?<!\\)\[~admin/, /(?<!\\)\{html/, /^h1\. /m, /^bq\. /m, /(?<!\\)\?\?not/]
      ) {
        assert(!raw.test(wiki), `${raw} in ${wiki}`);
      }
      assertStringIncludes(wiki, "\\[image: \\!https://tracker.example/p.gif\\!\\]");
      assertStringIncludes(wiki, "\\[image: \\[\\~admin\\]\\]");
      assertStringIncludes(wiki, "h1\\. Not a heading");
      assertStringIncludes(wiki, "&#92; backslash");
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge threading: a subject key wins, References find the issue, a forward starts a linked issue",
  integration,
  async () => {
    const h = await startBridge();
    try {
      const a = h.graph.deliver({ from: "ann@example.com", subject: "Disk full", text: "A" });
      const b = h.graph.deliver({ from: "bob@example.com", subject: "Cert expiry", text: "B" });
      await h.sync();
      const keyOf = (id: string) => h.jira.issuesForMessage(id)[0]!.key;
      const [ka, kb] = [keyOf(a.internetMessageId), keyOf(b.internetMessageId)];
      // A reply in thread A whose subject names B's issue (and an unknown key first) goes to B.
      h.graph.replyTo(a, {
        from: "ann@example.com",
        subject: `RE: SUP-999 and ${kb}: Disk full`,
        text: "for B",
      });
      // A reply in another client (new conversation id) still threads by References.
      h.graph.deliver({
        from: "bob@example.com",
        subject: "Re: Disk full",
        text: "via references",
        references: [a.internetMessageId],
      });
      // A forward of thread A: a new issue linked to A's.
      h.graph.replyTo(a, {
        from: "ann@example.com",
        subject: "FW: Disk full",
        text: "please look",
      });
      await h.sync();
      const issueA = h.jira.issues.get(ka)!;
      const issueB = h.jira.issues.get(kb)!;
      assertEquals(issueB.comments.map((c) => textOf(c.body).includes("for B")), [true]);
      assertEquals(issueA.comments.map((c) => textOf(c.body).includes("via references")), [true]);
      assertEquals(h.jira.issues.size, 3);
      const forwarded = h.jira.issues.get("SUP-3")!;
      assertEquals(forwarded.fields.summary, "Disk full");
      assertEquals(forwarded.links, [`Relates:${ka}`]);
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge loop protection: auto-replies, bulk, delivery reports, its own mail and blocked senders create nothing",
  integration,
  async () => {
    const h = await startBridge({
      bridge: {
        allowed_domains: "example.com, partner.example, blocked.example, bad.example",
        own_addresses: "Support-Alias@example.com",
      },
    });
    try {
      const skipped = [
        h.graph.deliver({
          from: "ann@example.com",
          subject: "Out of office",
          text: "away",
          headers: { "Auto-Submitted": "auto-replied" },
        }),
        h.graph.deliver({
          from: "news@example.com",
          subject: "Newsletter",
          text: "news",
          headers: { Precedence: "bulk" },
        }),
        h.graph.deliver({
          from: "mailer-daemon@example.com",
          subject: "Undeliverable: x",
          text: "dsn",
        }),
        h.graph.deliver({
          from: "ann@example.com",
          subject: "RE: x",
          text: "ours",
          headers: { "X-Agent-Mail-Bridge": "ack" },
        }),
        h.graph.deliver({ from: "spam@bad.example", subject: "Buy", text: "spam" }),
        h.graph.deliver({
          from: "x@blocked.example",
          subject: "Hi",
          text: "blocked domain pattern",
        }),
        h.graph.deliver({ from: "eve@elsewhere.example", subject: "Hi", text: "not allowed" }),
        // The bridge's own mail in every form: sent on its behalf, a second From, an alias.
        h.graph.deliver({
          from: "ann@example.com",
          sender: h.graph.mailbox.toUpperCase(),
          subject: "Sent as Ann",
          text: "x",
        }),
        h.graph.deliver({
          from: "ann@example.com",
          subject: "Two authors",
          text: "x",
          headers: { From: `Ann <ann@example.com>, Desk <${h.graph.mailbox}>` },
        }),
        h.graph.deliver({ from: "support-alias@example.com", subject: "Alias", text: "x" }),
      ];
      const taken = h.graph.deliver({
        from: "ann@example.com",
        subject: "Real",
        text: "real",
        headers: { "Auto-Submitted": "no" },
      });
      await h.sync();
      assertEquals([...h.jira.issues.values()].map((i) => i.fields.summary), ["Real"]);
      const reasons = [];
      for (const m of skipped) {
        const record = await h.ledger.get(m.internetMessageId.slice(1, -1).toLowerCase());
        assertEquals(record?.state, "skipped");
        reasons.push(record!.reason);
        assertEquals(h.graph.messages.get(m.id)!.categories, [], "skipped mail is left as it is");
      }
      assertEquals(reasons, [
        "automatic reply (Auto-Submitted: auto-replied)",
        "bulk mail (Precedence: bulk)",
        "delivery status report",
        "sent by the bridge itself",
        "sender spam@bad.example is blocked",
        "sender x@blocked.example is blocked",
        "sender domain elsewhere.example is not allowed",
        `sent from the bridge's own address ${h.graph.mailbox}`,
        `sent from the bridge's own address ${h.graph.mailbox}`,
        "sent from the bridge's own address support-alias@example.com",
      ]);
      assertEquals(h.graph.messages.get(taken.id)!.categories, ["Jira: SUP-1"]);
      // Its own acknowledgement asks Exchange for no automatic answer (x- headers only there).
      assertEquals(
        h.graph.replies[0]!.headers.find((x) => x.name === "X-Auto-Response-Suppress")?.value,
        "All",
      );
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge: <script>, javascript: links, event handlers and remote tracking images never reach Jira",
  integration,
  async () => {
    for (const deployment of ["cloud", "server"] as const) {
      const h = await startBridge({ deployment });
      try {
        h.graph.deliver({
          from: "ann@example.com",
          subject: "Invoice <script>alert(1)</script>",
          html:
            `<html><head><style>body{x:expression(alert(1))}</style><script>alert("head")</script></head>
          <body onload="steal()"><p>Pay <a href="javascript:alert(document.cookie)">here</a> or
          <a href="JaVaScRiPt&#58;alert(2)">there</a> or <a href="https://ok.example/pay">safe</a>.</p>
          <img src="https://tracker.example/pixel.gif?u=ann" width="1" height="1">
          <img src="http://tracker.example/open.png"><iframe src="https://evil.example"></iframe>
          <svg onload="alert(3)"><script>alert(4)</script></svg><p onclick="x()">end</p></body></html>`,
        });
        await h.sync();
        const issue = [...h.jira.issues.values()][0]!;
        const stored = JSON.stringify(issue.fields.description);
        for (
          const bad of [
            "script",
            "alert",
            "javascript",
            "tracker.example",
            "evil.example",
            "onload",
            "onclick",
            "steal",
            "expression",
          ]
        ) {
          assert(!stored.toLowerCase().includes(bad), `${deployment}: "${bad}" in ${stored}`);
        }
        assertStringIncludes(stored, "https://ok.example/pay");
        assertStringIncludes(stored, "here");
        assertEquals(
          issue.fields.summary,
          "Invoice <script>alert(1)</script>",
          "the summary is plain text: Jira escapes it",
        );
      } finally {
        await h.close();
      }
    }
  },
);

Deno.test(
  "mail bridge faults: a Graph 429 storm and Jira 429/503/500 leave each mail with exactly one issue, marked",
  integration,
  async () => {
    const h = await startBridge();
    try {
      const mails = Array.from({ length: 6 }, (_, i) =>
        h.graph.deliver({
          from: "ann@example.com",
          subject: `Alert ${i}`,
          text: `body ${i}`,
          attachments: [{
            name: `a${i}.txt`,
            contentType: "text/plain",
            isInline: false,
            content: new TextEncoder().encode(`file ${i}`),
            size: 6,
          }],
        }));
      h.graph.fault({ match: /^GET \/v1\.0\//, status: 429, retryAfter: "7", times: 12 });
      h.jira.fault({
        match: /^POST \/rest\/api\/3\/issue$/,
        status: 429,
        retryAfter: "3",
        times: 2,
      });
      h.jira.fault({
        match: /^POST \/rest\/api\/3\/issue\/[^/]+\/attachments$/,
        status: 503,
        retryAfter: "2",
        times: 2,
      });
      // A 500 on create: Jira may or may not have it; the pass stops and the next one reconciles.
      h.jira.fault({ match: /^POST \/rest\/api\/3\/issue$/, status: 500, times: 1 });
      let passes = 0;
      for (;;) {
        passes++;
        try {
          await h.sync();
          break;
        } catch (error) {
          assertMatch((error as Error).message, /Jira answered 500/);
          assert(passes < 3, "a second pass finishes");
        }
      }
      assertEquals(passes, 2);
      for (const m of mails) {
        assertEquals(h.jira.issuesForMessage(m.internetMessageId).length, 1, m.subject);
        const key = h.jira.issuesForMessage(m.internetMessageId)[0]!.key;
        assertEquals(h.jira.issues.get(key)!.attachments.length, 1);
        assertEquals(h.graph.messages.get(m.id)!.categories, [`Jira: ${key}`]);
      }
      assertEquals(h.jira.issues.size, 6);
      // Retry-After was honoured: Graph's 7 s, Jira's 3 s and 2 s.
      for (const ms of [7000, 3000, 2000]) {
        assert(
          h.sleeps.includes(ms),
          `waited ${ms} ms: ${h.sleeps}`,
        );
      }
      assert(h.tracker.stats.throttled >= 4 && h.mailbox.stats.throttled >= 12);
      assert(
        h.graph.maxInFlight <= 4,
        `at most 4 Graph requests at once (saw ${h.graph.maxInFlight})`,
      );
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge: an expired delta position (410) reads the folder again without duplicating anything",
  integration,
  async () => {
    const h = await startBridge();
    try {
      for (let i = 0; i < 7; i++) {
        h.graph.deliver({
          from: "ann@example.com",
          subject: `M${i}`,
          text: "x",
        });
      }
      await h.sync();
      assertEquals(h.jira.issues.size, 7);
      h.graph.expireDeltaTokens();
      h.graph.deliver({ from: "bob@example.com", subject: "after expiry", text: "y" });
      await h.sync();
      assertEquals(h.jira.issues.size, 8);
      assert(h.graph.seen(/\/messages\/delta$/).length > 3);
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge: attachments over Jira's limit are listed in the issue, not dropped silently; large ones stream",
  integration,
  async () => {
    const h = await startBridge();
    try {
      h.jira.uploadLimit = 1024 * 1024;
      h.jira.keepAttachments = false;
      h.graph.deliver({
        from: "ann@example.com",
        subject: "Big files",
        text: "see attached",
        attachments: [
          {
            name: "huge.iso",
            contentType: "application/octet-stream",
            isInline: false,
            size: 3 * 1024 * 1024,
          },
          {
            name: "fits.bin",
            contentType: "application/octet-stream",
            isInline: false,
            size: 1000 * 1024,
          },
        ],
      });
      await h.sync();
      const issue = h.jira.issues.get("SUP-1")!;
      assertEquals(issue.attachments.map((a) => [a.filename, a.size]), [["fits.bin", 1000 * 1024]]);
      assertStringIncludes(textOf(issue.fields.description), "huge.iso (3.0 MB)");
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge: a mail Jira refuses for good becomes a dead letter; retrying after the fix bridges it once",
  integration,
  async () => {
    const h = await startBridge({ bridge: { projects: "ops@example.com = OPS" } });
    try {
      h.jira.projects.delete("OPS");
      const m = h.graph.deliver({
        from: "ann@example.com",
        subject: "For ops",
        text: "x",
        to: ["ops@example.com"],
      });
      const ok = h.graph.deliver({ from: "ann@example.com", subject: "For support", text: "y" });
      await h.sync();
      const failed = [];
      for await (const f of h.ledger.failed()) failed.push(f.record);
      assertEquals(failed.map((r) => r.messageId), [m.internetMessageId]);
      assertStringIncludes(failed[0]!.error!, "project: valid project is required");
      assertEquals(h.graph.messages.get(m.id)!.categories, [], "not marked");
      assertEquals(
        h.jira.issuesForMessage(ok.internetMessageId).length,
        1,
        "the other mail went through",
      );
      await h.sync();
      assertEquals(h.jira.issues.size, 1, "a dead letter waits for --retry-failed");
      h.jira.projects.set("OPS", ["Task"]);
      assertEquals(await h.bridge.retryFailed(), 1);
      assertEquals(h.jira.issuesForMessage(m.internetMessageId).map((i) => i.key), ["OPS-1"]);
      assertEquals(h.graph.messages.get(m.id)!.categories, ["Jira: OPS-1"]);
    } finally {
      await h.close();
    }
  },
);

Deno.test(
  "mail bridge: an expired Graph token (401) is renewed once and the pass goes on",
  integration,
  async () => {
    const h = await startBridge();
    try {
      h.graph.deliver({ from: "ann@example.com", subject: "one", text: "x" });
      await h.sync();
      h.graph.revokeTokens();
      h.graph.deliver({ from: "ann@example.com", subject: "two", text: "x" });
      await h.sync();
      assertEquals(h.jira.issues.size, 2);
      assertEquals(h.graph.tokensIssued.length, 2);
    } finally {
      await h.close();
    }
  },
);
