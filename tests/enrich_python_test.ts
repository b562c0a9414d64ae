/**
 * The SecureChange Request Add-on's Python integrations, run unchanged by `agent enrich` with
 * Debian's python3, in the add-on's own layout (bin/integrations/*.py, integration_config.txt,
 * lib/ for dependencies): each fails alone when it sleeps, exits, prints garbage, raises or
 * hoards memory, and the others' sections are posted.
 */
import { join } from "node:path";
import { tempDir } from "./support/temp.ts";
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { runAgent } from "./support/cli.ts";

const TICKET = new URL("../scripts/demo/ticket.json", import.meta.url).pathname;

/** Shaped like the published integrations (the add-on's Infoblox one). */
const LOOKUP = `import configparser
import os
import sys

script_path = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "../.."))
sys.path.append(os.path.join(script_path, "lib"))
import ipam_client  # from the add-on's lib/

config = configparser.ConfigParser()
config.read(os.path.join(script_path, "bin", "integrations", "integration_config.txt"))
URL = config.get("Lookup", "url").strip('"')


def get_data(ticket_info, logger):
    logger.info("looking up %d requests" % len(ticket_info["Requests"]))
    print("garbage that must not become the result")
    lines = []
    for request in ticket_info["Requests"]:
        for source in request["Sources"][:2]:
            lines.append(ipam_client.owner(URL, source["Ip"]))
    return "Ticket %s (%s): %s" % (ticket_info["Id"], ticket_info["WorkflowName"], "; ".join(lines))
`;

const PLUGINS: Record<string, string> = {
  lookup: LOOKUP,
  nothing: "def get_data(ticket_info, logger):\n    return None\n",
  sleeper:
    "import time\n\ndef get_data(ticket_info, logger):\n    time.sleep(60)\n    return 'late'\n",
  exiter: "import os\n\ndef get_data(ticket_info, logger):\n    os._exit(3)\n",
  printer: "import os, sys\n\ndef get_data(ticket_info, logger):\n" +
    '    sys.stdout.write(\'{"ok": true, "text": "forged"}\\n\')\n' +
    '    os.write(1, b\'{"ok": true, "text": "forged too"}\\n\')\n' +
    "    return 'printer says hello'\n",
  raiser: "def get_data(ticket_info, logger):\n    raise ValueError('the IPAM said no')\n",
  hog: "def get_data(ticket_info, logger):\n    blocks = []\n    while True:\n" +
    "        blocks.append(bytearray(50 * 1024 * 1024))\n",
};

async function addon(): Promise<{ root: string; integrations: string }> {
  const root = await tempDir({ prefix: "request-addon-" });
  const integrations = join(root, "bin", "integrations");
  await Deno.mkdir(integrations, { recursive: true });
  await Deno.mkdir(join(root, "lib", "ipam_client"), { recursive: true });
  await Deno.writeTextFile(
    join(root, "lib", "ipam_client", "__init__.py"),
    "def owner(url, ip):\n    return '%s belongs to the NOC (%s)' % (ip, url)\n",
  );
  await Deno.writeTextFile(
    join(integrations, "integration_config.txt"),
    '[Lookup]\nurl = "https://ipam.example.com/api"\n',
  );
  for (const [name, text] of Object.entries(PLUGINS)) {
    await Deno.writeTextFile(join(integrations, `${name}.py`), text);
  }
  return { root, integrations };
}

