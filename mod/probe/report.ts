/** What `agent doctor` finds: one row per check, a table for people, JSON for machines. */

/** pass: fine. warn: works, but look. fail: will not work. skip: not checked (why in detail). */
export type Status = "pass" | "warn" | "fail" | "skip";

/** One check's outcome. */
export interface Finding {
  /** The system, as the config names it: "[resilient] REST", "[taskcalendar] SMTP", ... */
  system: string;
  /** What was checked: "dns", "tcp", "tls", "login", "project SUP", ... */
  check: string;
  status: Status;
  /** What was found, naming the thing. */
  detail: string;
  /** What to do about a warn or fail. */
  hint?: string | undefined;
}

const MARK: Record<Status, string> = { pass: "ok", warn: "WARN", fail: "FAIL", skip: "skip" };

/** The verdict: healthy only when nothing failed (warnings do not fail the run). */
export function verdict(findings: Finding[]): { ok: boolean; line: string } {
  const count = (s: Status) => findings.filter((f) => f.status === s).length;
  const failed = count("fail");
  const line = `${failed ? "NOT READY" : "READY"}: ${count("pass")} passed, ${count("warn")} ` +
    `warnings, ${failed} failed, ${count("skip")} skipped`;
  return { ok: failed === 0, line };
}

/** Column widths of the table: fixed, so that rows can be printed as their checks finish. */
const WIDTHS = [24, 14] as const;

function row(status: string, system: string, check: string, detail: string): string {
  return `${status.padEnd(4)}  ${system.padEnd(WIDTHS[0])}  ${check.padEnd(WIDTHS[1])}  ${detail}`
    .trimEnd();
}

/** The table's header line. */
export function tableHeader(): string {
  return row("", "SYSTEM", "CHECK", "DETAIL") + "\n";
}

/** One finding as table lines (no colours: it goes to logs and tickets too), its hint below. */
export function tableRow(f: Finding): string {
  const indent = " ".repeat(4 + 2 + Math.max(WIDTHS[0], f.system.length) + 2 + WIDTHS[1] + 2);
  return row(MARK[f.status], f.system, f.check, f.detail) + "\n" +
    (f.hint ? `${indent}-> ${f.hint}\n` : "");
}

/** The whole table: header, rows, verdict. */
export function renderTable(findings: Finding[]): string {
  return tableHeader() + findings.map(tableRow).join("") + "\n" + verdict(findings).line + "\n";
}
