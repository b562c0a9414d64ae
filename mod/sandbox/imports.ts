/**
 * User code (processors, plugins) may not fetch code: a sandbox has no network for
 * imports, and the host must not download what its users name either. This finds the
 * remote imports (`npm:`, `jsr:`, `http(s):`) of a module and of the local modules it
 * imports, before anything is loaded.
 */
import { dirname, resolve } from "node:path";

/** Static and dynamic import specifiers, and `export ... from`. */
const SPECIFIER =
  /(?:\bimport\s*(?:[\w*{}\s,]+from\s*)?|\bexport\s*[\w*{}\s,]+from\s*|\bimport\s*\(\s*)["']([^"']+)["']/g;
const REMOTE = /^(npm|jsr|https?|node):|^\/\//;

/** `file: specifier` of every remote import reachable from `path` through local imports. */
export async function remoteImports(path: string): Promise<string[]> {
  const found: string[] = [];
  const seen = new Set<string>();
  const visit = async (file: string) => {
    if (seen.has(file) || seen.size > 200) return;
    seen.add(file);
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch {
      return; // a missing local module is the loader's to report
    }
    for (const match of text.matchAll(SPECIFIER)) {
      const specifier = match[1]!;
      if (/^node:/.test(specifier)) continue; // Deno's built-in Node modules: no download
      if (REMOTE.test(specifier)) found.push(`${file}: ${specifier}`);
      else if (specifier.startsWith(".")) await visit(resolve(dirname(file), specifier));
    }
  };
  await visit(resolve(path));
  return found;
}
