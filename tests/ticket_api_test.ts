/**
 * The ticket service (`agent ticket-api`) over HTTP against the fake Jira, both flavours:
 * auth, validation, media types, size caps, cursor pagination, multipart attachments,
 * idempotency, Jira's throttling passed on, hostile values, the ledger routes, and the
 * OpenAPI document (validated, and the same routes as the server answers).
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { startTicketApi, type TicketApiHarness } from "./support/ticket_api.ts";
import { Ledger, type MailRecord } from "../mod/mail_bridge/ledger.ts";
import { DEAD_LETTER_PREFIX } from "../mod/action_module/listener.ts";
import { TOKEN_CACHE_MS } from "../mod/ticket_api/tokens.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };
type Json = Record<string, unknown>;

const NEW = {
  title: "Printer on fire",
  body: "The printer on floor 2 is on fire.\n\nPlease send help.",
  reporter: "ann@example.com",
};

async function withApi(
  flavour: "cloud" | "server",
  fn: (h: TicketApiHarness) => Promise<void>,
  extra = "",
) {
  const h = await startTicketApi(flavour, extra);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

function problemOf(r: { status: number; headers: Headers; body: unknown }, status: number) {
  assertEquals(r.status, status, JSON.stringify(r.body));
  assertEquals(r.headers.get("content-type"), "application/problem+json");
  const p = r.body as { status: number; title: string; detail?: string; errors?: Json[] };
  assertEquals(p.status, status);
  return p;
}

for (const flavour of ["cloud", "server"] as const) {
  Deno.test(
    `ticket API (${flavour}): create, read, search and comment as the Ticket Manager did`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        assertEquals((await h.call("GET", "/tickets/supported-boards")).body, ["SUP", "OPS"]);
        assertEquals((await h.call("GET", "/tickets/supported-categories")).body, [
          "general",
          "network",
        ]);
        const created = await h.call("POST", "/tickets", {
          json: { ...NEW, category: "network", priority: "high", watchers: ["bob@example.com"] },
        });
        assertEquals(created.status, 201, created.text);
        const ticket = created.body as Json;
        assertEquals(ticket.key, "SUP-1");
        assertEquals(ticket.url, `${h.jira.url}/browse/SUP-1`);
        assertEquals(ticket.summary, "Printer on fire");
        assertEquals((ticket.reporter as Json).emailAddress, "ann@example.com");
        assertEquals(ticket.labels, ["ticket-api", "network"]);
        assertEquals(ticket.priority, { name: "High" });
        // In Jira: the reporter is Ann's user, Bob watches, the text is the flavour's.
        const issue = h.jira.issues.get("SUP-1")!;
        assertEquals(
          issue.fields.reporter,
          flavour === "cloud" ? { accountId: "557058:ann" } : { name: "ann" },
        );
        assertEquals(issue.watchers, [flavour === "cloud" ? "557058:bob" : "bob"]);
        if (flavour === "server") {
          assertEquals(
            issue.fields.description,
            "ann@example.com wrote:\n\nThe printer on floor 2 is on fire.\n\nPlease send help.",
          );
        } else assertEquals((issue.fields.description as Json).type, "doc");

        // One ticket, with the extra fields.
        const one = await h.call("GET", "/tickets/SUP-1?fields=rendered&fields=watchers");
        assertEquals(one.status, 200, one.text);
        const full = one.body as Json;
        assertEquals(full.key, "SUP-1");
        assertStringIncludes(String((full.rendered as Json).description), "<p>");
        assertEquals((full.watchers as Json[]).map((w) => w.emailAddress), ["bob@example.com"]);
        assertEquals((await h.call("GET", "/tickets/SUP-99")).status, 404);

        // A comment, then the comments.
        const comment = await h.call("POST", "/tickets/SUP-1/comment", {
          json: { body: "It is out now, thanks.", author: "bob@example.com" },
        });
        assertEquals(comment.status, 201, comment.text);
        const comments = (await h.call("GET", "/tickets/SUP-1/comments")).body as Json[];
        assertEquals(comments.length, 1);
        assertEquals(comments[0]!.postedFor, "bob@example.com");

        // Search: by reporter, by category, by words, by status; nothing for a stranger.
        await h.call("POST", "/tickets", {
          json: { ...NEW, title: "VPN is slow today", reporter: "bob@example.com" },
        });
        const keys = async (query: string) =>
          ((await h.call("GET", `/tickets?${query}`)).body as Json[]).map((t) => t.key);
        assertEquals(await keys(""), ["SUP-2", "SUP-1"]);
        assertEquals(await keys("sort=created"), ["SUP-1", "SUP-2"]);
        assertEquals(await keys("reporter=ann@example.com"), ["SUP-1"]);
        assertEquals(await keys("categories=network"), ["SUP-1"]);
        assertEquals(await keys("q=vpn"), ["SUP-2"]);
        assertEquals(await keys("status=To%20Do&watcher=bob@example.com"), ["SUP-1"]);
        assertEquals(await keys("reporter=nobody@example.com"), []);
        assertEquals(await keys("boards=OPS"), []);
      }),
  );

  Deno.test(
    `ticket API (${flavour}): tokens, validation naming the field, media types, size caps`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        // 401 without or with a wrong token; 403 for a read token writing.
        const anonymous = problemOf(await h.call("GET", "/tickets", { token: null }), 401);
        assertStringIncludes(String(anonymous.detail), "Bearer");
        problemOf(await h.call("GET", "/tickets", { token: "agtk_" + "x".repeat(43) }), 401);
        problemOf(await h.call("GET", "/tickets", { token: "Basic abc" }), 401);
        const readOnly = problemOf(
          await h.call("POST", "/tickets", { token: h.read, json: NEW }),
          403,
        );
        assertStringIncludes(String(readOnly.detail), "reader");
        assertEquals((await h.call("GET", "/tickets", { token: h.read })).status, 200);
        await h.tokens.revoke("reader");
        // The running service remembers a valid token for at most a second (TOKEN_CACHE_MS).
        await new Promise((r) => setTimeout(r, TOKEN_CACHE_MS + 100));
        problemOf(await h.call("GET", "/tickets", { token: h.read }), 401);
        // The UI and the document are public.
        assertEquals((await h.call("GET", "/openapi.json", { token: null })).status, 200);
        const page = await h.call("GET", "/", { token: null });
        assertEquals(page.status, 200);
        assertStringIncludes(page.text, "swagger-ui-bundle.js");
        assertEquals(page.headers.get("x-frame-options"), "DENY");

        // 400 naming each field.
        const bad = problemOf(
          await h.call("POST", "/tickets", {
            json: { title: "Hi", body: "short", reporter: "not-an-address", priority: "urgent" },
          }),
          400,
        );
        assertEquals(bad.errors!.map((e) => e.field).sort(), ["priority", "reporter", "title"]);
        const unknown = problemOf(
          await h.call("POST", "/tickets", { json: { ...NEW, assignee: "x@example.com" } }),
          400,
        );
        assertStringIncludes(String(unknown.detail), "assignee");
        const board = problemOf(
          await h.call("POST", "/tickets", { json: { ...NEW, board: "HR" } }),
          400,
        );
        assertEquals(board.errors, [{
          field: "board",
          message: '"HR" is not a supported board (SUP, OPS)',
        }]);
        problemOf(await h.call("POST", "/tickets", { json: { ...NEW, category: "payroll" } }), 400);
        const notJson = problemOf(
          await h.call("POST", "/tickets", {
            body: "{broken",
            headers: { "content-type": "application/json" },
          }),
          400,
        );
        assertStringIncludes(String(notJson.detail), "not JSON");
        problemOf(await h.call("GET", "/tickets?limit=500"), 400);
        problemOf(await h.call("GET", "/tickets/not-a-key"), 400);
        problemOf(await h.call("GET", "/tickets?fields=secrets"), 400);
        problemOf(await h.call("GET", "/tickets?boards=HR"), 400);

        // 415 for other media types.
        problemOf(
          await h.call("POST", "/tickets", {
            body: "title=x",
            headers: { "content-type": "application/x-www-form-urlencoded" },
          }),
          415,
        );
        problemOf(
          await h.call("POST", "/tickets", {
            body: "x",
            headers: { "content-type": "text/plain" },
          }),
          415,
        );

        // 413 above max_request_mb (1 here): with a length, and streamed without one.
        const big = JSON.stringify({ ...NEW, body: "x".repeat(1_200_000) });
        problemOf(
          await h.call("POST", "/tickets", {
            body: big,
            headers: { "content-type": "application/json" },
          }),
          413,
        );
        const chunks = new TextEncoder().encode(big);
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < chunks.length; i += 65536) {
              controller.enqueue(chunks.slice(i, i + 65536));
            }
            controller.close();
          },
        });
        problemOf(
          await h.call("POST", "/tickets", {
            body: stream,
            headers: { "content-type": "application/json" },
          }),
          413,
        );
        assertEquals(h.jira.issues.size, 0, "nothing reached Jira");
      }, "max_request_mb = 1"),
  );

  Deno.test(
    `ticket API (${flavour}): pagination with an opaque cursor in the Link header`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        for (let n = 1; n <= 5; n++) {
          const r = await h.call("POST", "/tickets", {
            json: { ...NEW, title: `Ticket number ${n}` },
          });
          assertEquals(r.status, 201);
        }
        const seen: string[] = [];
        let next: string | undefined = "/tickets?limit=2&sort=created";
        let pages = 0;
        while (next) {
          const r = await h.call("GET", next);
          assertEquals(r.status, 200, r.text);
          seen.push(...(r.body as Json[]).map((t) => String(t.key)));
          const link = r.headers.get("link");
          next = link ? /^<[^>]*?(\/tickets\?[^>]+)>; rel="next"$/.exec(link)![1] : undefined;
          pages++;
        }
        assertEquals(pages, 3);
        assertEquals(seen, ["SUP-1", "SUP-2", "SUP-3", "SUP-4", "SUP-5"]);
        // A cursor belongs to its search.
        const first = await h.call("GET", "/tickets?limit=2");
        const cursor = /cursor=([^&>]+)/.exec(first.headers.get("link")!)![1];
        const other = problemOf(
          await h.call("GET", `/tickets?limit=2&q=printer&cursor=${cursor}`),
          400,
        );
        assertEquals(other.errors![0]!.field, "cursor");
        problemOf(await h.call("GET", "/tickets?cursor=%%%"), 400);
      }),
  );

  Deno.test(
    `ticket API (${flavour}): multipart attachments reach Jira; Idempotency-Key makes one issue`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        const form = () => {
          const f = new FormData();
          for (const [k, v] of Object.entries(NEW)) f.append(k, v);
          f.append("watchers", "bob@example.com, nobody@example.com");
          f.append(
            "attachments",
            new File([new Uint8Array([1, 2, 3, 4])], "../../etc/passwd.bin"),
          );
          f.append("attachments", new File(["log line\n"], "log.txt", { type: "text/plain" }));
          return f;
        };
        const first = await h.call("POST", "/tickets", {
          body: form(),
          headers: { "idempotency-key": "req-1" },
        });
        assertEquals(first.status, 201, first.text);
        const again = await h.call("POST", "/tickets", {
          body: form(),
          headers: { "idempotency-key": "req-1" },
        });
        assertEquals(again.status, 201);
        assertEquals(again.headers.get("idempotent-replayed"), "true");
        assertEquals((again.body as Json).key, (first.body as Json).key);
        assertEquals(h.jira.issues.size, 1, "one issue for one Idempotency-Key");
        const issue = h.jira.issues.get("SUP-1")!;
        assertEquals(
          issue.attachments.map((a) => [a.filename, [...(a.bytes ?? [])].length]),
          [[".._.._etc_passwd.bin", 4], ["log.txt", 9]],
        );
        assertEquals(issue.watchers.length, 1, "a watcher who is no Jira user is left out");
        // A file name with a NUL cannot even be a multipart header: refused, nothing made.
        const nul = new FormData();
        for (const [k, v] of Object.entries(NEW)) nul.append(k, v);
        nul.append("attachments", new File(["x"], "evil\u0000.exe"));
        const refused = problemOf(await h.call("POST", "/tickets", { body: nul }), 400);
        assertStringIncludes(String(refused.detail), "multipart");
        // The same key for another request is refused; a new key makes a new issue.
        const reused = problemOf(
          await h.call("POST", "/tickets", {
            json: { ...NEW, title: "Something else" },
            headers: { "idempotency-key": "req-1" },
          }),
          422,
        );
        assertEquals(reused.errors![0]!.field, "Idempotency-Key");
        assertEquals(
          (await h.call("POST", "/tickets", { json: NEW, headers: { "idempotency-key": "req-2" } }))
            .status,
          201,
        );
        assertEquals(h.jira.issues.size, 2);
        // Comments too.
        for (let n = 0; n < 2; n++) {
          const c = await h.call("POST", "/tickets/SUP-1/comment", {
            json: { body: "Any news on this?", author: "ann@example.com" },
            headers: { "idempotency-key": "comment-1" },
          });
          assertEquals(c.status, 201, c.text);
        }
        assertEquals(issue.comments.length, 1);
      }),
  );

  Deno.test(
    `ticket API (${flavour}): a crash after Jira made the issue is finished by the retry, not repeated`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        // The first attempt: Jira makes the issue, then its answer is lost (the agent "crashed").
        // (8: every attempt the client makes at a read)
        h.jira.fault({ match: /^GET .*\/issue\/SUP-1$/, status: 500, times: 8 });
        const lost = await h.call("POST", "/tickets", {
          json: NEW,
          headers: { "idempotency-key": "crash-1" },
        });
        assert(lost.status >= 500, lost.text);
        assertEquals(h.jira.issues.size, 1);
        // Jira is back; the client retries with the same key after the first attempt went stale.
        for await (const { key, value } of h.store.list<Json>(["ticket_api", "idem"])) {
          await h.store.set(key, { ...value, at: 0 });
        }
        const retried = await h.call("POST", "/tickets", {
          json: NEW,
          headers: { "idempotency-key": "crash-1" },
        });
        assertEquals(retried.status, 201, retried.text);
        assertEquals((retried.body as Json).key, "SUP-1");
        assertEquals(h.jira.issues.size, 1, "found by its marker label, not made again");
      }),
  );

  Deno.test(
    `ticket API (${flavour}): Jira's 429 is waited out within the deadline, then passed on as 503`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        h.jira.fault({ match: /^POST .*\/issue$/, status: 429, retryAfter: "1", times: 1 });
        assertEquals((await h.call("POST", "/tickets", { json: NEW })).status, 201);
        h.jira.fault({ match: /^POST .*\/issue$/, status: 429, retryAfter: "120", times: 100 });
        const response = await h.call("POST", "/tickets", { json: NEW });
        const throttled = problemOf(response, 503);
        assertStringIncludes(String(throttled.detail), "429");
        // Jira's own Retry-After goes to the client, which may come back then.
        assertEquals(response.headers.get("retry-after"), "120");
        assertEquals(h.jira.issues.size, 1);
      }, "timeout_seconds = 2"),
  );

  Deno.test(
    `ticket API (${flavour}): hostile values stay values (JQL), tickets of other boards stay hidden`,
    integration,
    () =>
      withApi(flavour, async (h) => {
        await h.call("POST", "/tickets", { json: NEW });
        h.jira.projects.set("HR", ["Task"]);
        h.jira.issues.set("HR-1", {
          id: "9",
          key: "HR-1",
          fields: {
            project: { key: "HR" },
            summary: "Salaries",
            labels: ["general"],
            created: new Date().toISOString(),
            status: { name: "To Do" },
          },
          properties: {},
          comments: [],
          attachments: [],
          watchers: [],
          links: [],
          created: new Date().toISOString(),
        });
        for (
          const q of [
            '") OR project = "HR',
            'x" OR project in ("HR") ORDER BY created --',
            '\\") OR (\\"',
            "printer\u0000\r\nAND status = Done",
          ]
        ) {
          const r = await h.call("GET", `/tickets?q=${encodeURIComponent(q)}`);
          assertEquals(r.status, 200, `${q}: ${r.text}`);
          assert((r.body as Json[]).every((t) => String(t.key).startsWith("SUP-")), q);
        }
        const status = await h.call(
          "GET",
          `/tickets?status=${encodeURIComponent('Done" OR project = "HR')}`,
        );
        assertEquals(status.status, 200, status.text);
        assertEquals(status.body, []);
        // Every query the fake received parsed as the agent's own grammar (else: 400 above).
        assert(
          h.jira.jqls.every((q) => q.startsWith('project in ("SUP", "OPS")')),
          h.jira.jqls.join("\n"),
        );
        assertEquals((await h.call("GET", "/tickets/HR-1")).status, 404);
        problemOf(
          await h.call("POST", "/tickets/HR-1/comment", {
            json: { body: "let me in", author: "ann@example.com" },
          }),
          404,
        );
      }),
  );
}

Deno.test(
  "ticket API: the mail bridge's ledger, retrying a dead letter, and the dead letters",
  integration,
  () =>
    withApi("cloud", async (h) => {
      const ledger = new Ledger(h.store, "support@example.com");
      const base: MailRecord = {
        state: "seen",
        mailId: "m1",
        messageId: "<a1@example.com>",
        conversationId: "c1",
        subject: "VPN down",
        from: "ann@example.com",
        receivedAt: "2026-11-30T08:00:00Z",
        attachmentsDone: [],
        attempts: 1,
        history: [],
      };
      await ledger.move("a1@example.com", base, "failed", { error: "Jira refused the payload" });
      await ledger.move(
        "a2@example.com",
        { ...base, messageId: "<a2@example.com>", from: "bob@example.com" },
        "marked",
        { key: "SUP-7", kind: "issue" },
      );
      await ledger.move("a3@example.com", { ...base, messageId: "<a3@example.com>" }, "skipped", {
        reason: "auto-reply",
      });
      await h.store.set([...DEAD_LETTER_PREFIX, "ID:dead-1"], {
        queue: "add_note",
        headers: {},
        bodyBase64: "",
        problem: "the body is not JSON",
        at: Date.now(),
      });
      const mails = (await h.call("GET", "/mails")).body as Json[];
      assertEquals(mails.map((m) => [m.id, m.state]), [
        ["a1@example.com", "failed"],
        ["a2@example.com", "marked"],
        ["a3@example.com", "skipped"],
      ]);
      assertEquals(((await h.call("GET", "/mails?state=marked")).body as Json[])[0]!.key, "SUP-7");
      assertEquals(((await h.call("GET", "/mails?from=bob@example.com")).body as Json[]).length, 1);
      const first = await h.call("GET", "/mails?limit=2");
      assertEquals((first.body as Json[]).length, 2);
      const link = first.headers.get("link")!;
      const rest = await h.call("GET", /<[^>]*?(\/mails\?[^>]+)>/.exec(link)![1]!);
      assertEquals((rest.body as Json[]).map((m) => m.id), ["a3@example.com"]);

      const dead = (await h.call("GET", "/dead-letters")).body as Json[];
      assertEquals(dead.map((d) => [d.kind, d.id, d.reason]), [
        ["action", "ID:dead-1", "the body is not JSON"],
        ["mail", "a1@example.com", "Jira refused the payload"],
      ]);
      assertEquals(
        (await h.call("POST", "/mails/a1@example.com/retry", { token: h.read })).status,
        403,
      );
      const retry = await h.call("POST", "/mails/a1@example.com/retry");
      assertEquals(retry.status, 202, retry.text);
      const asked = [];
      for await (const r of ledger.retryRequests()) asked.push(r.messageKey);
      assertEquals(asked, ["a1@example.com"], "the bridge will handle it on its next pass");
      problemOf(await h.call("POST", "/mails/a2@example.com/retry"), 409);
      problemOf(await h.call("POST", "/mails/nope/retry"), 404);
    }),
);

Deno.test(
  "ticket API: the OpenAPI document is valid 3.1 and lists exactly the routes the server answers",
  integration,
  () =>
    withApi("cloud", async (h) => {
      const doc = (await h.call("GET", "/openapi.json", { token: null })).body as {
        openapi: string;
        paths: Record<string, Record<string, unknown>>;
        components: { securitySchemes: Json };
      };
      assertEquals(doc.openapi, "3.1.0");
      const result = await new Validator().validate(doc as never);
      assert(result.valid, JSON.stringify(result.errors));
      const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)
      ).sort();
      assertEquals(documented, [...h.server.app.routes].sort());
      // Each documented route answers (not 404/405) at its path.
      for (const route of documented) {
        const [method, path] = route.split(" ");
        const concrete = path!.replace("{key}", "SUP-1").replace("{id}", "x@example.com").replace(
          "{file}",
          "swagger-ui.css",
        );
        const r = await h.call(method!, concrete, method === "POST" ? { json: {} } : {});
        assert(
          r.status !== 405 && !(r.status === 404 && /no route/.test(r.text)),
          `${route}: ${r.status} ${r.text}`,
        );
      }
      assertEquals(Object.keys(doc.components.securitySchemes), ["bearer"]);
      assertMatch(JSON.stringify(doc.paths["/tickets"]), /multipart\/form-data/);
    }),
);
