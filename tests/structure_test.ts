/**
 * The house's shape, checked: system adapters do not import each other (shared pieces live in
 * mod/async, mod/tls, mod/net, ...), and neither files nor folders import in circles.
 */
import { dirname, join, normalize, relative } from "node:path";
import { assertEquals } from "./support/assert.ts";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));
/** Folders that each hold one outside system's adapter. */
const SYSTEMS = ["stomp", "resilient", "smtp", "graph", "jira", "securechange"];

/** Relative imports of every file under mod/ and main.ts: static, dynamic, re-exports, types. */
async function importGraph(): Promise<Map<string, Set<string>>> {
  const files: string[] = ["main.ts"];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(join(ROOT, dir))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  await walk("mod");
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g;
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const text = await Deno.readTextFile(join(ROOT, file));
    const targets = new Set<string>();
    for (const match of text.matchAll(pattern)) {
      targets.add(relative(ROOT, normalize(join(ROOT, dirname(file), match[1]!))));
    }
    graph.set(file, targets);
  }
  return graph;
}

/** The strongly connected components with more than one member (Tarjan): the cycles. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const folderOf = (file: string) => file.startsWith("mod/") ? file.split("/")[1]! : file;

Deno.test("the cycle finder finds a cycle (so the checks below can fail)", () => {
  const graph = new Map([
    ["a", new Set(["b"])],
    ["b", new Set(["c"])],
    ["c", new Set(["a"])],
    ["d", new Set(["a"])],
  ]);
  assertEquals(cycles(graph), [["a", "b", "c"]]);
});

Deno.test("no system adapter imports another system's folder", async () => {
  const offending: string[] = [];
  for (const [file, targets] of await importGraph()) {
    const from = folderOf(file);
    if (!SYSTEMS.includes(from)) continue;
    for (const target of targets) {
      const to = folderOf(target);
      if (to !== from && SYSTEMS.includes(to)) offending.push(`${file} -> ${target}`);
    }
  }
  assertEquals(offending, []);
});

Deno.test("no import cycles between files", async () => {
  assertEquals(cycles(await importGraph()), []);
});

Deno.test("no import cycles between folders", async () => {
  const folders = new Map<string, Set<string>>();
  for (const [file, targets] of await importGraph()) {
    const from = folderOf(file);
    const out = folders.get(from) ?? new Set<string>();
    for (const target of targets) if (folderOf(target) !== from) out.add(folderOf(target));
    folders.set(from, out);
  }
  assertEquals(cycles(folders), []);
});
