/**
 * Redaction applied to every log record before any sink sees it, so that a secret can
 * never be written whatever a caller passes: by property name (password, token, ...),
 * by value (every secret the config holds is registered here), and by shape
 * (`Authorization: Basic ...`, `Bearer ...`).
 */
import type { LogRecord } from "@logtape/logtape";

export const REDACTED = "[REDACTED]";

const SECRET_NAME =
  /pass(word|wd|code)?$|^pw$|pw$|secret|token|authorization|cookie|credential|api[_-]?key$|private[_-]?key/i;
const AUTH_SHAPE = /\b(Basic|Bearer|Negotiate|NTLM)\s+[A-Za-z0-9+/=._~-]{6,}/g;
/** The ticket service's tokens (mod/ticket_api/tokens.ts), wherever they appear. */
const TOKEN_SHAPE = /\bagtk_[A-Za-z0-9_-]{20,}/g;
const MIN_SECRET_LENGTH = 3;

/** Secret values registered at start-up (from config, tokens); scrubbed from every string. */
export class SecretRegistry {
  #values = new Set<string>();
  #pattern: RegExp | undefined;

  add(value: string | undefined): void {
    if (!value || value.length < MIN_SECRET_LENGTH || this.#values.has(value)) return;
    this.#values.add(value);
    const sorted = [...this.#values].sort((a, b) => b.length - a.length);
    this.#pattern = new RegExp(sorted.map(escapeRegExp).join("|"), "g");
  }

  scrub(text: string): string {
    return this.scrubKnown(
      text.replace(AUTH_SHAPE, (_, scheme) => `${scheme} ${REDACTED}`).replace(
        TOKEN_SHAPE,
        REDACTED,
      ),
    );
  }

  /**
   * Only the registered secret values: for people's own text (a mail bridged to Jira),
   * where "Basic authentication" is prose, not a credential.
   */
  scrubKnown(text: string): string {
    return this.#pattern ? text.replace(this.#pattern, REDACTED) : text;
  }
}

/** The process-wide registry; config loading and token storage add to it. */
export const secrets = new SecretRegistry();

/** True when a property or header of this name holds a secret. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Returns a copy of `value` with secret-named fields and registered secret values removed. */
export function redactValue(value: unknown, registry = secrets, depth = 0): unknown {
  if (typeof value === "string") return registry.scrub(value);
  if (value === null || typeof value !== "object" || depth > 8) return value;
  if (value instanceof Error) {
    const out: Record<string, unknown> = {
      name: value.name,
      message: registry.scrub(value.message),
    };
    if (value.stack) out.stack = registry.scrub(value.stack);
    if (value.cause !== undefined) out.cause = redactValue(value.cause, registry, depth + 1);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, registry, depth + 1));
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
  for (const [k, v] of entries) {
    const key = String(k);
    out[key] = isSecretName(key) && v !== null && v !== undefined && v !== ""
      ? REDACTED
      : redactValue(v, registry, depth + 1);
  }
  return out;
}

/** Returns the record with its message values and properties redacted. */
export function redactRecord(record: LogRecord, registry = secrets): LogRecord {
  // `{passcode}` placeholders were already replaced by the value: match it by identity.
  const secretValues = new Set<unknown>();
  collectSecretValues(record.properties, secretValues);
  const message = record.message.map((part, i) =>
    // Even indexes are the template's literal text; odd ones are interpolated values.
    i % 2 === 0
      ? registry.scrub(String(part))
      : secretValues.has(part)
      ? REDACTED
      : redactValue(part, registry)
  );
  const rawMessage = typeof record.rawMessage === "string"
    ? registry.scrub(record.rawMessage)
    : record.rawMessage;
  const properties = redactValue(record.properties, registry) as Record<string, unknown>;
  return { ...record, message, rawMessage, properties };
}

function collectSecretValues(value: unknown, into: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== "object" || depth > 8) return;
  for (const [key, v] of Object.entries(value)) {
    if (isSecretName(key) && v !== null && v !== undefined && v !== "") into.add(v);
    else collectSecretValues(v, into, depth + 1);
  }
}

/** `text` as a literal inside a RegExp. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
