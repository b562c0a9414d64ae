/**
 * `deno task demo`: the agent's main job on embedded defaults, with no external system.
 * 1. Checks config.example.ini and says what `agent run` would start with it.
 * 2. Calendar: replays bundled SOAR task messages (owner assigned, due date changed,
 *    owner changed, group owner, no owner, task closed, a broken message) through the
 *    calendar processor; REST answers come from a fixture file, and the invites are
 *    written as .eml files to a temporary outbox, which the demo then shows.
 * 3. Your own processor: lists the sample processor (examples/processors/add_note.ts) and
 *    replays a menu-item action through it, in its sandbox, against the REST fixtures.
 * 4. Enrich: runs the SecureChange trigger on a bundled ticket (IP, range, DNS and ANY
 *    sources; TCP, predefined and ANY services) with the built-in integrations, each in its
 *    sandbox, and (with /usr/bin/python3) a Request Add-on Python integration from
 *    scripts/demo/addon, and prints the comment it would post.
 * 5. Mail bridge: bundled .eml files (a new request with HTML, a table, an attachment and
 *    hostile bits; a reply; an out-of-office; a newsletter) through `agent mail-bridge
 *    --once` on the embedded defaults: issues as JSON files, the acknowledgement as .eml.
 * 6. The way back: a comment added to the issue goes to the sender as a reply in their
 *    thread (an .eml in the outbox with In-Reply-To).
 * 7. Ticket API: `agent ticket-api` on the same issues, briefly: a token, a ticket created
 *    and read back, a search that finds the bridged mail, a request without a token.
 */
import { SELF_RUN_FLAGS } from "../mod/cli/permissions.ts";

const root = new URL("..", import.meta.url).pathname;
const demo = `${root}scripts/demo`;

async function agent(args: string[], cwd = root): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...SELF_RUN_FLAGS, `${root}main.ts`, ...args],
    cwd,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

/** Bold on a terminal, unless NO_COLOR says no (https://no-color.org). */
const bold = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");

function heading(text: string): void {
  console.log(bold ? `\n\x1b[1m== ${text}\x1b[0m` : `\n== ${text}`);
}

heading("agent config check --config config.example.ini");
const check = await agent(["config", "check", "--config", "config.example.ini"]);
console.log(check.stdout.trim());
console.log(
  "\nWith this config, `agent run` would start: calendar (queue taskcalendar on the [resilient] platform);",
);
console.log("SecureChange would run `agent enrich` as its trigger script.");

heading("Calendar: SOAR task messages -> calendar invites (agent replay)");
const work = await Deno.makeTempDir({ prefix: "agent-demo-" });
try {
  await Deno.copyFile(`${demo}/app.config`, `${work}/app.config`);
  const files = [...Deno.readDirSync(`${demo}/actions`)].map((e) => `${demo}/actions/${e.name}`)
    .sort();
  const replay = await agent([
    "replay",
    ...files,
    "--processor",
    "calendar",
    "--config",
    `${work}/app.config`,
    "--rest-fixtures",
    `${demo}/rest.json`,
    "--log-level",
    "error",
  ], work);
  for (const line of replay.stdout.trim().split("\n")) {
    const { file, reply } = JSON.parse(line);
    const name = file.split("/").pop().replace(".json", "");
    const kind = reply.message_type === 0 ? "info " : "ERROR";
    console.log(`  ${name.padEnd(22)} ${kind} ${reply.message.replaceAll(work + "/", "")}`);
  }
  const mails = [...Deno.readDirSync(`${work}/outbox`)].map((e) => e.name).sort();
  heading(`${mails.length} invites written to the outbox`);
  for (const mail of mails) console.log(`  ${mail}`);
  const first = await Deno.readTextFile(`${work}/outbox/${mails[0]}`);
  const ics = /BEGIN:VCALENDAR[\s\S]*?END:VCALENDAR/.exec(first)?.[0] ?? "(no calendar part found)";
  heading(`The calendar part of ${mails[0]}`);
  console.log(ics.split("\r\n").map((l) => `  ${l}`).join("\n"));
  console.log(
    "\nEach task keeps one UID; SEQUENCE grows with every update, the old owner gets a CANCEL,",
  );
  console.log("and the broken message got an error reply instead of crashing anything.");
  if (replay.code !== 0 && replay.code !== 1) Deno.exit(replay.code);
} finally {
  await Deno.remove(work, { recursive: true });
}

