/** `agent doctor`: the checks of doctor.ts as a table (or JSON); exit 0 only when all pass. */
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import { type Finding, tableHeader, tableRow, verdict } from "../probe/report.ts";

const HELP = `Usage: agent doctor [--json] [--timeout SECONDS] [--config FILE]

Checks every system the config names, without changing anything: DNS, TCP and TLS
(certificate chain, expiry date, host name) of each endpoint, then its credentials -
Resilient REST (login, org, Action Module enabled) and STOMP (login, a subscription to
each action queue that takes no message), SMTP (EHLO, STARTTLS, AUTH; no mail is sent),
the Graph token and one read of the mailbox, Jira (who the credentials are, each
project and its issue type), SecureChange (one authenticated read) - and the store
(writable, size), the config file's permissions and the clock against the servers'.

Prints one row per check with a hint for each failure. Exit code 0 when nothing failed
(warnings allowed), 1 otherwise.

Options:
      --json            One JSON object: {"ok": bool, "findings": [...]}
      --timeout S       Time limit per network step, seconds (default 10)
${COMMON_HELP}`;

export const doctorCommand: Command = {
  name: "doctor",
  summary: "Check connectivity, TLS and credentials of every configured system",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp({ name: "doctor", help: HELP }, args, {
      ...COMMON_OPTIONS,
      json: { type: "boolean" },
      timeout: { type: "string" },
    }, deps);
    if (!parsed) return 0;
    const { values } = parsed;
    const seconds = Number(values.timeout ?? 10);
    if (!(seconds > 0 && seconds <= 300)) {
      throw new UsageError(
        `--timeout must be a number of seconds (0 to 300), not "${values.timeout}"`,
      );
    }
    const config = await loadCommandConfig(values, deps);
    // The checks report through the table; the libraries' own chatter stays below warnings.
    // Nothing written: not even the log file.
    setupCommandLogging({ ...values, "log-level": values["log-level"] ?? "error" }, config, {
      logFile: false,
    });
    if (!values.json) deps.stdout(tableHeader());
    const { runDoctor } = await import("./doctor.ts");
    const findings = await runDoctor(config, {
      signal: deps.signal,
      timeoutMs: seconds * 1000,
      ...(values.json ? {} : { onFinding: (f: Finding) => deps.stdout(tableRow(f)) }),
    });
    const { ok, line } = verdict(findings);
    deps.stdout(
      values.json ? JSON.stringify({ ok, verdict: line, findings }, null, 2) + "\n" : `\n${line}\n`,
    );
    return ok ? 0 : 1;
  },
};
