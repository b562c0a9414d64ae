/**
 * The way back: Jira comments go to the sender as replies in their mail thread, against the
 * fake Graph and the fake Jira (both flavours): the right message, the comment's text and
 * its image inline, nothing for internal, restricted, own or marked comments, once per
 * comment across passes, restarts, a webhook delivered twice and an Automation mail.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { startBridge } from "./support/mail_bridge.ts";
import { parseConfig } from "../mod/config/config.ts";
import { ticketApp, verifyWebhook } from "../mod/ticket_api/app.ts";
import { TicketService } from "../mod/ticket_api/tickets.ts";
import { Tokens } from "../mod/ticket_api/tokens.ts";
import { createHmac } from "node:crypto";

const integration = { sanitizeOps: false, sanitizeResources: false };
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 9, 9]);

for (const deployment of ["cloud", "server"] as const) {
  Deno.test(
    `way back (${deployment}): a public comment is one reply in the sender's thread with its image; internal, restricted, own and marked comments send nothing`,
    integration,
    async () => {
      const h = await startBridge({ deployment });
      try {
        const first = h.graph.deliver({
          from: "ann@example.com",
          subject: "VPN is down",
          html: "<p>Help</p>",
        });
        await h.sync();
        const answer = h.graph.replyTo(first, {
          from: "ann@example.com",
          subject: "RE: VPN is down",
          html: "<p>Still down</p>",
          uniqueHtml: "<p>Still down</p>",
        });
        await h.sync();
        assertEquals(h.jira.issues.get("SUP-1")!.comments.length, 1, "Ann's answer is a comment");
        const acks = h.graph.replies.length;
        await h.replies(); // the first pass starts the cursor: nothing old is sent
        assertEquals(h.graph.replies.length, acks);

        h.jira.files.set("77", { bytes: PNG, contentType: "image/png" });
        const publicComment = h.jira.commentAs("SUP-1", {
          author: "bob@example.com",
          text: "Restarted the concentrator, please try again.",
          html: "<p>Restarted the <b>concentrator</b>, please try again.</p>" +
            '<p><img src="/secure/attachment/77/shot.png" alt="shot"></p>' +
            '<p><img src="https://tracker.evil.example/pixel.gif"></p>',
        });
        h.jira.commentAs("SUP-1", {
          author: "bob@example.com",
          text: "Internal: user is VIP",
          internal: true,
        });
        h.jira.commentAs("SUP-1", {
          author: "bob@example.com",
          text: "Only for developers",
          visibility: { type: "role", value: "Developers" },
        });
        h.jira.commentAs("SUP-1", {
          author: "bridge@example.com",
          text: "Written by the agent's account",
        });
        h.jira.commentAs("SUP-1", {
          author: "bob@example.com",
          text: "Marked as the bridge's own",
          properties: [{ key: "agent.mail", value: { messageId: "<x@y>" } }],
        });
        await h.replies();
        const sent = h.graph.replies.slice(acks);
        assertEquals(sent.length, 1, JSON.stringify(sent.map((r) => r.body)));
        const reply = sent[0]!;
        // In the thread of Ann's latest mail, to Ann, marked as the bridge's own.
        assertEquals(reply.messageId, answer.internetMessageId);
        assertEquals(reply.to, ["ann@example.com"]);
        assertEquals(reply.cc, []);
        assertEquals(reply.marker, `comment ${publicComment.id}`);
        assert(reply.headers.some((x) => x.name === "X-Agent-Mail-Bridge"), "the bridge's header");
        assertStringIncludes(reply.body, "Restarted the <b>concentrator</b>, please try again.");
        assertStringIncludes(reply.body, "Bob Builder</b> commented on");
        assertStringIncludes(reply.body, `${h.jira.url}/browse/SUP-1`);
        // Jira's image inline as cid:, the remote one (a pixel) not fetched, not shown.
        assertEquals(reply.attachments, [{
          name: "shot.png",
          contentId: `image1.${publicComment.id}@agent`,
          bytes: PNG.length,
        }]);
        assertStringIncludes(reply.body, `src="cid:image1.${publicComment.id}@agent"`);
        assert(!reply.body.includes("evil.example"), reply.body);
        assert(!h.jira.requests.some((r) => r.path.includes("pixel")));

        // Again, and after a restart: nothing more.
        await h.replies();
        await h.restart();
        await h.replies();
        assertEquals(h.graph.replies.length - acks, 1);
      } finally {
        await h.close();
      }
    },
  );
}

Deno.test(
  "way back: reply_cc answers the original Cc's; a comment on an issue not from mail sends nothing",
  integration,
  async () => {
    const h = await startBridge({ bridge: { reply_cc: "true" } });
    try {
      h.graph.deliver({
        from: "ann@example.com",
        subject: "Badge reader",
        html: "<p>Broken</p>",
        cc: ["carol@example.com", h.graph.mailbox],
      });
      await h.sync();
      await h.replies();
      const before = h.graph.replies.length;
      h.jira.commentAs("SUP-1", { author: "bob@example.com", text: "A technician is on the way." });
      // An issue someone made in Jira directly: nobody to answer.
      h.jira.issues.set("SUP-50", {
        ...h.jira.issues.get("SUP-1")!,
        id: "50",
        key: "SUP-50",
        comments: [],
      });
      h.jira.commentAs("SUP-50", { author: "bob@example.com", text: "Not from mail." });
      await h.replies();
      const sent = h.graph.replies.slice(before);
      assertEquals(sent.length, 1);
      assertEquals(sent[0]!.to, ["ann@example.com"]);
      assertEquals(sent[0]!.cc, ["carol@example.com"], "the Cc's, not the bridge's own mailbox");
    } finally {
      await h.close();
    }
  },
);

for (const deployment of ["cloud", "server"] as const) {
  Deno.test(
    `way back (${deployment}): Jira's webhook - a bad signature is 401 and queues nothing; a good one delivered twice is one reply`,
    integration,
    async () => {
      const h = await startBridge({ deployment, bridge: { webhook_secret: "hook-secret-123" } });
      try {
        h.graph.deliver({ from: "ann@example.com", subject: "Printer", html: "<p>Jammed</p>" });
        await h.sync();
        await h.replies();
        // Polling would find the comment too: the cursor is put ahead, so only the webhook can.
        await h.store.set(["replies", "cursor"], new Date(Date.now() + 3600_000).toISOString());
        const comment = h.jira.commentAs("SUP-1", {
          author: "bob@example.com",
          text: "Cleared the jam.",
        });
        const config = parseConfig(h.configText + "\n[ticket_api]\n", {
          file: "x.ini",
          env: () => undefined,
        });
        const app = ticketApp({
          service: new TicketService({
            tracker: h.tracker,
            store: h.store,
            config: config.ticketApi!,
            issueType: "Task",
          }),
          tokens: new Tokens(h.store),
          store: h.store,
          config: config.ticketApi!,
        });
        const body = JSON.stringify({
          webhookEvent: "comment_created",
          issue: { key: "SUP-1" },
          comment: { id: comment.id, body: "Cleared the jam." },
        });
        const post = (headers: Record<string, string>, query = "") =>
          app.fetch(
            new Request(`http://agent/api/tickets/v1/webhooks/jira${query}`, {
              method: "POST",
              headers: { "content-type": "application/json", ...headers },
              body,
            }),
          );
        const sign = (secret: string) =>
          "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
        assertEquals((await post({ "x-hub-signature": sign("wrong") })).status, 401);
        assertEquals((await post({})).status, 401);
        assertEquals((await post({}, "?secret=nope")).status, 401);
        const before = h.graph.replies.length;
        await h.replies();
        assertEquals(h.graph.replies.length, before, "nothing queued by a bad signature");
        assertEquals((await post({ "x-hub-signature": sign("hook-secret-123") })).status, 202);
        assertEquals((await post({}, "?secret=hook-secret-123")).status, 202); // Server/DC's way
        await h.replies();
        await h.replies();
        assertEquals(h.graph.replies.length - before, 1, "one reply for a comment delivered twice");
        assert(verifyWebhook(new TextEncoder().encode(body), "s", sign("s"), undefined));
      } finally {
        await h.close();
      }
    },
  );

  Deno.test(
    `way back (${deployment}): the Ticket Manager's Automation mail queues the comment, is moved out of the inbox, and is one reply`,
    integration,
    async () => {
      const h = await startBridge({ deployment });
      try {
        h.graph.deliver({ from: "ann@example.com", subject: "Laptop", html: "<p>No power</p>" });
        await h.sync();
        await h.replies();
        await h.store.set(["replies", "cursor"], new Date(Date.now() + 3600_000).toISOString());
        const comment = h.jira.commentAs("SUP-1", {
          author: "bob@example.com",
          text: "Bring it to desk 4.",
        });
        const trigger = h.graph.deliver({
          from: "automation@automation.atlassian.com",
          subject: "Comment added",
          headers: { "Auto-Submitted": "auto-generated" },
          html:
            `<p>{&quot;ticket&quot;: &quot;SUP-1&quot;, &quot;id&quot;: &quot;${comment.id}&quot;, ` +
            `&quot;author&quot;: {&quot;emailAddress&quot;: &quot;bob@example.com&quot;}}</p>`,
        });
        const before = h.graph.replies.length;
        await h.sync();
        assertEquals(h.graph.messages.get(trigger.id)!.folder, "deleteditems");
        assertEquals(h.jira.issues.size, 1, "the trigger mail is not an issue");
        await h.replies();
        await h.replies();
        assertEquals(h.graph.replies.length - before, 1);
        assertStringIncludes(h.graph.replies.at(-1)!.body, "Bring it to desk 4.");
      } finally {
        await h.close();
      }
    },
  );
}

Deno.test(
  "way back: a comment on a ticket made through the ticket API goes to its reporter as a new mail",
  integration,
  async () => {
    const h = await startBridge();
    try {
      await h.replies(); // the cursor starts
      const created = await h.tracker.createIssue({
        project: "SUP",
        issueType: "Task",
        summary: "New laptop for Carol",
        description: { type: "doc", version: 1, content: [] },
        labels: ["ticket-api", "general"],
        properties: [],
      });
      await h.store.set(["tickets", created.key], {
        key: created.key,
        source: "api",
        reporter: "carol@example.com",
        created: new Date().toISOString(),
      });
      const comment = h.jira.commentAs(created.key, {
        author: "bob@example.com",
        text: "Ordered, arrives Friday.",
      });
      await h.replies();
      assertEquals(h.graph.replies.length, 1);
      const mail = h.graph.replies[0]!;
      assertEquals(mail.messageId, "", "a new message: there is no thread");
      assertEquals(mail.to, ["carol@example.com"]);
      assertEquals(mail.subject, `RE: [${created.key}] New laptop for Carol`);
      assertEquals(mail.marker, `comment ${comment.id}`);
      assertStringIncludes(mail.body, "Ordered, arrives Friday.");
    } finally {
      await h.close();
    }
  },
);
