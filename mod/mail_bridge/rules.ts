/**
 * What a mail means before anything is written: whether to take it at all (loop
 * protection, sender rules), its summary, project, labels and priority.
 */
import type { MailBridgeConfig } from "../config/config.ts";
import type { MailMessage } from "../graph/types.ts";
import { escapeRegExp } from "../log/redact.ts";

/** Why a mail is not bridged, or undefined when it is. */
export function skipReason(
  message: MailMessage,
  config: MailBridgeConfig,
  own: readonly string[],
): string | undefined {
  const h = message.headers;
  const from = message.from.address.toLowerCase();
  if (h[config.ownHeader.toLowerCase()] !== undefined) return "sent by the bridge itself";
  // Every From address and the Sender: any of them the bridge's own means its own mail.
  const ownAddresses = new Set([...own, ...config.ownAddresses].map((a) => a.toLowerCase()));
  const senders = [
    message.from,
    ...(message.fromAll ?? []),
    ...(message.sender ? [message.sender] : []),
  ]
    .map((a) => a.address.toLowerCase()).filter(Boolean);
  const mine = senders.find((a) => ownAddresses.has(a));
  if (mine) return `sent from the bridge's own address ${mine}`;
  const auto = h["auto-submitted"];
  if (auto && auto.trim().toLowerCase() !== "no") {
    return `automatic reply (Auto-Submitted: ${auto.trim()})`;
  }
  if (h["x-autoreply"] !== undefined || h["x-autorespond"] !== undefined) {
    return "automatic reply (X-Autoreply)";
  }
  const precedence = h["precedence"]?.trim().toLowerCase();
  if (precedence && /^(bulk|junk|list)$/.test(precedence)) {
    return `bulk mail (Precedence: ${precedence})`;
  }
  if (h["list-id"] || h["list-unsubscribe"]) {
    return "mailing-list mail (List-Id / List-Unsubscribe)";
  }
  if (
    /multipart\/report/i.test(h["content-type"] ?? "") ||
    /^(mailer-daemon|postmaster)@/i.test(from) ||
    /^(undeliverable|delivery status notification|mail delivery failed)/i.test(message.subject)
  ) {
    return "delivery status report";
  }
  if (!from) return "no sender address";
  if (config.blockedAddresses.some((blocked) => matches(from, blocked))) {
    return `sender ${from} is blocked`;
  }
  const domain = from.split("@")[1] ?? "";
  if (config.allowedDomains.length && !config.allowedDomains.includes(domain)) {
    return `sender domain ${domain} is not allowed`;
  }
  return undefined;
}

/** An address or a `*@domain` / `@domain` pattern. */
function matches(address: string, pattern: string): boolean {
  if (pattern.startsWith("*@") || pattern.startsWith("@")) {
    return address.endsWith(pattern.replace(/^\*/, ""));
  }
  return address === pattern;
}

const REPLY_TAG = /^\s*(re|aw|sv|vs|antw|ref|fw|fwd|wg|tr|rv|enc)(\[\d+\])?\s*:\s*/i;
const FORWARD_TAG = /^\s*(fw|fwd|wg|tr|rv|enc)\s*:/i;

export function isForward(subject: string): boolean {
  return FORWARD_TAG.test(subject);
}

/** The subject without reply/forward tags and bracket tags the bridge used. */
export function cleanSubject(subject: string, tags: string[], max: number): string {
  let out = subject.replace(/[\r\n\t]+/g, " ");
  for (let previous = ""; previous !== out;) {
    previous = out;
    out = out.replace(REPLY_TAG, "");
  }
  for (const tag of tags) {
    out = out.replace(new RegExp(`\\[${escapeRegExp(tag)}\\]\\s*`, "i"), "");
  }
  out = out.replace(/\s+/g, " ").trim() || "(no subject)";
  return out.length > max ? out.slice(0, max - 1).trimEnd() + "…" : out;
}

/** Issue keys in a subject, left-most first, of the given projects. */
export function subjectKeys(subject: string, projects: string[]): string[] {
  const keys: string[] = [];
  for (
    const match of subject.matchAll(/(?<![A-Za-z0-9_-])([A-Z][A-Z0-9_]+)-(\d+)(?![A-Za-z0-9_])/g)
  ) {
    if (projects.includes(match[1]!)) keys.push(match[0]);
  }
  return keys;
}

/** A name as a Jira label (labels cannot hold spaces): "Access request" -> "Access_request". */
export function labelOf(name: string): string {
  return name.replace(/\s+/g, "_");
}

/** Where a new issue goes and how it is labelled. */
export interface Placement {
  project: string;
  labels: string[];
  category?: string | undefined;
  priority?: string | undefined;
  /** Bracket tags read from the subject (removed from the summary). */
  tags: string[];
}

export function placement(
  message: MailMessage,
  config: MailBridgeConfig,
  defaultProject: string,
): Placement {
  const tags = [...message.subject.matchAll(/\[([^\]\r\n]{1,40})\]/g)].map((m) => m[1]!.trim());
  const category = tags.find((t) =>
    config.categories.some((c) => c.toLowerCase() === t.toLowerCase())
  );
  const projectTag = tags.find((t) => config.projectKeys.includes(t.toUpperCase()));
  const byRecipient = [...message.to, ...message.cc]
    .map((a) => config.projects.get(a.address.toLowerCase()))
    .find((p) => p !== undefined);
  const project = byRecipient ?? projectTag?.toUpperCase() ?? defaultProject;
  const chosenCategory = category
    ? config.categories.find((c) => c.toLowerCase() === category.toLowerCase())
    : config.defaultCategory;
  const labels = [
    ...new Set([
      ...config.labels,
      config.bridgeLabel,
      ...(chosenCategory ? [chosenCategory] : []),
    ].map(labelOf)),
  ];
  return {
    project,
    labels,
    category: chosenCategory,
    priority: config.priorities.get(message.importance),
    tags: [category, projectTag].filter((t): t is string => t !== undefined),
  };
}

/**
 * A mail's attachment name made safe to use as a file name anywhere (Jira, a folder): no
 * control characters (NUL included) or path separators, at most 200 characters with the
 * extension kept; `attachment-N` when nothing is left.
 */
export function attachmentName(name: string, index: number): string {
  // deno-lint-ignore no-control-regex
  let clean = name.replace(/[\u0000-\u001f\u007f-\u009f]/g, "").replace(/[/\\]/g, "_").trim();
  if (/^\.*$/.test(clean)) return `attachment-${index + 1}`;
  if (clean.length > 200) {
    const ext = /\.[^.]{1,16}$/.exec(clean)?.[0] ?? "";
    clean = clean.slice(0, 200 - ext.length) + ext;
  }
  return clean;
}
