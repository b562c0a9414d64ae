/**
 * Text from outside (SOAR records, mail, tickets) made safe to put into a header, an
 * iCalendar property or a one-line field: control characters out, length capped with a note.
 */

// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/g;
const LINE_BREAKS = /[\r\n\u0085]+/g;

/** Without control characters (NUL, ESC, DEL, ...); line breaks kept unless `oneLine`. */
export function stripControls(text: string, options: { oneLine?: boolean } = {}): string {
  const clean = text.replace(/\r\n?/g, "\n").replace(CONTROLS, "").replace(/\t/g, " ");
  return options.oneLine ? clean.replace(LINE_BREAKS, " ").replace(/ {2,}/g, " ").trim() : clean;
}

/** At most `max` characters; a longer text is cut and ends with `note` (or "…"). */
export function capText(text: string, max: number, note = "…"): string {
  if (text.length <= max) return text;
  const keep = Math.max(0, max - note.length);
  // Do not split a surrogate pair.
  const cut = /[\ud800-\udbff]/.test(text.charAt(keep - 1)) ? keep - 1 : keep;
  return text.slice(0, cut) + note;
}
