/**
 * One rule for what a failure means, for every intake (mailboxes, Jira, the platform):
 *
 * - **transient**: the network, throttling (429), a server error (5xx), a timeout, or our own
 *   configuration (`credentials`: 401/403, a login or a certificate refused, a file we may
 *   not write). Nothing is wrong with the input: keep it, retry later, and report the
 *   service unhealthy with the reason.
 * - **permanent** for that input: it cannot be read or handled as it is (a parse failure,
 *   a size cap, a payload the other side refuses with 4xx). It fails alone, into a dead
 *   letter with the reason; the next input is handled.
 *
 * Adapters throw errors with an HTTP `status`, Deno's own error classes, or the two classes
 * here; wrapped errors are judged by their causes too. Certificate problems are told apart
 * by mod/tls, the one classification of TLS failures.
 */
import { tlsErrorFrom } from "../tls/errors.ts";

/** A failure that retrying later may get past; the input is fine. */
export class TransientError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransientError";
  }
}

/** A system refused our own credentials or permissions: fixed by an operator, not the input. */
export class CredentialsError extends TransientError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CredentialsError";
  }
}

/** The input itself cannot be handled (unreadable, too large, refused for good). */
export class PermanentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentError";
  }
}

/** What a failure means (see module doc). */
export type Verdict =
  | { transient: true; credentials: boolean }
  | { transient: false };

const TRANSIENT_DENO_ERRORS = [
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "NotConnected",
  "AddrInUse",
  "AddrNotAvailable",
  "BrokenPipe",
  "TimedOut",
  "Interrupted",
  "WouldBlock",
  "Busy",
  "NetworkUnreachable",
  "Http",
] as const;
/** What a proxy says when it wants credentials we did not give. */
const PROXY_AUTH_TEXT = /proxy authentication required/i;
/** What fetch and the TLS layer say when the network, not the request, failed. */
const NETWORK_TEXT =
  /fetch failed|error sending request|connection|connect error|dns error|failed to lookup|name resolution|network|tls|certificate|timed out|os error|socket|EAI_AGAIN|ECONN|ETIMEDOUT|EPIPE/i;

/** Judges `error` (and its causes) by the rules in the module doc. */
export function classify(error: unknown): Verdict {
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const verdict = judge(e);
    if (verdict) return verdict;
    e = (e as { cause?: unknown }).cause;
  }
  return { transient: false };
}

/** True when `error` is worth retrying later (see module doc). */
export function isTransient(error: unknown): boolean {
  return classify(error).transient;
}

function judge(error: unknown): Verdict | undefined {
  if (error instanceof CredentialsError) return { transient: true, credentials: true };
  if (error instanceof TransientError) return { transient: true, credentials: false };
  if (error instanceof PermanentError) return { transient: false };
  const status = (error as { status?: unknown })?.status;
  if (typeof status === "number") {
    if (status === 401 || status === 403 || status === 407) {
      return { transient: true, credentials: true };
    }
    if (status === 0 || status === 408 || status === 425 || status === 429 || status >= 500) {
      return { transient: true, credentials: false };
    }
    if (status >= 400) return { transient: false };
  }
  if (
    error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
  ) {
    return { transient: true, credentials: true };
  }
  for (const name of TRANSIENT_DENO_ERRORS) {
    const cls = (Deno.errors as Record<string, unknown>)[name];
    if (typeof cls === "function" && error instanceof (cls as typeof Error)) {
      return { transient: true, credentials: false };
    }
  }
  const name = (error as Error)?.name;
  if (name === "TimeoutError" || name === "AbortError") {
    return { transient: true, credentials: false };
  }
  // A certificate we do not trust, or a login refused: our configuration, not the input.
  if (name === "TlsError" || name === "AuthError") return { transient: true, credentials: true };
  if (
    error instanceof TypeError &&
    (tlsErrorFrom("", error) !== undefined || PROXY_AUTH_TEXT.test(error.message))
  ) {
    return { transient: true, credentials: true };
  }
  if (error instanceof TypeError && NETWORK_TEXT.test(error.message)) {
    return { transient: true, credentials: false };
  }
  return undefined;
}

/** An error's message with its causes' (fetch's "error sending request" alone names no host). */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  let text = error.message;
  for (let cause = error.cause, depth = 0; cause instanceof Error && depth < 8; depth++) {
    if (!text.includes(cause.message)) text += `: ${cause.message}`;
    cause = cause.cause;
  }
  return text;
}