heading("Your own processor: examples/processors/add_note.ts (agent actions list, agent replay)");
const own = await Deno.makeTempDir({ prefix: "agent-demo-" });
try {
  await Deno.writeTextFile(
    `${own}/app.config`,
    (await Deno.readTextFile(`${demo}/app.config`)).replace(
      "[agent]\n",
      `[agent]\nprocessors_dir = ${root}examples/processors\n`,
    ) + "\n[add_note]\nprefix = [SOC]\n",
  );
  const list = await agent(["actions", "list", "--config", `${own}/app.config`], own);
  console.log(list.stdout.trim().split("\n").map((l) => `  ${l}`).join("\n"));
  const replay = await agent([
    "replay",
    `${demo}/add_note.json`,
    "--processor",
    "add_note",
    "--config",
    `${own}/app.config`,
    "--rest-fixtures",
    `${demo}/rest.json`,
    "--log-level",
    "error",
  ], own);
  const { reply } = JSON.parse(replay.stdout);
  console.log(`  menu item "Add note" on incident 2095 -> ${reply.message}`);
  console.log(
    "\nIt ran in its own sandbox; its REST calls went through the agent with the message's context",
  );
  console.log('token. "agent actions new NAME" scaffolds one like it, with a passing test.');
  if (replay.code !== 0) Deno.exit(replay.code);
} finally {
  await Deno.remove(own, { recursive: true });
}

heading("Enrich: SecureChange ticket 42 -> one comment (agent enrich --ticket-file)");
// With Debian's python3, one of the Request Add-on's Python integrations runs beside the
// built-ins, unchanged, from the add-on's own layout (scripts/demo/addon).
const python = await Deno.stat("/usr/bin/python3").then(() => true, () => false);
const enrichConfig = await Deno.makeTempFile({ prefix: "agent-demo-enrich-", suffix: ".ini" });
await Deno.chmod(enrichConfig, 0o600);
await Deno.writeTextFile(
  enrichConfig,
  (await Deno.readTextFile(`${root}config.example.ini`)).replace(
    "integrations = address_classification, risky_services\n",
    python
      ? "integrations = address_classification, risky_services, asset_owner\n" +
        `integrations_dir = ${demo}/addon/bin/integrations\npython = /usr/bin/python3\n`
      : "integrations = address_classification, risky_services\n",
  ),
);
if (!python) console.log("  (no /usr/bin/python3 here: the Python integration is left out)");
const enrich = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    ...SELF_RUN_FLAGS,
    `${root}main.ts`,
    "enrich",
    "--ticket-file",
    `${demo}/ticket.json`,
    "--config",
    enrichConfig,
    "--log-level",
    "error",
  ],
  cwd: root,
  env: { SCW_EVENT: "CREATE", NO_COLOR: "1" },
  stdout: "piped",
  stderr: "inherit",
}).output();
console.log(
  new TextDecoder().decode(enrich.stdout).trim().split("\n").map((l) => `  ${l}`).join("\n"),
);
await Deno.remove(enrichConfig);
if (!enrich.success) Deno.exit(enrich.code);

