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

/** Builds a document from sanitised HTML; `images` maps a `cid:` to its file name. */
export function htmlToAdf(html: string, options: { images?: Map<string, string> } = {}): AdfDoc {
  const doc = parseDocument(html, { decodeEntities: true });
  const content = blocks(doc.children, options.images ?? new Map());
  return { type: "doc", version: 1, content };
}

/** A document from paragraphs of plain text. */
export function textToAdf(...paragraphs: string[]): AdfDoc {
  return {
    type: "doc",
    version: 1,
    content: paragraphs.filter((p) => p !== "").map((p) => paragraph([{ type: "text", text: p }])),
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
    case "ol": {
      const items = el.children.filter((c): c is Element =>
        c.type === "tag" && (c as Element).name === "li"
      )
        .map((li) => ({ type: "listItem", content: listItemContent(li, images) }))
        .filter((li) => li.content.length);
      return items.length
        ? [{ type: name === "ul" ? "bulletList" : "orderedList", content: items }]
        : [];
    }
    case "pre": {
      const text = textOf(el).replace(/\n$/, "");
      return text ? [{ type: "codeBlock", content: [{ type: "text", text }] }] : [];
    }
    case "blockquote": {
      const content = blocks(el.children, images).filter((b) => QUOTABLE.has(b.type));
      return content.length ? [{ type: "blockquote", content }] : [];
    }
    case "hr":
      return [{ type: "rule" }];
    case "table":
      return table(el, images);
    case "li":
      return blocks(el.children, images);
    default:
      // div, p, td outside a table, caption: their content, as blocks
      return blocks(el.children, images);
  }
}
const QUOTABLE = new Set(["paragraph", "bulletList", "orderedList", "codeBlock", "heading"]);

function listItemContent(li: Element, images: Images): AdfNode[] {
  // A list item starts with a paragraph; nested lists follow it.
  const content = blocks(li.children, images)
    .filter((b) => ["paragraph", "bulletList", "orderedList", "codeBlock"].includes(b.type));
  if (content.length && content[0]!.type !== "paragraph") {
    content.unshift(paragraph([{ type: "text", text: " " }]));
  }
  return content;
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
      .map((cell) => {
        const content = blocks(cell.children, images).filter((b) => b.type !== "table");
        return {
          type: cell.name === "th" ? "tableHeader" : "tableCell",
          content: content.length ? content : [paragraph([])],
        };
      }),
  })).filter((row) => row.content.length);
  return tableRows.length ? [{ type: "table", content: tableRows }] : [];
}

function inlineChildren(el: Element, marks: AdfMark[], images: Images): AdfNode[] {
  return el.children.flatMap((c) => inline(c, marks, images));
}

function inline(node: ChildNode, marks: AdfMark[], images: Images): AdfNode[] {
  if (node.type === "text") {
    const text = node.data.replace(/\s+/g, " ");
    return text ? [withMarks({ type: "text", text }, marks)] : [];
  }
  if (node.type !== "tag") return [];
  const el = node as Element;
  if (el.name === "br") return [{ type: "hardBreak" }];
  if (el.name === "img") {
    const cid = (el.attribs.src ?? "").replace(/^cid:/i, "");
    const filename = images.get(cid) ?? el.attribs.alt ?? cid;
    return filename ? [{ type: "attachmentImage", attrs: { filename } }] : [];
  }
  if (el.name === "a" && el.attribs.href) {
    return inlineChildren(
      el,
      [...marks, { type: "link", attrs: { href: el.attribs.href } }],
      images,
    );
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

function paragraph(content: AdfNode[]): AdfNode {
  return { type: "paragraph", content };
}

function textOf(node: ChildNode): string {
  if (node.type === "text") return node.data;
  if (node.type === "tag" && (node as Element).name === "br") return "\n";
  if ("children" in node) return (node.children as ChildNode[]).map(textOf).join("");
  return "";
}
