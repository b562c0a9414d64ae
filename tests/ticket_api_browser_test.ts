/**
 * The Swagger UI in a real browser: Debian's chromium, headless, driven over CDP by
 * puppeteer-core. `agent ticket-api` runs as its own process against the fake Jira; the
 * browser opens the UI, sees the operations, authorizes with a token made by
 * `agent ticket-api token create`, executes "create ticket", and the fake Jira holds it.
 */
import puppeteer from "puppeteer-core";
import { tempDir } from "./support/temp.ts";
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { freePort } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { runAgent, spawnAgent } from "./support/cli.ts";
import { FakeJira, jiraSection } from "./support/fake_jira.ts";
import { recordOutput } from "./support/suite_log.ts";
import { waitUntil } from "./support/wait.ts";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

Deno.test({
  name: "Swagger UI in chromium: the operations are listed, Authorize takes a token, " +
    '"create ticket" executed from the page makes the issue in Jira',
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert(CHROMIUM, "chromium is not installed (scripts/test installs it from Debian)");
    const pki = await testPki();
    const jira = await new FakeJira("cloud").start();
    const dir = await tempDir({ prefix: "ticket-api-browser-" });
    const port = freePort();
    const configFile = join(dir, "app.config");
    await Deno.writeTextFile(
      configFile,
      `[agent]\nstore = ${dir}/agent.kv\n${jiraSection(jira, pki.caCertFile)}` +
        `[mail_bridge]\ncategories = general, network\ndefault_category = general\n` +
        `[ticket_api]\nlisten = 127.0.0.1:${port}\n`,
      { mode: 0o600 },
    );
    const made = await runAgent([
      "ticket-api",
      "token",
      "create",
      "browser",
      "--config",
      configFile,
    ], {
      record: false,
    });
    assertEquals(made.code, 0, made.stderr);
    const token = made.stdout.trim();
    const agent = spawnAgent(["ticket-api", "--config", configFile]);
    const output = agent.output();
    const base = `http://127.0.0.1:${port}/api/tickets/v1`;
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    try {
      await waitUntil("the ticket API listens", async () => {
        try {
          return (await fetch(`${base}/openapi.json`)).ok;
        } catch {
          return false;
        }
      });
      const page = await browser.newPage();
      const external: string[] = [];
      page.on("request", (request) => {
        const url = request.url();
        if (!url.startsWith(`http://127.0.0.1:${port}/`) && !url.startsWith("data:")) {
          external.push(url);
        }
      });
      await page.goto(`${base}/`, { waitUntil: "networkidle0" });
      await page.waitForSelector("#operations-tickets-createTicket", { timeout: 20_000 });
      const operations = await page.$$eval(
        ".opblock",
        (blocks) => blocks.map((b) => b.id),
      );
      for (const id of ["createTicket", "searchTickets", "getTicket", "commentTicket"]) {
        assert(operations.includes(`operations-tickets-${id}`), `${id} in ${operations}`);
      }

      // Authorize with the bearer token.
      await page.click(".btn.authorize");
      await page.waitForSelector(".modal-ux input");
      await page.type(".modal-ux input", token);
      await page.click(".modal-ux .auth-btn-wrapper .btn.modal-btn.auth.authorize");
      await page.click(".modal-ux .btn-done");

      // Create a ticket from the page.
      await page.click("#operations-tickets-createTicket .opblock-summary-control");
      await page.waitForSelector("#operations-tickets-createTicket .try-out__btn");
      await page.click("#operations-tickets-createTicket .try-out__btn");
      const editor = "#operations-tickets-createTicket textarea.body-param__text";
      await page.waitForSelector(editor);
      await page.$eval(editor, (el) => (el as unknown as { select(): void }).select());
      await page.keyboard.press("Backspace");
      await page.type(
        editor,
        JSON.stringify({
          title: "Filed from the Swagger UI",
          body: "The browser test made this ticket.",
          reporter: "ann@example.com",
          category: "network",
        }),
      );
      await page.click("#operations-tickets-createTicket .btn.execute");
      await page.waitForSelector(
        "#operations-tickets-createTicket .live-responses-table tbody .response-col_status",
        { timeout: 20_000 },
      );
      const status = await page.$eval(
        "#operations-tickets-createTicket .live-responses-table tbody .response-col_status",
        (el) => el.textContent?.trim(),
      );
      assertEquals(status, "201");
      const issues = [...jira.issues.values()];
      assertEquals(issues.map((i) => i.fields.summary), ["Filed from the Swagger UI"]);
      assertEquals(issues[0]!.fields.labels, ["ticket-api", "network"]);
      // The page needs nothing from outside (no CDN): it works offline.
      assertEquals(external, []);
    } finally {
      await browser.close();
      agent.kill("SIGTERM");
      await jira.stop();
    }
    const { stderr } = await output;
    const log = new TextDecoder().decode(stderr);
    recordOutput("ticket_api_browser_test agent ticket-api", log);
    assert(!log.includes(token), "the token reached the log");
    const lines = log.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const created = lines.find((l) =>
      l.properties?.method === "POST" && l.properties?.status === 201
    );
    assertEquals(created?.properties?.client, "browser", "the access log names the token");
    assertStringIncludes(log, "1 token(s)");
  },
});
