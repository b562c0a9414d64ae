/**
 * `agent config update` (`-u`): what a config file lacks of the template, added commented
 * out, the rest of the file left to the byte. A missing section comes whole at the end; a
 * missing key of a section the file has comes at the end of that section, with the
 * template's comment above it. Nothing added changes what the file means.
 */
import { parseIni } from "./ini.ts";
import { escapeRegExp } from "../log/redact.ts";

interface TemplateSection {
  name: string;
  /** The section's lines (comments and keys, active or commented) in template order. */
  lines: string[];
  /** key -> its line and the comment lines right above it. */
  keys: Map<string, { line: string; comment: string[] }>;
}

/** The updated text and what was added (`[section]` or `section.key`). */
export function updateConfigText(
  text: string,
  template: string,
): { text: string; added: string[] } {
  const doc = parseIni(text, "config");
  const sections = templateSections(template);
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines.at(-1) === "") lines.pop();
  const added: string[] = [];
  // Keys for sections the file has: inserted after the section's last line (bottom up, so
  // earlier insertions do not move later places).
  const inserts: { after: number; lines: string[] }[] = [];
  for (const section of sections) {
    const present = doc.sections.get(section.name);
    if (!present) continue;
    const start = doc.sectionLines.get(section.name)! - 1;
    const commented = commentedKeys(lines, start);
    const missing = [...section.keys].filter(([key]) => !present.has(key) && !commented.has(key));
    if (!missing.length) continue;
    let end = lines.findIndex((l, i) => i > start && /^\s*\[[^\]]+\]\s*$/.test(l));
    if (end < 0) end = lines.length;
    while (end > start + 1 && lines[end - 1]!.trim() === "") end--;
    inserts.push({
      after: end,
      lines: [
        `# Added by "agent config update" (defaults; uncomment to change):`,
        ...missing.flatMap(([, k]) => [...k.comment, commentOut(k.line)]),
      ],
    });
    added.push(...missing.map(([key]) => `${section.name}.${key}`));
  }
  for (const insert of inserts.sort((a, b) => b.after - a.after)) {
    lines.splice(insert.after, 0, ...insert.lines);
  }
  for (const section of sections) {
    // A section the file has, or has commented out (an earlier update added it so).
    const commentedOut = lines.some((l) =>
      new RegExp(`^\\s*[#;]\\s*\\[${escapeRegExp(section.name)}\\]\\s*$`).test(l)
    );
    if (doc.sections.has(section.name) || commentedOut || section.name === "") continue;
    lines.push(
      "",
      `# [${section.name}] added by "agent config update": uncomment to use.`,
      `#[${section.name}]`,
      ...section.lines.map(commentOut),
    );
    added.push(`[${section.name}]`);
  }
  return { text: lines.join("\n") + "\n", added };
}

function commentOut(line: string): string {
  return line.trim() === "" || /^\s*[#;]/.test(line) ? line : `#${line}`;
}

function templateSections(template: string): TemplateSection[] {
  const sections: TemplateSection[] = [];
  let current: TemplateSection | undefined;
  let comment: string[] = [];
  for (const line of template.split("\n")) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header) {
      current = { name: header[1]!.trim(), lines: [], keys: new Map() };
      sections.push(current);
      comment = [];
      continue;
    }
    if (!current) continue;
    current.lines.push(line);
    // The template writes keys as `key = value`, or `#key = value` commented out (a comment
    // has a space after its `#`).
    const key = /^#?([A-Za-z_][A-Za-z0-9_.-]*)\s*=/.exec(line);
    if (key) {
      const name = key[1]!.toLowerCase();
      if (!current.keys.has(name)) current.keys.set(name, { line, comment });
      comment = [];
    } else if (/^\s*[#;]/.test(line)) {
      comment = [...comment, line];
    } else {
      comment = [];
    }
  }
  return sections;
}

/** Keys written commented out (`#key = value`) in the section whose header is at `start`. */
function commentedKeys(lines: string[], start: number): Set<string> {
  const keys = new Set<string>();
  for (let i = start + 1; i < lines.length && !/^\s*\[[^\]]+\]\s*$/.test(lines[i]!); i++) {
    const m = /^\s*[#;]\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]/.exec(lines[i]!);
    if (m) keys.add(m[1]!.toLowerCase());
  }
  return keys;
}
