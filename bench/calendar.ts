/**
 * Invites per second through ActiveMQ -> agent (calendar processor) -> SMTP with pooled
 * connections, versus sending the same mails with one SMTP connection each at the same
 * concurrency (what the old example did per event).
 */
// @ts-types="@types/nodemailer"
import nodemailer from "nodemailer";
import { type BenchResult, round } from "./_report.ts";
import { startBroker } from "../tests/support/activemq.ts";
import { FakeResilient } from "../tests/support/fake_resilient.ts";
import { PlatformClient, taskAction } from "../tests/support/stomp_client.ts";
import { startCore } from "../tests/support/agent_core.ts";
import { TestSmtpServer } from "../tests/support/smtp_server.ts";
import { calendarProcessor } from "../mod/calendar/processor.ts";
import { SmtpMailer } from "../mod/smtp/mailer.ts";
import type { InviteMail, Mailer } from "../mod/smtp/types.ts";
import { setupLogging } from "../mod/log/log.ts";
import { calendarConfig } from "../tests/support/calendar.ts";

const ORG = 201;
const INVITES = 300;
const CONNECTIONS = 3;

export async function benchCalendar(): Promise<BenchResult> {
  setupLogging({ format: "json", level: "error" });
  const broker = await startBroker();
  const fake = await new FakeResilient({ orgId: ORG }).start();
  fake.users.set(4, { id: 4, email: "ann@example.com", fname: "Ann", lname: "Example" });
  const platform = await PlatformClient.connect(broker);
  const smtp = await new TestSmtpServer().start();
  try {
    const pooled = new SmtpMailer({
      host: "127.0.0.1",
      port: smtp.port,
      secure: false,
      requireStartTls: false,
      maxConnections: CONNECTIONS,
    });
    const sent: InviteMail[] = [];
    const recording: Mailer = {
      send: (mail, options) => {
        sent.push(mail);
        return pooled.send(mail, options);
      },
      close: () => pooled.close(),
    };
    const processor = calendarProcessor(
      calendarConfig({ queue: "benchcal", smtpport: smtp.port }),
      {
        mailer: recording,
        platformHost: "soar.example.com",
      },
    );
    platform.listenForReplies(ORG, "benchcal");
    for (let i = 0; i < INVITES; i++) {
      platform.sendAction(ORG, "benchcal", taskAction({ id: 10_000 + i, owner_id: 4 }));
    }
    await platform.sync();
    const t0 = performance.now();
    const core = await startCore(broker, fake, [processor], { workers: 10 });
    await smtp.waitForMessages(INVITES, 300_000);
    const pipelineMs = performance.now() - t0;
    await core.stop();
    pooled.close();
    const connectionsPooled = smtp.connections;

    // The same mails, one SMTP connection each, CONNECTIONS at a time.
    const single = nodemailer.createTransport({
      host: "127.0.0.1",
      port: smtp.port,
      secure: false,
      ignoreTLS: true,
    });
    const before = smtp.messages.length;
    const connectionsBefore = smtp.connections;
    const t1 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      while (next < sent.length) {
        const mail = sent[next++]!;
        await single.sendMail({
          from: mail.from,
          to: mail.to,
          subject: mail.subject,
          text: mail.text,
          messageId: mail.messageId,
          icalEvent: { method: mail.method, content: mail.ics, filename: "invite.ics" },
        });
      }
    }));
    const singleMs = performance.now() - t1;
    single.close();
    const pipelineRate = INVITES / (pipelineMs / 1000);
    const singleRate = (smtp.messages.length - before) / (singleMs / 1000);
    return {
      name: "calendar",
      figures: {
        invites: INVITES,
        pipeline_invites_per_s: round(pipelineRate),
        pipeline_smtp_connections: connectionsPooled,
        one_connection_each_mails_per_s: round(singleRate),
        one_connection_each_smtp_connections: smtp.connections - connectionsBefore,
        pooled_pipeline_vs_one_connection_each: round(pipelineRate / singleRate, 2),
      },
      notes: [
        `pipeline: ${INVITES} task messages through ActiveMQ (STOMP+SSL) -> agent (REST owner lookup, ledger, invite) -> SMTP pool of ${CONNECTIONS}`,
        `baseline: only sending the same ${INVITES} mails, a new SMTP connection per mail, ${CONNECTIONS} at a time (no broker, no REST)`,
      ],
    };
  } finally {
    await platform.close();
    await smtp.stop();
    await fake.stop();
    await broker.dispose();
  }
}
