/**
 * An invite as the bytes of one RFC 5322 message, in nodemailer's exact form: the shape
 * MailComposer gives a mail with a text, a calendar event and nothing else (multipart/mixed
 * around multipart/alternative(text/plain, text/calendar) and the .ics as application/ics),
 * with every varying part encoded by nodemailer's own functions: the header values by
 * MimeNode's `encodeHeaderValue` and `foldLines`, the parts' transfer encoding chosen by
 * MimeNode's rule and written by its quoted-printable encoder, or as base64 in its lines.
 *
 * Why not MailComposer: building its tree of MimeNodes for every invite (a node per part,
 * every header set, normalised, parsed back and rebuilt) was a quarter of the calendar's
 * CPU per invite in a burst (bench/listener.ts), for a message whose shape never changes.
 * Its stream build (`build()`) costs more still under Deno's stream emulation. A mail that
 * does not have that shape (no text, or an extra header that is not an X- header) is built
 * from MailComposer's tree. tests/mail_compose_test.ts holds both against nodemailer's own
 * stream build of the same message, byte for byte apart from the random boundary and the
 * Date, for plain, hostile and generated input.
 */
import { Buffer } from "node:buffer";
// @ts-types="@types/nodemailer/lib/mail-composer/index.d.ts"
import MailComposer from "nodemailer/lib/mail-composer";
// @ts-types="@types/nodemailer/lib/qp/index.d.ts"
import * as qp from "nodemailer/lib/qp";
// @ts-types="@types/nodemailer/lib/mime-node/index.d.ts"
import MimeNode from "nodemailer/lib/mime-node";
// @ts-types="@types/nodemailer/lib/mime-funcs/index.d.ts"
import * as mimeFuncs from "nodemailer/lib/mime-funcs";
import type { InviteMail } from "./types.ts";

/** What the writer reads of nodemailer's MimeNode (its tree is not in the typings). */
interface MimeTree {
  buildHeaders(): string;
  getTransferEncoding(): string;
  content?: unknown;
  multipart?: string | false;
  boundary?: string;
  childNodes: MimeTree[];
}

/** The nodemailer message for an invite (what MailComposer builds the tree from). */
export function inviteMessage(mail: InviteMail) {
  return {
    from: mail.from,
    to: { name: "", address: mail.to },
    subject: oneLine(mail.subject),
    text: mail.text,
    messageId: mail.messageId,
    headers: mail.headers ?? {},
    icalEvent: { method: mail.method, content: mail.ics, filename: "invite.ics" },
  };
}

/** Header values must stay on one line (CR/LF in a task name must not add headers). */
export function oneLine(text: string): string {
  return text.replace(/[\r\n\t\v\f\u0085\u2028\u2029]+/g, " ").trim();
}

const encoder = new TextEncoder();

/** The whole message, CRLF line ends. */
export function composeInvite(mail: InviteMail): Uint8Array {
  return encoder.encode(hasInviteShape(mail) ? fromShape(mail) : fromTree(mail));
}

/**
 * Whether MailComposer gives the mail the invite's shape: it has a text (without one there
 * is no alternative part), and its extra headers are X- headers (any other name could be
 * one MailComposer sets or orders itself).
 */
export function hasInviteShape(mail: InviteMail): boolean {
  return mail.text !== "" &&
    Object.keys(mail.headers ?? {}).every((key) =>
      /^X-[A-Za-z0-9-]+$/.test(headerNode._normalizeHeaderKey(key))
    );
}

/** MailComposer's tree of the message, written out. */
function fromTree(mail: InviteMail): string {
  const root = new MailComposer(inviteMessage(mail)).compile() as unknown as MimeTree;
  return write(root).replace(/\r?\n/g, "\r\n");
}

/** What nodemailer's header methods are called on (one node, never part of a message). */
interface HeaderNode {
  encodeHeaderValue(key: string, value: unknown): string;
  _normalizeHeaderKey(key: string): string;
}
const headerNode = new MimeNode() as unknown as HeaderNode;

/** Header names remembered by the header node (an invite uses a few). */
const HEADER_NAMES_KEPT = 256;

/**
 * nodemailer spells out a header name (three regular-expression replaces, one with a
 * callback) every time it encodes a header's value; the spelling is a pure function of the
 * name, so this node remembers the names it has spelled (a bounded number; others are
 * spelled each time). Only this node: MailComposer's own nodes are left as they are.
 */
const spell = headerNode._normalizeHeaderKey;
const spelled = new Map<string, string>();
headerNode._normalizeHeaderKey = (key) => {
  let name = spelled.get(key);
  if (name === undefined) {
    name = spell.call(headerNode, key);
    if (spelled.size < HEADER_NAMES_KEPT) spelled.set(key, name);
  }
  return name;
};

/** The line a header becomes in MimeNode.buildHeaders; "" for one it leaves out (empty). */
function headerLine(key: string, value: unknown): string {
  const encoded = headerNode.encodeHeaderValue(key, value);
  if (!encoded.trim()) return "";
  return mimeFuncs.foldLines(`${key}: ${encoded}`, 76) + "\r\n";
}

/** Address header lines by value: the sender is one, the owners a few (parsing costs). */
const ADDRESS_LINES_KEPT = 1024;
const addressLines = new Map<string, string>();

function addressLine(key: "From" | "To", value: string): string {
  const memo = `${key}\n${value}`;
  let line = addressLines.get(memo);
  if (line === undefined) {
    line = headerLine(key, key === "To" ? { name: "", address: value } : value);
    if (addressLines.size >= ADDRESS_LINES_KEPT) addressLines.clear();
    addressLines.set(memo, line);
  }
  return line;
}

