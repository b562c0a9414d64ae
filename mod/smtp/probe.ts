/** `agent doctor`'s check of SMTP: the endpoint (STARTTLS included), then the session by the mailer the calendar uses; or the .eml folder. */
import type { Config } from "../config/config.ts";
import { checkEndpoint } from "../probe/network.ts";
import {
  findingsOf,
  limited,
  message,
  type ProbeContext,
  tlsOf,
  writableFolder,
} from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";
import { SmtpAuthError } from "./types.ts";

/** SMTP: the endpoint (STARTTLS handshake included), then EHLO/STARTTLS/AUTH by nodemailer. */
export async function checkSmtp(config: Config, ctx: ProbeContext): Promise<Finding[]> {
  const c = config.taskcalendar!;
  const { list, add } = findingsOf("[taskcalendar] SMTP");
  if (!c.smtpserver) {
    try {
      const where = await writableFolder(c.outboxDir);
      add(
        "outbox",
        "pass",
        `no smtpserver: invites are written to ${c.outboxDir} (` +
          (where === c.outboxDir ? "writable)" : `to be made in ${where}, writable)`),
      );
    } catch (error) {
      add("outbox", "fail", `${c.outboxDir}: ${message(error)}`, "check [taskcalendar] outbox_dir");
    }
    return list;
  }
  const report = await checkEndpoint({
    system: "[taskcalendar] SMTP",
    host: c.smtpserver,
    port: c.smtpport,
    hostKey: "[taskcalendar] smtpserver",
    tls: c.useSsl || c.useStartTls
      ? {
        ...await tlsOf(c.smtpTls, "[taskcalendar] smtp_cafile"),
        ...(c.useSsl ? {} : { startTls: "smtp" as const }),
      }
      : undefined,
    timeoutMs: ctx.timeoutMs,
  }, ctx.signal);
  list.push(...report.findings);
  if (!report.usable) return list;
  const { SmtpMailer } = await import("./mailer.ts");
  let mailer: Awaited<ReturnType<typeof SmtpMailer.fromConfig>>;
  try {
    mailer = await SmtpMailer.fromConfig(c, config.file);
  } catch (error) {
    add("session", "fail", message(error));
    return list;
  }
  try {
    add("session", "pass", await limited(ctx, "SMTP", () => mailer!.verify()));
  } catch (error) {
    const refusedLogin = error instanceof SmtpAuthError;
    add(
      refusedLogin ? "auth" : "session",
      "fail",
      message(error),
      refusedLogin ? "check [taskcalendar] smtpuser and smtppw" : undefined,
    );
  } finally {
    mailer?.close();
  }
  return list;
}