heading("Mail bridge: a mailbox of .eml files -> issues (agent mail-bridge --once)");
const mail = await Deno.makeTempDir({ prefix: "agent-demo-" });
try {
  await Deno.writeTextFile(
    `${mail}/app.config`,
    `[agent]\nstore = demo.kv\n\n[mail_bridge]\nmail_dir = ${demo}/mail\nissues_dir = issues\n` +
      "categories = network, general\n",
  );
  const bridge = await agent(
    ["mail-bridge", "--once", "--config", `${mail}/app.config`, "--log-format", "text"],
    mail,
  );
  console.log(`  ${bridge.stdout.trim()}`);
  const issue = JSON.parse(await Deno.readTextFile(`${mail}/issues/MAIL-1.json`));
  heading(
    `${issue.key} "${issue.summary}" (labels ${
      issue.labels.filter((l: string) => !/^mail-[0-9a-f]{20}$/.test(l)).join(", ")
    }; priority ${issue.priority})`,
  );
  console.log(issue.description.split("\n").map((l: string) => `  ${l}`).join("\n"));
  console.log(
    `\n  attachments: ${issue.attachments.map((a: { filename: string }) => a.filename).join(", ")}`,
  );
  for (const c of issue.comments) {
    console.log(`  comment ${c.id}: ${c.body.replaceAll("\n\n", " ")}`);
  }
  const acks = [...Deno.readDirSync(`${mail}/issues/outbox`)].map((e) => e.name);
  console.log(`  acknowledgement mail: ${acks.join(", ")}`);
  console.log(
    "\nThe script, the javascript: link and the tracking pixel are gone; the reply lost its quote and",
  );
  console.log("signature; the out-of-office and the newsletter were skipped (loop protection).");
  if (bridge.code !== 0) Deno.exit(bridge.code);

  heading("The way back: a comment on MAIL-1 -> a reply in the sender's thread");
  // A person comments on the issue (with the embedded tracker, in its file).
  const file = `${mail}/issues/MAIL-1.json`;
  const saved = JSON.parse(await Deno.readTextFile(file));
  saved.comments.push({
    id: String(saved.comments.length + 1),
    author: "Dana Desk <dana@example.com>",
    body: "Both VPN concentrators are back up.\n\nPlease try again and tell us if it works.",
    properties: {},
    created: new Date().toISOString(),
  });
  await Deno.writeTextFile(file, JSON.stringify(saved, null, 2));
  const back = await agent(
    ["mail-bridge", "--once", "--config", `${mail}/app.config`, "--log-format", "text", "-q"],
    mail,
  );
  console.log(`  ${back.stdout.trim()}`);
  const replyFile = [...Deno.readDirSync(`${mail}/issues/outbox`)].map((e) => e.name)
    .find((n) => n.startsWith("comment"));
  if (!replyFile) {
    console.error("no reply was written");
    Deno.exit(1);
  }
  const replyText = await Deno.readTextFile(`${mail}/issues/outbox/${replyFile}`);
  for (const header of ["To", "Subject", "In-Reply-To", "Auto-Submitted", "X-Agent-Mail-Bridge"]) {
    const line = new RegExp(`^${header}: .*$`, "mi").exec(replyText)?.[0];
    if (line) console.log(`  ${line}`);
  }
  console.log("  (the comment's text is the body; the bridge never reads its own mail back)");

  heading("Ticket API: the same issues over REST (agent ticket-api, briefly)");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await Deno.writeTextFile(
    `${mail}/app.config`,
    `\n[ticket_api]\nlisten = 127.0.0.1:${port}\n`,
    { append: true },
  );
  const token = (await agent(
    ["ticket-api", "token", "create", "demo", "--config", `${mail}/app.config`, "-q"],
    mail,
  )).stdout.trim();
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SELF_RUN_FLAGS, `${root}main.ts`, "ticket-api", "--config", "app.config"],
    cwd: mail,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const base = `http://127.0.0.1:${port}/api/tickets/v1`;
    for (let i = 0; i < 100; i++) {
      try {
        await (await fetch(`${base}/openapi.json`)).body?.cancel();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const auth = { authorization: `Bearer ${token}` };
    console.log(
      `  token "demo": ${token.slice(0, 9)}... (printed once by "agent ticket-api token create")`,
    );
    const created = await fetch(`${base}/tickets`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", "idempotency-key": "demo-1" },
      body: JSON.stringify({
        title: "Badge reader at gate 3 rejects every card",
        body: "Since 07:30 nobody gets in through gate 3.",
        reporter: "carol@example.com",
        category: "general",
        priority: "high",
      }),
    });
    const ticket = await created.json();
    console.log(`  POST /tickets -> ${created.status} ${ticket.key} "${ticket.summary}"`);
    const read = await fetch(`${base}/tickets/${ticket.key}`, { headers: auth });
    const back = await read.json();
    console.log(
      `  GET /tickets/${ticket.key} -> ${read.status}: reporter ${back.reporter.emailAddress}, ` +
        `labels ${back.labels.join(", ")}, priority ${back.priority.name}`,
    );
    const search = await fetch(`${base}/tickets?q=vpn`, { headers: auth });
    const found = await search.json() as { key: string; summary: string }[];
    console.log(
      `  GET /tickets?q=vpn -> ${found.map((t) => `${t.key} "${t.summary}"`).join(", ")} ` +
        "(the bridged mail)",
    );
    const anonymous = await fetch(`${base}/tickets`);
    console.log(
      `  GET /tickets without a token -> ${anonymous.status} ${(await anonymous.json()).title}`,
    );
    console.log(`  Swagger UI (while it runs): ${base}/   OpenAPI: ${base}/openapi.json`);
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
} finally {
  await Deno.remove(mail, { recursive: true });
}
