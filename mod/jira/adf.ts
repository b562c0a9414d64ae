/**
 * Sanitised mail HTML as an Atlassian Document Format document (Jira Cloud, REST v3):
 * paragraphs, headings, lists, tables, code, quotes, links and emphasis survive.
 *
 * One extension node, `attachmentImage`, marks where an inline image stood: Cloud cannot
 * reference an uploaded attachment from ADF through the REST API, so `forCloud` turns it
 * into a note; wiki markup (Server/DC) shows the image in place (`!name.png!`).
 */
import { parseDocument } from "htmlparser2";
import type { ChildNode, Element } from "domhandler";

export interface AdfMark {
  type: "strong" | "em" | "underline" | "strike" | "code" | "link";
  attrs?: { href: string };
}

export interface AdfNode {
  type: string;
  attrs?: Record<string, unknown>;
  content?: AdfNode[];
  text?: string;
  marks?: AdfMark[];
}

export interface AdfDoc {
  type: "doc";
  version: 1;
  content: AdfNode[];
}

const INLINE_MARK: Record<string, AdfMark["type"]> = {
  b: "strong",
  strong: "strong",
  i: "em",
  em: "em",
  u: "underline",
  s: "strike",
  strike: "strike",
  del: "strike",
  code: "code",
};
const BLOCK =
  /^(p|div|h[1-6]|ul|ol|li|table|thead|tbody|tfoot|tr|td|th|pre|blockquote|hr|caption)$/;

/**
 * Builds a document from sanitised HTML; `images` maps a `cid:` to the file name of one of
 * the mail's own attachments (only those become images). The result is valid ADF (the
 * published schema Jira Cloud enforces): what ADF does not allow where it stands is
 * flattened where it stands, keeping its text, never dropped.
 */
export function htmlToAdf(html: string, options: { images?: Map<string, string> } = {}): AdfDoc {
  const doc = parseDocument(html, { decodeEntities: true });
  const content = fit(blocks(doc.children, options.images ?? new Map()), "doc");
  return { type: "doc", version: 1, content };
}

/** A document from paragraphs of plain text (line breaks kept, control characters out). */
export function textToAdf(...paragraphs: string[]): AdfDoc {
  return {
    type: "doc",
    version: 1,
    content: paragraphs.map(cleanText).filter((p) => p.trim() !== "").map((p) =>
      paragraph(linesOf(p))
    ),
  };
}

/** Joins documents (a header paragraph, the mail, an attachment list). */
export function concatAdf(...docs: AdfDoc[]): AdfDoc {
  return { type: "doc", version: 1, content: docs.flatMap((d) => d.content) };
}

/** The document as Jira Cloud accepts it: inline image markers become a short note. */
export function forCloud(doc: AdfDoc): AdfDoc {
  const visit = (node: AdfNode): AdfNode =>
    node.type === "attachmentImage"
      ? {
        type: "text",
        text: `[image: ${node.attrs?.filename} (attached)]`,
        marks: [{ type: "em" }],
      }
      : node.content
      ? { ...node, content: node.content.map(visit) }
      : node;
  return { ...doc, content: doc.content.map(visit) };
}

/** The plain text of a document (for the length check and tests). */
export function adfText(node: AdfNode | AdfDoc): string {
  if (node.type === "text") return (node as AdfNode).text ?? "";
  if (node.type === "hardBreak") return "\n";
  const inner = (node.content ?? []).map(adfText);
  return BLOCKISH.has(node.type) ? inner.join("") + "\n" : inner.join("");
}
const BLOCKISH = new Set(["paragraph", "heading", "codeBlock", "tableRow", "listItem", "rule"]);

type Images = Map<string, string>;

// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;

/** Text without control characters (ADF and wiki markup take none). */
function cleanText(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(CONTROLS, "");
}

/** Block content: inline runs gathered into paragraphs between block elements. */
function blocks(nodes: ChildNode[], images: Images): AdfNode[] {
  const out: AdfNode[] = [];
  let run: AdfNode[] = [];
  const flush = () => {
    const inline = trimInline(run);
    if (inline.length) out.push(paragraph(inline));
    run = [];
  };
  for (const node of nodes) {
    if (node.type === "tag" && BLOCK.test((node as Element).name)) {
      flush();
      out.push(...block(node as Element, images));
    } else {
      run.push(...inline(node, [], images));
    }
  }
  flush();
  return out;
}

function block(el: Element, images: Images): AdfNode[] {
  const name = el.name;
  if (/^h[1-6]$/.test(name)) {
    const content = trimInline(inlineChildren(el, [], images));
    return content.length ? [{ type: "heading", attrs: { level: Number(name[1]) }, content }] : [];
  }
  switch (name) {
    case "ul":
    case "ol":
      return list(el, images);
    case "pre": {
      const text = cleanText(textOf(el)).replace(/\n$/, "");
      return text ? [{ type: "codeBlock", content: [{ type: "text", text }] }] : [];
    }
    case "blockquote": {
      const content = blocks(el.children, images);
      return content.length ? [{ type: "blockquote", content }] : [];
    }
    case "hr":
      return [{ type: "rule" }];
    case "table":
      return table(el, images);
    default:
      // div, p, li or td out of place, caption: their content, as blocks
      return blocks(el.children, images);
  }
}

