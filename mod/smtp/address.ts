/**
 * One validated address for every recipient the agent derives from records it does not
 * control (SOAR users, mail Cc's, watchers): exactly one RFC 5322 addr-spec, nothing else.
 * No display name, no list, no CR/LF, no comment, no quoted local part: a string that would
 * make a mail library add, swap or hide a recipient is refused, never repaired.
 */

/** An address that passed {@linkcode parseAddress}. */
export type EmailAddress = string & { readonly __brand: "EmailAddress" };

/** The atext of RFC 5322 (plus UTF-8 letters, for SMTPUTF8 local parts). */
const ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\p{L}\p{N}-]+$/u;
const LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

/** The address, or what is wrong with it (naming the first offending character). */
export function parseAddress(
  raw: unknown,
): { ok: true; address: EmailAddress } | { ok: false; problem: string } {
  if (typeof raw !== "string") return { ok: false, problem: "it is not text" };
  const text = raw.trim();
  if (!text) return { ok: false, problem: "it is empty" };
  // deno-lint-ignore no-control-regex
  const control = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.exec(text);
  if (control) {
    return {
      ok: false,
      problem: `it contains a control character (U+${
        control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")
      })`,
    };
  }
  const special = /[\s,;<>"()[\]\\:]/.exec(text);
  if (special) {
    return {
      ok: false,
      problem: `it contains ${
        /\s/.test(special[0]) ? "a space" : `"${special[0]}"`
      } (one plain address is expected, no name, list or comment)`,
    };
  }
  const at = text.lastIndexOf("@");
  if (at <= 0 || at === text.length - 1 || text.indexOf("@") !== at) {
    return { ok: false, problem: "it is not of the form name@domain" };
  }
  const local = text.slice(0, at);
  const domain = text.slice(at + 1);
  if (text.length > 254 || local.length > 64) return { ok: false, problem: "it is too long" };
  if (!local.split(".").every((atom) => ATOM.test(atom))) {
    return { ok: false, problem: `"${local}" is not a valid local part` };
  }
  if (!domain.split(".").every((label) => LABEL.test(label))) {
    return { ok: false, problem: `"${domain}" is not a valid domain` };
  }
  return { ok: true, address: `${local}@${domain.toLowerCase()}` as EmailAddress };
}

/** Like {@linkcode parseAddress}, for an address that must be valid: throws naming `what`. */
export function requireAddress(raw: unknown, what: string): EmailAddress {
  const parsed = parseAddress(raw);
  if (!parsed.ok) {
    throw new Error(
      `${what} has an unusable e-mail address ${
        JSON.stringify(String(raw).slice(0, 120))
      }: ${parsed.problem}`,
    );
  }
  return parsed.address;
}
