/**
 * One list of keys: what the code reads (mod/config's readers), what the README's config
 * table documents and what `agent config init` writes (the template) are the same keys,
 * section by section.
 */
import { assertEquals } from "./support/assert.ts";
import { CONFIG_TEMPLATE } from "../mod/config/template.ts";

/** The reader function of each section. */
const READERS: Record<string, string[]> = {
  agent: ["readAgent", "readStore"],
  resilient: ["readResilient", "readAuth", "readProxy"],
  taskcalendar: ["readTaskCalendar"],
  securechange: ["readSecureChange"],
  enrich: ["readEnrich"],
  graph: ["readGraph"],
  jira: ["readJira"],
  mail_bridge: ["readMailBridge"],
  ticket_api: ["readTicketApi"],
};

/** Keys each reader function asks its SectionReader for (r.optional("key"), ...). */
async function codeKeys(): Promise<Map<string, Set<string>>> {
  const source = (await Promise.all(
    ["config.ts", "mail.ts", "ticket_api.ts"].map((f) =>
      Deno.readTextFile(new URL(`../mod/config/${f}`, import.meta.url))
    ),
  )).join("\n");
  const functions = new Map<string, string>();
  for (const m of source.matchAll(/\nexport function (\w+)|\nfunction (\w+)/g)) {
    const name = m[1] ?? m[2]!;
    const start = m.index! + 1;
    const end = source.indexOf("\n}\n", start);
    functions.set(name, source.slice(start, end));
  }
  const keys = new Map<string, Set<string>>();
  for (const [section, readers] of Object.entries(READERS)) {
    const set = new Set<string>();
    for (const reader of readers) {
      const body = functions.get(reader) ?? "";
      for (
        const m of body.matchAll(
          /r\.(?:optional|required|withDefault|int|decimal|port|bool|path|pathWithDefault|oneOf|list|raw)\(\s*"([a-z_0-9]+)"/g,
        )
      ) set.add(m[1]!);
      for (const m of body.matchAll(/readTrust\(\s*r,\s*"([a-z_0-9]+)"/g)) set.add(m[1]!);
      for (const m of body.matchAll(/readLevel\(\s*r,\s*"([a-z_0-9]+)"/g)) set.add(m[1]!);
      for (const m of body.matchAll(/trust\("([a-z_0-9]+)"\)/g)) set.add(m[1]!);
      for (const m of body.matchAll(/httpsUrl\(\s*r,\s*"([a-z_0-9]+)"/g)) set.add(m[1]!);
    }
    keys.set(section, set);
  }
  return keys;
}

/** Keys of the README's config table, by section. */
async function readmeKeys(): Promise<Map<string, Set<string>>> {
  const text = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const keys = new Map<string, Set<string>>();
  let section = "";
  for (const line of text.split("\n")) {
    const cells = /^\|([^|]*)\|([^|]*)\|/.exec(line);
    if (!cells) continue;
    const named = /`\[([a-z_<>]+)\]`/.exec(cells[1]!)?.[1];
    if (named) section = named;
    else if (cells[1]!.trim()) continue;
    if (!READERS[section]) continue;
    const set = keys.get(section) ?? new Set<string>();
    for (const m of cells[2]!.matchAll(/`([a-z_0-9]+)`/g)) set.add(m[1]!);
    keys.set(section, set);
  }
  return keys;
}

/** Keys of the template, active or commented out (`#key = value`), by section. */
function templateKeys(): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  let section = "";
  for (const line of CONFIG_TEMPLATE.split("\n")) {
    // A section the template leaves commented out is `#[name]`.
    const header = /^#?\[([a-z_]+)\]/.exec(line);
    if (header) section = header[1]!;
    const key = /^#?([a-z_0-9]+)\s*=/.exec(line);
    if (key && READERS[section]) {
      const set = keys.get(section) ?? new Set<string>();
      set.add(key[1]!);
      keys.set(section, set);
    }
  }
  return keys;
}

Deno.test("the keys the code reads, the README's config table and the template agree, section by section", async () => {
  const code = await codeKeys();
  const readme = await readmeKeys();
  const template = templateKeys();
  const sorted = (set?: Set<string>) => [...(set ?? [])].sort();
  for (const section of Object.keys(READERS)) {
    assertEquals(sorted(readme.get(section)), sorted(code.get(section)), `README [${section}]`);
    assertEquals(sorted(template.get(section)), sorted(code.get(section)), `template [${section}]`);
  }
});

const README = new URL("../README.md", import.meta.url);

/** Every .ts file under mod/. */
async function sources(dir = new URL("../mod/", import.meta.url)): Promise<string[]> {
  const texts: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) texts.push(...await sources(url));
    else if (entry.name.endsWith(".ts")) texts.push(await Deno.readTextFile(url));
  }
  return texts;
}

Deno.test("every metric family /metrics can emit is listed in the README", async () => {
  const code = (await sources()).join("\n");
  const names = new Set<string>();
  for (const m of code.matchAll(/"((?:agent|process)_[a-z_]+)"/g)) names.add(m[1]!);
  // Families named per system: `agent_${system}_...` for the mail bridge's two services.
  for (const m of code.matchAll(/`agent_\$\{system\}_([a-z_]+)`/g)) {
    for (const system of ["graph", "jira"]) names.add(`agent_${system}_${m[1]}`);
  }
  const readme = await Deno.readTextFile(README);
  const documented = new Set(
    [...readme.matchAll(/`((?:agent|process)_[a-z_]+)`/g)].map((m) => m[1]!),
  );
  assertEquals(names.size > 15, true, `only ${[...names].join(", ")} found in mod/`);
  assertEquals([...names].filter((n) => !documented.has(n)).sort(), []);
});

Deno.test("every command's flags, as its --help lists them, are in the README", async () => {
  const { main } = await import("../main.ts");
  const help = async (args: string[]) => {
    let text = "";
    const deps = {
      signal: new AbortController().signal,
      stdout: (t: string) => void (text += t),
      stderr: (t: string) => void (text += t),
      env: () => undefined,
      isTerminal: false,
    };
    await main(args, deps);
    return text;
  };
  const commands = [...(await help(["--help"])).matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) =>
    m[1]!
  );
  assertEquals(commands.includes("selftest") && commands.includes("completions"), true);
  const readme = await Deno.readTextFile(README);
  const missing: string[] = [];
  for (const command of commands.filter((c) => c !== "version")) {
    if (!readme.includes(`agent ${command}`)) missing.push(`agent ${command}`);
    for (const m of (await help([command, "--help"])).matchAll(/(?<![\w-])(--[a-z][a-z-]+)/g)) {
      if (!readme.includes(m[1]!)) missing.push(`agent ${command} ${m[1]}`);
    }
  }
  assertEquals([...new Set(missing)], []);
});
