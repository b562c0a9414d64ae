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
};

/** Keys each reader function asks its SectionReader for (r.optional("key"), ...). */
async function codeKeys(): Promise<Map<string, Set<string>>> {
  const source = (await Promise.all(
    ["config.ts", "mail.ts"].map((f) =>
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