/**
 * A list's items. A list written straight into a list (Gmail's `ul > ul`) nests under the
 * item before it; anything else there (text, a paragraph) becomes an item of its own.
 */
function list(el: Element, images: Images): AdfNode[] {
  const items: AdfNode[] = [];
  let loose: ChildNode[] = [];
  const flushLoose = () => {
    const content = blocks(loose, images);
    if (content.length) items.push({ type: "listItem", content });
    loose = [];
  };
  for (const child of el.children) {
    const tag = child.type === "tag" ? (child as Element).name : "";
    if (tag === "li") {
      flushLoose();
      const content = blocks((child as Element).children, images);
      if (content.length) items.push({ type: "listItem", content });
    } else if (tag === "ul" || tag === "ol") {
      flushLoose();
      const nested = list(child as Element, images);
      const last = items.at(-1);
      if (last) last.content = [...last.content!, ...nested];
      else if (nested.length) items.push({ type: "listItem", content: nested });
    } else {
      loose.push(child);
    }
  }
  flushLoose();
  return items.length
    ? [{ type: el.name === "ul" ? "bulletList" : "orderedList", content: items }]
    : [];
}

function table(el: Element, images: Images): AdfNode[] {
  const rows: Element[] = [];
  const collect = (node: Element) => {
    for (const child of node.children) {
      if (child.type !== "tag") continue;
      const c = child as Element;
      if (c.name === "tr") rows.push(c);
      else if (/^(thead|tbody|tfoot)$/.test(c.name)) collect(c);
    }
  };
  collect(el);
  const tableRows = rows.map((tr) => ({
    type: "tableRow",
    content: tr.children
      .filter((c): c is Element => c.type === "tag" && /^(td|th)$/.test((c as Element).name))
      .map((cell) => ({
        type: cell.name === "th" ? "tableHeader" : "tableCell",
        content: blocks(cell.children, images),
      })),
  })).filter((row) => row.content.length);
  return tableRows.length ? [{ type: "table", content: tableRows }] : [];
}

function inlineChildren(el: Element, marks: AdfMark[], images: Images): AdfNode[] {
  return el.children.flatMap((c) => inline(c, marks, images));
}

function inline(node: ChildNode, marks: AdfMark[], images: Images): AdfNode[] {
  if (node.type === "text") {
    const text = cleanText(node.data).replace(/\s+/g, " ");
    return text ? [withMarks({ type: "text", text }, marks)] : [];
  }
  if (node.type !== "tag") return [];
  const el = node as Element;
  if (el.name === "br") return [{ type: "hardBreak" }];
  if (el.name === "img") {
    // Only the mail's own attachments are images; anything else is its alt text, as text.
    const src = el.attribs.src ?? "";
    const filename = /^cid:/i.test(src) ? images.get(src.slice(4)) : undefined;
    if (filename) return [{ type: "attachmentImage", attrs: { filename } }];
    const alt = cleanText(el.attribs.alt ?? "").replace(/\s+/g, " ").trim();
    return alt ? [withMarks({ type: "text", text: `[image: ${alt}]` }, marks)] : [];
  }
  if (el.name === "a" && el.attribs.href) {
    const link: AdfMark = { type: "link", attrs: { href: el.attribs.href } };
    const content = inlineChildren(el, [...marks, link], images);
    // A link whose content was only a (remote) image keeps its address as its text.
    return content.some((n) => n.type === "text" && n.text!.trim())
      ? content
      : [...content, withMarks({ type: "text", text: el.attribs.href }, [...marks, link])];
  }
  const mark = INLINE_MARK[el.name];
  if (mark && !marks.some((m) => m.type === mark)) {
    return inlineChildren(el, [...marks, { type: mark }], images);
  }
  if (BLOCK.test(el.name)) return [{ type: "hardBreak" }, ...inlineChildren(el, marks, images)];
  return inlineChildren(el, marks, images);
}

function withMarks(node: AdfNode, marks: AdfMark[]): AdfNode {
  if (!marks.length) return node;
  // ADF allows `code` only with `link`.
  const code = marks.some((m) => m.type === "code");
  const kept = code ? marks.filter((m) => m.type === "code" || m.type === "link") : marks;
  return { ...node, marks: kept };
}

/** Drops leading/trailing whitespace and breaks of a paragraph. */
function trimInline(nodes: AdfNode[]): AdfNode[] {
  const out = [...nodes];
  while (out.length && isBlank(out[0]!)) out.shift();
  while (out.length && isBlank(out[out.length - 1]!)) out.pop();
  if (!out.length) return out;
  const first = out[0]!;
  if (first.type === "text") out[0] = { ...first, text: first.text!.trimStart() };
  const last = out[out.length - 1]!;
  if (last.type === "text") out[out.length - 1] = { ...last, text: last.text!.trimEnd() };
  return out;
}

