/**
 * An invite as the bytes of one RFC 5322 message: nodemailer's MailComposer builds the MIME
 * tree (headers, encodings, boundaries: every choice is nodemailer's), and this file writes
 * it out in one synchronous pass with nodemailer's own quoted-printable and base64 encoders.
 *
 * Why not nodemailer's `build()`: it writes each part through a chain of Node streams, which
 * under Deno's stream emulation cost about 0.3 ms of CPU per invite, more than the rest of
 * the text, and most of an invite's garbage (bench/listener.ts). The output is the same byte
 * for byte apart from the random boundary and the Date (tests/mail_compose_test.ts).
 */
import { Buffer } from "node:buffer";
// @ts-types="@types/nodemailer/lib/mail-composer/index.d.ts"
import MailComposer from "nodemailer/lib/mail-composer";
// @ts-types="@types/nodemailer/lib/qp/index.d.ts"
import * as qp from "nodemailer/lib/qp";
// @ts-types="@types/nodemailer/lib/base64/index.d.ts"
import * as base64 from "nodemailer/lib/base64";
// @ts-types="@types/nodemailer/lib/mime-node/index.d.ts"
import MimeNode from "nodemailer/lib/mime-node";
import type { InviteMail } from "./types.ts";

/** Header names remembered by rememberHeaderNames (an invite uses a dozen). */
const HEADER_NAMES_KEPT = 256;

/**
 * nodemailer spells out a header name (three regular-expression replaces, one with a
 * callback) on every get and set of a header: about 40 times per invite, 45 us of the
 * calendar's CPU per invite. The spelling is a pure function of the name, so the names seen
 * are remembered (a bounded number; others are spelled each time). Checked at load: if a
 * nodemailer release renames the method, nothing is changed (tests/mail_compose_test.ts
 * compares the bytes with nodemailer's own build either way).
 */
function rememberHeaderNames(): void {
  const proto = MimeNode.prototype as unknown as { _normalizeHeaderKey?: unknown };
  const spell = proto._normalizeHeaderKey;
  if (typeof spell !== "function") return;
  const spelled = new Map<string, string>();
  proto._normalizeHeaderKey = function (this: unknown, key: unknown): string {
    if (typeof key !== "string") return spell.call(this, key);
    let name = spelled.get(key);
    if (name === undefined) {
      name = spell.call(this, key) as string;
      if (spelled.size < HEADER_NAMES_KEPT) spelled.set(key, name);
    }
    return name;
  };
}
rememberHeaderNames();

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

/** The whole message, CRLF line ends. */
export function composeInvite(mail: InviteMail): Uint8Array {
  const root = new MailComposer(inviteMessage(mail)).compile() as unknown as MimeTree;
  return new TextEncoder().encode(write(root).replace(/\r?\n/g, "\r\n"));
}

/** A node's headers, its encoded content, and its children between boundaries. */
function write(node: MimeTree): string {
  const encoding = node.getTransferEncoding();
  let out = node.buildHeaders() + "\r\n\r\n";
  if (node.content) {
    if (typeof node.content !== "string" && !(node.content instanceof Uint8Array)) {
      throw new TypeError("an invite's MIME parts are text; this one is not");
    }
    const bytes = Buffer.from(node.content);
    out += encoding === "base64"
      ? base64.wrap(base64.encode(bytes), 76)
      : encoding === "quoted-printable"
      ? qp.wrap(qp.encode(bytes), 76)
      : bytes.toString("utf-8");
  }
  if (node.multipart) {
    node.childNodes.forEach((child, i) => {
      out += `${i ? "\r\n" : ""}--${node.boundary}\r\n${write(child)}`;
    });
    out += `\r\n--${node.boundary}--\r\n`;
  }
  return out;
}
