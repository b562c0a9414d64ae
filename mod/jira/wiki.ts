/**
 * An ADF document as Jira wiki markup (Jira Server/Data Center, REST v2). Inline images
 * are shown in place from the attachments (`!name.png!`).
 */
import type { AdfDoc, AdfMark, AdfNode } from "./adf.ts";

export function adfToWiki(doc: AdfDoc): string {
  return doc.content.map((b) => block(b, "")).filter((b) => b !== "").join("\n\n").trim();
}

function block(node: AdfNode, listPrefix: string): string {
  const content = node.content ?? [];
  switch (node.type) {
    case "paragraph":
      return inline(content);
    case "heading":
      return `h${node.attrs?.level ?? 1}. ${inline(content).replace(/\n/g, " ")}`;
    case "bulletList":
    case "orderedList": {
      const prefix = listPrefix + (node.type === "bulletList" ? "*" : "#");
      return content.map((item) => listItem(item, prefix)).join("\n");
    }
    case "codeBlock":
      // Nothing inside {noformat} is markup but its own end, which is taken out.
      return `{noformat}\n${
        content.map((t) => t.text ?? "").join("").replace(/\{noformat[^}]*\}/gi, "")
      }\n{noformat}`;
    case "blockquote":
      return `{quote}\n${content.map((b) => block(b, "")).join("\n\n")}\n{quote}`;
    case "rule":
      return "----";
    case "table":
      return content.map((row) =>
        (row.content ?? []).map((cell) => {
          const sep = cell.type === "tableHeader" ? "||" : "|";
          const text = (cell.content ?? []).map((b) => block(b, "")).join(" ").replace(/\n+/g, " ");
          return `${sep}${text || " "}`;
        }).join("") + ((row.content ?? [])[0]?.type === "tableHeader" ? "||" : "|")
      ).join("\n");
    default:
      return inline(content);
  }
}

function listItem(item: AdfNode, prefix: string): string {
  const parts = (item.content ?? []).map((b) =>
    b.type === "bulletList" || b.type === "orderedList" ? block(b, prefix) : inline(b.content ?? [])
  );
  const [first = "", ...rest] = parts;
  return [`${prefix} ${first.replace(/\n/g, " ")}`, ...rest].join("\n");
}

function inline(nodes: AdfNode[]): string {
  return nodes.map((node) => {
    if (node.type === "hardBreak") return "\n";
    if (node.type === "attachmentImage") {
      // Only the mail's own attachments (names cleaned, no path) reach this.
      return `!${String(node.attrs?.filename).replace(/[!|\\/\r\n]/g, "")}!`;
    }
    if (node.type !== "text") return inline(node.content ?? []);
    return applyMarks(node.text ?? "", node.marks ?? []);
  }).join("");
}

function applyMarks(text: string, marks: AdfMark[]): string {
  const code = marks.some((m) => m.type === "code");
  let out = code ? `{{${escapeWiki(text)}}}` : escapeWiki(text);
  if (!text.trim()) return out;
  for (const mark of marks) {
    const lead = out.match(/^\s*/)![0];
    const trail = out.match(/\s*$/)![0];
    const core = out.trim();
    switch (mark.type) {
      case "strong":
        out = `${lead}*${core}*${trail}`;
        break;
      case "em":
        out = `${lead}_${core}_${trail}`;
        break;
      case "underline":
        out = `${lead}+${core}+${trail}`;
        break;
      case "strike":
        out = `${lead}-${core}-${trail}`;
        break;
      case "link":
        out = `${lead}[${core}|${
          mark.attrs!.href.replace(/[|\][\s{}!\\]/g, encodeURIComponent)
        }]${trail}`;
        break;
    }
  }
  return out;
}

/**
 * Text from outside as literal wiki text: every character that starts or ends markup is
 * escaped with a backslash; a backslash itself (which would make `\\`, a line break)
 * becomes its character entity (and `&` its entity, so that text reading like an entity stays
 * text); block markers that only count at a line's start (`h1.`,
 * `bq.`) are broken wherever they stand; a dash that could open strike-through, too.
 */
const ENTITY: Record<string, string> = { "&": "&amp;", "\\": "&#92;" };

export function escapeWiki(text: string): string {
  return text
    .replace(/[&\\{}[\]|!*_+^~#?]/g, (c) => ENTITY[c] ?? `\\${c}`)
    .replace(/(^|[^\p{L}\p{N}])(h[1-6]|bq)\./gu, "$1$2\\.")
    .replace(/(^|\s|\()-/g, "$1\\-");
}