Deno.test({
  name: "Python integrations of the Request Add-on run unchanged; sleeping, exiting, printing, " +
    "raising and hoarding ones fail alone and the others' sections are posted",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { integrations } = await addon();
    const dir = await tempDir();
    const file = join(dir, "app.config");
    await Deno.writeTextFile(
      file,
      `[agent]\nstore = ${dir}/agent.kv\n[securechange]\nurl = https://sc.example.com\n` +
        `username = u\npassword = p\n[enrich]\npython = /usr/bin/python3\n` +
        `integrations_dir = ${integrations}\n` +
        "integrations = address_classification, lookup, nothing, sleeper, exiter, printer, raiser, hog\n" +
        "timeout_seconds = 3\npost_errors = true\nmax_memory_mb = 300\n",
      { mode: 0o600 },
    );
    const run = await runAgent([
      "enrich",
      "--ticket-file",
      TICKET,
      "--config",
      file,
      "--log-format",
      "json",
    ]);
    assertEquals(run.code, 0, run.stderr);
    const comment = run.stdout;
    // The published shape works: lib/ imports, integration_config.txt, ticket_info's keys.
    assertStringIncludes(comment, "belongs to the NOC (https://ipam.example.com/api)");
    assertStringIncludes(comment, "Ticket 42 (");
    assertStringIncludes(comment, "printer says hello");
    assert(!comment.includes("forged"), "printed text cannot pass for the result");
    assert(!comment.includes("must not become the result"));
    // The built-in's section is there too.
    assertStringIncludes(comment, "== Address classification ==");
    // Each failure alone, with its reason (post_errors).
    assertStringIncludes(comment, "did not finish within 3 s");
    assertStringIncludes(comment, "exited (code 3) without an answer");
    assertStringIncludes(comment, "ValueError: the IPAM said no (raiser.py:2)");
    assert(/out of memory|MemoryError|killed/.test(comment), comment);
    // The logger's records and the prints reach the agent's log.
    const lines = run.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    assert(lines.some((l) => l.message.includes("looking up")), "the logger's record");
    assert(lines.some((l) => l.message.includes("garbage that must not become the result")));
  },
});

Deno.test("[enrich] python other than the interpreter the agent may run is refused, naming the key", async () => {
  const { integrations } = await addon();
  const dir = await tempDir();
  const file = join(dir, "app.config");
  await Deno.writeTextFile(
    file,
    `[securechange]\nurl = https://sc.example.com\nusername = u\npassword = p\n` +
      `[enrich]\npython = /usr/local/bin/python9\nintegrations_dir = ${integrations}\n`,
  );
  const run = await runAgent(["enrich", "--ticket-file", TICKET, "--config", file]);
  assertEquals(run.code, 2, run.stderr);
  assertStringIncludes(run.stderr, "enrich.python");
  assertStringIncludes(run.stderr, "/usr/local/bin/python9");
});

Deno.test({
  name: "agent enrich new writes a plugin whose own test passes as written; agent enrich list " +
    "loads every integration (built-in, JavaScript, Python) and names the ones that would not",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { integrations } = await addon();
    const dir = await tempDir();
    const file = join(dir, "app.config");
    await Deno.writeTextFile(
      file,
      `[agent]\nstore = ${dir}/agent.kv\n[securechange]\nurl = https://sc.example.com\n` +
        `username = u\npassword = p\n[enrich]\npython = /usr/bin/python3\n` +
        `integrations_dir = ${integrations}\n`,
    );
    const made = await runAgent(["enrich", "new", "wide_sources", "--config", file]);
    assertEquals(made.code, 0, made.stderr);
    assertStringIncludes(made.stdout, "wide_sources_test.ts");
    const test = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-read", "wide_sources_test.ts"],
      cwd: integrations,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(test.stdout) + new TextDecoder().decode(test.stderr);
    assertEquals(test.code, 0, text);
    assertStringIncludes(text, "2 passed");
    const again = await runAgent(["enrich", "new", "wide_sources", "--config", file]);
    assertEquals(again.code, 1);
    assertStringIncludes(again.stderr, "already exists");

    await Deno.writeTextFile(join(integrations, "broken.js"), "export const nothing = 1;\n");
    await Deno.writeTextFile(join(integrations, "bad_syntax.py"), "def get_data(:\n");
    const list = await runAgent(["enrich", "list", "--json", "--config", file]);
    assertEquals(list.code, 1, list.stderr);
    const found = (JSON.parse(list.stdout) as {
      integrations: { name: string; kind: string; ok: boolean; problem?: string }[];
    }).integrations;
    const by = (name: string) => found.find((i) => i.name === name)!;
    assertEquals([by("address_classification").kind, by("address_classification").ok], [
      "built-in",
      true,
    ]);
    assertEquals([by("wide_sources").kind, by("wide_sources").ok], ["javascript", true]);
    assertEquals([by("lookup").kind, by("lookup").ok], ["python", true]);
    assertEquals(by("broken").ok, false);
    assertStringIncludes(by("broken").problem!, "getData");
    assertEquals(by("bad_syntax").ok, false);
    assertStringIncludes(by("bad_syntax").problem!, "SyntaxError");
    assert(!found.some((i) => i.name.endsWith("_test")), "tests are not integrations");
  },
});
