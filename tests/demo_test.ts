/**
 * The README's first command, `deno task demo`, runs the agent's main jobs on embedded
 * defaults: it must end well and show each part's result.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./support/assert.ts";
import { recordOutput } from "./support/suite_log.ts";

Deno.test({
  name: "deno task demo: calendar, a processor, enrich, the mail bridge and its way back, " +
    "and the ticket API, all on embedded defaults",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo"],
      cwd: new URL("..", import.meta.url).pathname,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    recordOutput("deno task demo", stdout, stderr);
    assertEquals(out.code, 0, stderr);
    assertMatch(stdout, /invites written to the outbox/);
    assertMatch(stdout, /Note \d+ .*added to incident/);
    // The Request Add-on's Python integration beside the built-ins (Debian's python3).
    assertStringIncludes(stdout, "== asset_owner ==");
    assertStringIncludes(stdout, "10.1.2.3/32 is owned by Payments team");
    assertStringIncludes(stdout, "== Mail bridge");
    assertMatch(stdout, /replies: 1 sent/);
    assertMatch(stdout, /In-Reply-To: <vpn-down-2@mail\.example\.com>/);
    assertMatch(stdout, /Auto-Submitted: auto-replied/);
    assertMatch(stdout, /POST \/tickets -> 201 MAIL-2 "Badge reader at gate 3/);
    assertMatch(stdout, /GET \/tickets\/MAIL-2 -> 200: reporter carol@example.com/);
    assertMatch(stdout, /GET \/tickets\?q=vpn -> MAIL-1/);
    assertMatch(stdout, /without a token -> 401/);
    assertMatch(
      stdout,
      /Swagger UI \(while it runs\): http:\/\/127\.0\.0\.1:\d+\/api\/tickets\/v1\//,
    );
  },
});
