/**
 * Mail HTML made safe and short: quoted replies and signatures cut (for comments), then an
 * allowlist sanitiser (sanitize-html): no scripts, styles, event handlers, `javascript:`
 * links or remote images (tracking pixels); inline images only as `cid:` references.
 */
import sanitizeHtml from "sanitize-html";
import { parseDocument } from "htmlparser2";
import { type ChildNode, type Element, Text } from "domhandler";
import render from "dom-serializer";

const SANITIZE: sanitizeHtml.IOptions = {
  allowedTags: [
    "p",
    "br",
    "div",
    "span",
    "a",
    "ul",
    "ol",
    "li",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "pre",
    "code",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "s",
    "strike",
    "del",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "img",
    "hr",
    "caption",
  ],
  allowedAttributes: {
    a: ["href"],
    img: ["src", "alt"],
    td: ["colspan", "rowspan"],
    th: ["colspan", "rowspan"],
  },
  allowedSchemes: ["http", "https", "mailto"],
  allowedSchemesByTag: { img: ["cid"] },
  allowProtocolRelative: false,
  exclusiveFilter: (frame) => frame.tag === "img" && !frame.attribs.src,
  nonTextTags: ["script", "style", "textarea", "option", "noscript", "title", "head"],
};

/** Sanitised HTML (see module doc). */
export function sanitizeMailHtml(html: string): string {
  return sanitizeHtml(remoteImagesAsText(html), SANITIZE);
}

/**
 * A remote image is a tracking pixel or a picture from elsewhere: only its alt text stays,
 * as text (so a linked image keeps its link); `cid:` images, the mail's own, stay images.
 */
function remoteImagesAsText(html: string): string {
  if (!/<img/i.test(html)) return html;
  const doc = parseDocument(html, { decodeEntities: true });
  const visit = (nodes: ChildNode[]) => {
    for (const node of [...nodes]) {
      if (node.type !== "tag") continue;
      const el = node as Element;
      if (el.name === "img" && !/^cid:/i.test(el.attribs.src ?? "")) {
        const alt = (el.attribs.alt ?? "").trim();
        const text = new Text(alt ? `[image: ${alt}]` : "");
        const siblings = el.parent?.children ?? doc.children;
        siblings.splice(siblings.indexOf(el), 1, text);
        text.parent = el.parent;
      } else visit(el.children);
    }
  };
  visit(doc.children);
  return render(doc, { decodeEntities: false, encodeEntities: "utf8" });
}

/** Plain-text mail as HTML: paragraphs on blank lines, line breaks kept. */
export function textToHtml(text: string): string {
  return text.replace(/\r\n?/g, "\n").split(/\n{2,}/).map((p) =>
    `<p>${escapeHtml(p).replace(/\n/g, "<br>")}</p>`
  ).join("");
}

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

/** Containers mail clients put the quoted message in (and everything after it goes too). */
const QUOTE_MARKERS: ((e: Element) => boolean)[] = [
  (e) =>
    /\b(gmail_quote|gmail_extra|yahoo_quoted|moz-cite-prefix|protonmail_quote)\b/.test(
      e.attribs.class ?? "",
    ),
  (e) =>
    /^(divRplyFwdMsg|appendonsend|mail-editor-reference-message-container)$/.test(
      e.attribs.id ?? "",
    ),
  (e) => e.name === "blockquote" && e.attribs.type === "cite",
  // Outlook desktop: the separator line before "From: ... Sent: ...".
  (e) => e.name === "div" && /border-top:\s*solid\s*#?[a-f0-9]+/i.test(e.attribs.style ?? ""),
  (e) => e.name === "hr" && e.attribs.id === "stopSpelling",
];
/** Text lines that start the quoted part or the signature. */
const CUT_LINE = [
  /^\s*On .{4,200} wrote:\s*$/,
  /^\s*Am .{4,200} schrieb .{1,200}:\s*$/,
  /^\s*-{2,}\s*Original Message\s*-{2,}/i,
  /^\s*From: .+\s*$/,
  /^\s*Sent from my \w+/i,
  /^\s*Get Outlook for \w+/i,
  /^--\s?$/,
  /^\s*_{10,}\s*$/,
];

/**
 * The new part of a reply: quoted messages and the signature removed. Works on the raw
 * HTML (before sanitising, which drops the class and id markers clients use).
 */
export function stripQuotesAndSignature(html: string): string {
  const doc = parseDocument(html, { decodeEntities: true });
  const cut = findCut(doc.children);
  if (cut) removeFrom(cut);
  return render(doc, { decodeEntities: false });
}

function findCut(nodes: ChildNode[]): ChildNode | undefined {
  for (const node of nodes) {
    if (node.type === "tag" && QUOTE_MARKERS.some((m) => m(node as Element))) return node;
    if (
      node.type === "text" &&
      CUT_LINE.some((re) => (node.data ?? "").split("\n").some((l) => re.test(l)))
    ) {
      return node;
    }
    if ("children" in node && node.type === "tag") {
      const el = node as Element;
      // A short block whose whole text is a cut line ("-- ", "On ... wrote:").
      const text = textOf(el).trim();
      if (isBlock(el) && text.length < 300 && CUT_LINE.some((re) => re.test(text))) return el;
      const inner = findCut(el.children);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** Removes `node` and everything after it in document order. */
function removeFrom(node: ChildNode): void {
  let current: ChildNode | null = node;
  while (current) {
    const parent: ChildNode["parent"] = current.parent;
    if (!parent) return;
    const siblings = parent.children;
    const index = siblings.indexOf(current);
    siblings.splice(index + (current === node ? 0 : 1));
    current = parent.type === "root" ? null : parent as ChildNode;
  }
}

function textOf(node: ChildNode): string {
  if (node.type === "text") return node.data;
  if ("children" in node) return (node.children as ChildNode[]).map(textOf).join("");
  return "";
}

function isBlock(el: Element): boolean {
  return /^(p|div|blockquote|pre|h[1-6]|li|table|tr|td)$/.test(el.name);
}
