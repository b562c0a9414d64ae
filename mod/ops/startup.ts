/**
 * The start-up lines: each service says once, at start, what it connects to (hosts, ports,
 * TLS, the account or mailbox), so an operator reading the log knows where it is going
 * before anything can fail. No secrets: names and addresses only.
 */
import type { Config, ResilientConfig, TaskCalendarConfig } from "../config/config.ts";

/** The platform: REST and STOMP endpoints, org, who logs in. */
export function platformLine(r: ResilientConfig): string {
  const who = r.auth.kind === "api_key" ? `API key ${r.auth.id}` : `user ${r.auth.email}`;
  const proxy = r.proxy ? `, REST through the proxy ${r.proxy.url}` : "";
  return `Connecting to the platform at ${r.host}:${r.port} (org ${r.org}, ${who}), ` +
    `STOMP ${r.stompHost}:${r.stompPort} over TLS${proxy}`;
}

/** Where the calendar's invitations go. */
export function calendarLine(c: TaskCalendarConfig): string {
  if (!c.smtpserver) {
    return `Calendar invitations from ${c.smtpfrom} are written to the outbox folder ` +
      `${c.outboxDir} ([taskcalendar] smtpserver is not set)`;
  }
  const tls = c.useSsl ? "TLS" : c.useStartTls ? "STARTTLS" : "no TLS";
  const auth = c.smtpuser ? `, login ${c.smtpuser}` : ", no login";
  return `Calendar invitations from ${c.smtpfrom} go by SMTP to ${c.smtpserver}:${c.smtpport} ` +
    `(${tls}${auth})`;
}

/** The mail bridge's two sides. */
export function bridgeLine(config: Config): string {
  const settings = config.mailBridge!;
  const from = config.graph
    ? `the mailbox ${config.graph.mailbox} (folders ${
      config.graph.folders.join(", ")
    }) through Microsoft Graph at ${config.graph.graphUrl}`
    : `.eml files in ${settings.mailDir} (embedded defaults: [graph] is not set)`;
  const to = config.jira
    ? `Jira at ${config.jira.url} (projects ${settings.projectKeys.join(", ")})`
    : `issues as JSON in ${settings.issuesDir} (embedded defaults: [jira] is not set)`;
  return `Mail bridge: ${from} -> ${to}`;
}