function isBlank(node: AdfNode): boolean {
  return node.type === "hardBreak" || (node.type === "text" && !node.text!.trim());
}

/** Text with line breaks as inline nodes: its lines between hard breaks. */
function linesOf(text: string): AdfNode[] {
  return text.split("\n").flatMap((line, i): AdfNode[] => [
    ...(i ? [{ type: "hardBreak" }] : []),
    ...(line ? [{ type: "text", text: line }] : []),
  ]);
}

function paragraph(content: AdfNode[]): AdfNode {
  return { type: "paragraph", content };
}

function textOf(node: ChildNode): string {
  if (node.type === "text") return node.data;
  if (node.type === "tag" && (node as Element).name === "br") return "\n";
  if ("children" in node) return (node.children as ChildNode[]).map(textOf).join("");
  return "";
}

// ---------------------------------------------------------------------------------------
// Fitting blocks to where ADF allows them

/** Where blocks stand, and which block types ADF allows there (from the published schema). */
type Place = "doc" | "blockquote" | "listItem" | "tableCell";
const ALLOWED: Record<Place, ReadonlySet<string>> = {
  doc: new Set([
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "codeBlock",
    "blockquote",
    "rule",
    "table",
  ]),
  blockquote: new Set(["paragraph", "bulletList", "orderedList", "codeBlock"]),
  listItem: new Set(["paragraph", "bulletList", "orderedList", "codeBlock"]),
  tableCell: new Set([
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "codeBlock",
    "blockquote",
    "rule",
  ]),
};

/**
 * Blocks as ADF allows them at `place`. What is not allowed there is flattened, keeping its
 * text: a heading becomes a bold paragraph, a quote gives up its content to where it
 * stands, a table becomes a paragraph per row (cells between " | "), a code block a
 * paragraph of lines; a rule, which has no text, goes.
 */
function fit(nodes: AdfNode[], place: Place): AdfNode[] {
  return nodes.flatMap((node) => fitOne(node, place));
}

function fitOne(node: AdfNode, place: Place): AdfNode[] {
  if (ALLOWED[place].has(node.type)) {
    switch (node.type) {
      case "blockquote": {
        const content = fit(node.content ?? [], "blockquote");
        return content.length ? [{ ...node, content }] : [];
      }
      case "bulletList":
      case "orderedList": {
        const items = (node.content ?? []).map(fitListItem).filter((i) => i !== undefined);
        return items.length ? [{ ...node, content: items }] : [];
      }
      case "table": {
        const rows = (node.content ?? []).map((row) => ({
          ...row,
          content: (row.content ?? []).map((cell) => {
            const content = fit(cell.content ?? [], "tableCell");
            return { ...cell, content: content.length ? content : [paragraph([])] };
          }),
        }));
        return [{ ...node, content: rows }];
      }
      default:
        return [node];
    }
  }
  switch (node.type) {
    case "heading":
      return [paragraph((node.content ?? []).map(bold))];
    case "blockquote":
      return fit(node.content ?? [], place);
    case "table":
      return (node.content ?? []).map((row) => {
        const cells = (row.content ?? []).map((cell) => inlineOf(cell.content ?? []))
          .filter((cell) => cell.length);
        return paragraph(
          cells.flatMap((cell, i) => i ? [{ type: "text", text: " | " }, ...cell] : cell),
        );
      }).filter((p) => p.content!.length);
    case "codeBlock":
      return [paragraph(inlineOf([node]))];
    case "rule":
      return [];
    default:
      return fit(node.content ?? [], place);
  }
}

/** A list item as ADF has it: its blocks fitted, a paragraph first. */
function fitListItem(item: AdfNode): AdfNode | undefined {
  const content = fit(item.content ?? [], "listItem");
  if (!content.length) return undefined;
  if (content[0]!.type !== "paragraph") content.unshift(paragraph([]));
  return { ...item, content };
}

/** The inline content of blocks, one line per block (for a table flattened to a row). */
function inlineOf(nodes: AdfNode[]): AdfNode[] {
  const lines: AdfNode[][] = [];
  for (const node of nodes) {
    if (node.type === "paragraph" || node.type === "heading") {
      if (node.content?.length) lines.push(node.content);
    } else if (node.type === "codeBlock") {
      lines.push(linesOf((node.content ?? []).map((t) => t.text ?? "").join("")));
    } else if (node.content) {
      const inner = inlineOf(node.content);
      if (inner.length) lines.push(inner);
    }
  }
  return lines.flatMap((line, i) => i ? [{ type: "hardBreak" }, ...line] : line);
}

function bold(node: AdfNode): AdfNode {
  if (node.type !== "text" || node.marks?.some((m) => m.type === "code" || m.type === "strong")) {
    return node;
  }
  return { ...node, marks: [...(node.marks ?? []), { type: "strong" }] };
}
