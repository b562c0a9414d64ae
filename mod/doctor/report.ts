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

/** A plain-text table (no colours: it goes to logs and tickets too), hints under their row. */
export function renderTable(findings: Finding[]): string {
  const widths = [
    Math.max(6, ...findings.map((f) => f.system.length)),
    Math.max(5, ...findings.map((f) => f.check.length)),
  ] as const;
  const row = (status: string, system: string, check: string, detail: string) =>
    `${status.padEnd(4)}  ${system.padEnd(widths[0])}  ${check.padEnd(widths[1])}  ${detail}`
      .trimEnd();
  const lines = [row("", "SYSTEM", "CHECK", "DETAIL")];
  const indent = " ".repeat(4 + 2 + widths[0] + 2 + widths[1] + 2);
  for (const f of findings) {
    lines.push(row(MARK[f.status], f.system, f.check, f.detail));
    if (f.hint) lines.push(`${indent}-> ${f.hint}`);
  }
  lines.push("", verdict(findings).line);
  return lines.join("\n") + "\n";
}
