/**
 * `agent doctor`: for each configured system, DNS, TCP, TLS (chain, expiry, host name) and
 * the credentials, using the same clients the services use, so a pass here means the
 * service will get as far; plus the store, the config file's permissions and clock skew.
 * Each system's checks live with it (mod/<system>/probe.ts, on mod/probe's kit); this
 * runs them and hands on the findings.
 * Nothing is changed anywhere: no mail is sent, no message is consumed (the STOMP check
 * subscribes with a selector that matches nothing), nothing is written to Jira.
 */
import type { Config } from "../config/config.ts";
import { checkConfigFile } from "../config/probe.ts";
import { checkStore } from "../store/probe.ts";
import { checkResilient } from "../actions/probe.ts";
import { checkSmtp } from "../smtp/probe.ts";
import { checkGraph } from "../graph/probe.ts";
import { checkJira } from "../jira/probe.ts";
import { checkSecureChange } from "../securechange/probe.ts";
import { checkTicketApi } from "../ticket_api/probe.ts";
import type { ProbeContext } from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";

export interface DoctorOptions {
  signal?: AbortSignal | undefined;
  /** Per network step (default 10 s). */
  timeoutMs?: number;
  now?: () => number;
  /** Hears each finding as its system's checks finish. */
  onFinding?: (finding: Finding) => void;
}

/** Clock skew past this breaks tokens and TLS validity checks. */
const SKEW_FAIL_MS = 5 * 60_000;
const SKEW_WARN_MS = 30_000;

/** Runs every check the config calls for; the findings in a stable order. */
export async function runDoctor(config: Config, options: DoctorOptions = {}): Promise<Finding[]> {
  const ctx: ProbeContext = {
    signal: options.signal,
    timeoutMs: options.timeoutMs ?? 10_000,
    now: options.now ?? Date.now,
    clocks: [],
  };
  // Each system's rows are handed on as soon as its checks are done (the table grows as
  // the checks finish; a slow system does not hide the others).
  const done = (findings: Finding[]) => {
    for (const f of findings) options.onFinding?.(f);
    return findings;
  };
  const groups = await Promise.all([
    checkConfigFile(config).then(done),
    checkStore(config).then(done),
    config.resilient ? checkResilient(config, ctx).then(done) : [],
    config.taskcalendar ? checkSmtp(config, ctx).then(done) : [],
    config.graph ? checkGraph(config, ctx).then(done) : [],
    config.jira ? checkJira(config, ctx).then(done) : [],
    config.securechange ? checkSecureChange(config, ctx).then(done) : [],
    config.ticketApi ? checkTicketApi(config, ctx).then(done) : [],
  ]);
  return [...groups.flat(), ...done([clockFinding(ctx)])];
}

function clockFinding(ctx: ProbeContext): Finding {
  const system = "[agent] clock";
  if (!ctx.clocks.length) {
    return {
      system,
      check: "skew",
      status: "skip",
      detail: "no server answered with a Date header to compare with",
    };
  }
  const worst = ctx.clocks.reduce((a, b) => Math.abs(b.skewMs) > Math.abs(a.skewMs) ? b : a);
  const seconds = Math.round(Math.abs(worst.skewMs) / 1000);
  const detail = `largest difference ${seconds} s (${worst.system}); ` +
    `${ctx.clocks.length} server clock(s) compared`;
  const abs = Math.abs(worst.skewMs);
  if (abs > SKEW_FAIL_MS) {
    return {
      system,
      check: "skew",
      status: "fail",
      detail,
      hint: "synchronise this appliance's clock (NTP): tokens and certificates are time-bound",
    };
  }
  if (abs > SKEW_WARN_MS) {
    return { system, check: "skew", status: "warn", detail, hint: "enable NTP on this appliance" };
  }
  return { system, check: "skew", status: "pass", detail };
}