/**
 * The message of the invite's shape (see hasInviteShape) as MailComposer.compile and
 * MimeNode.buildHeaders write it: the extra headers, From, To, Subject, Message-ID, Date,
 * MIME-Version, Content-Type; then the parts, numbered as MailComposer creates them.
 */
function fromShape(mail: InviteMail): string {
  let head = "";
  for (const [key, value] of Object.entries(mail.headers ?? {})) {
    head += headerLine(headerNode._normalizeHeaderKey(key), value);
  }
  const base = boundaryBase();
  const mixed = `--_NmP-${base}-Part_1`;
  const alternative = `--_NmP-${base}-Part_2`;
  const date = new Date().toUTCString().replace(/GMT/, "+0000");
  head += addressLine("From", mail.from) + addressLine("To", mail.to) +
    headerLine("Subject", oneLine(mail.subject)) + headerLine("Message-ID", mail.messageId) +
    `Date: ${date}\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: multipart/mixed; boundary="${mixed}"\r\n\r\n`;
  return head +
    `--${mixed}\r\nContent-Type: multipart/alternative;\r\n boundary="${alternative}"\r\n\r\n` +
    `--${alternative}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    textPart(mail.text) +
    `\r\n--${alternative}\r\n` +
    `Content-Type: text/calendar; charset=utf-8; method=${mail.method}\r\n` +
    textPart(mail.ics) +
    `\r\n--${alternative}--\r\n\r\n--${mixed}\r\n` +
    "Content-Type: application/ics; name=invite.ics\r\n" +
    "Content-Disposition: attachment; filename=invite.ics\r\n" +
    "Content-Transfer-Encoding: base64\r\n\r\n" +
    `${encodeBody(mail.ics, "base64")}\r\n--${mixed}--\r\n`;
}

/** MimeNode's random part of a boundary: 8 random bytes in hex. */
function boundaryBase(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/**
 * A text part's Content-Transfer-Encoding header, the blank line and its content: MimeNode's
 * rule (getTransferEncoding) is 7bit for plain text without lines over 76 characters, else
 * quoted-printable when it has more Latin letters than other characters, else base64.
 */
function textPart(content: string): string {
  const encoding = mimeFuncs.isPlainText(content) && !hasLongerLines(content, 76)
    ? "7bit"
    : mostlyLatin(content)
    ? "quoted-printable"
    : "base64";
  const body = encodeBody(content, encoding).replace(/\r?\n/g, "\r\n");
  return `Content-Transfer-Encoding: ${encoding}\r\n\r\n${body}`;
}

/** A part's content in its transfer encoding (its own line ends left as they are). */
function encodeBody(content: string | Uint8Array, encoding: string): string {
  if (encoding === "base64") return wrapBase64(Buffer.from(content).toString("base64"));
  if (encoding === "quoted-printable") return quotedPrintable(Buffer.from(content));
  return typeof content === "string" ? content : Buffer.from(content).toString("utf-8");
}

/**
 * nodemailer's hasLongerLines (`/^.{77,}/m`, and true past 128 KB) in one pass: its regular
 * expression was a fifth of composing an invite. Its `.` stops at the four line terminators.
 */
function hasLongerLines(text: string, max: number): boolean {
  if (text.length > 128 * 1024) return true;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x0a || code === 0x0d || code === 0x2028 || code === 0x2029) run = 0;
    else if (++run > max) return true;
  }
  return false;
}

/** What nodemailer's quoted-printable stream reads of its encoder (a Node Transform). */
interface QpTransform {
  push(chunk: string): boolean;
  _transform(chunk: Uint8Array, encoding: string, done: () => void): void;
  _flush(done: () => void): void;
}

/**
 * The quoted-printable text nodemailer's build writes: its qp.Encoder, driven through the
 * two methods a Transform stream calls, in one pass. Not qp.wrap(qp.encode()): the encoder
 * holds back the whitespace the content ends with and wraps it after the rest, which can
 * break the last line elsewhere.
 */
function quotedPrintable(bytes: Uint8Array): string {
  const encoder = new qp.Encoder() as unknown as QpTransform;
  let out = "";
  encoder.push = (chunk) => {
    out += chunk;
    return true;
  };
  encoder._transform(bytes, "buffer", () => {});
  encoder._flush(() => {});
  return out;
}

/** MimeNode._getTextEncoding: more letters A-Z than control and non-ASCII characters. */
function mostlyLatin(value: string): boolean {
  let other = 0;
  let latin = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code <= 0x08 || code === 0x0b || code === 0x0c || (code >= 0x0e && code <= 0x1f)) other++;
    else if (code >= 0x80) other++;
    else if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) latin++;
  }
  return other < latin;
}

/** base64 in lines of 76 (what nodemailer's base64.wrap makes of it, without its regex). */
function wrapBase64(text: string): string {
  if (text.length <= 76) return text;
  const lines: string[] = [];
  for (let at = 0; at < text.length; at += 76) lines.push(text.slice(at, at + 76));
  return lines.join("\r\n");
}

/** A node's headers, its encoded content, and its children between boundaries. */
function write(node: MimeTree): string {
  const encoding = node.getTransferEncoding();
  let out = node.buildHeaders() + "\r\n\r\n";
  if (node.content) {
    if (typeof node.content !== "string" && !(node.content instanceof Uint8Array)) {
      throw new TypeError("an invite's MIME parts are text; this one is not");
    }
    out += encodeBody(node.content, encoding);
  }
  if (node.multipart) {
    node.childNodes.forEach((child, i) => {
      out += `${i ? "\r\n" : ""}--${node.boundary}\r\n${write(child)}`;
    });
    out += `\r\n--${node.boundary}--\r\n`;
  }
  return out;
}
