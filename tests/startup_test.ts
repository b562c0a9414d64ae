/** The start-up lines: what each service connects to, named once at start, never a secret. */
import { assertEquals } from "./support/assert.ts";
import { parseConfig } from "../mod/config/config.ts";
import { bridgeLine, calendarLine, platformLine } from "../mod/ops/startup.ts";

const env = (name: string) =>
  ({ SOAR_SECRET: "soar-secret-1", SMTP_PW: "smtp-secret-2", JIRA_TOKEN: "jira-secret-3" })[
    name
  ];

Deno.test("each service's start-up line names hosts, ports, TLS and account, and no secret", () => {
  const config = parseConfig(
    `[resilient]
host = soar.example.com
org = Example Org
api_key_id = key-id-1
api_key_secret = $SOAR_SECRET
stomp_port = 65001
proxy_host = proxy.example.com
proxy_port = 3128
proxy_user = px
proxy_password = $SOAR_SECRET

[taskcalendar]
smtpserver = mail.example.com
use_start_tls = true
smtpuser = soar-mailer
smtppw = $SMTP_PW
smtpfrom = soar@example.com

[graph]
tenant_id = 11111111-1111-1111-1111-111111111111
client_id = 22222222-2222-2222-2222-222222222222
client_secret = $SMTP_PW
mailbox = support@example.com
folders = Inbox, Escalations

[jira]
url = https://example.atlassian.net
user = bot@example.com
api_token = $JIRA_TOKEN
project = SUP
`,
    { file: "app.config", env },
  );
  const lines = [
    platformLine(config.resilient!),
    calendarLine(config.taskcalendar!),
    bridgeLine(config),
  ];
  assertEquals(lines, [
    "Connecting to the platform at soar.example.com:443 (org Example Org, API key key-id-1), " +
    "STOMP soar.example.com:65001 over TLS, REST through the proxy http://proxy.example.com:3128",
    "Calendar invitations from soar@example.com go by SMTP to mail.example.com:587 " +
    "(STARTTLS, login soar-mailer)",
    "Mail bridge: the mailbox support@example.com (folders Inbox, Escalations) through " +
    "Microsoft Graph at https://graph.microsoft.com/v1.0 -> Jira at https://example.atlassian.net " +
    "(projects SUP)",
  ]);
  for (const secret of ["soar-secret-1", "smtp-secret-2", "jira-secret-3"]) {
    assertEquals(lines.some((l) => l.includes(secret)), false, secret);
  }
});

Deno.test("the start-up lines of the embedded defaults say what is not configured", () => {
  const config = parseConfig(
    "[taskcalendar]\nsmtpfrom = soar@example.com\noutbox_dir = /var/tmp/outbox\n" +
      "[mail_bridge]\nmail_dir = /srv/mail\nissues_dir = /srv/issues\n",
    { file: "app.config", env },
  );
  assertEquals(
    calendarLine(config.taskcalendar!),
    "Calendar invitations from soar@example.com are written to the outbox folder " +
      "/var/tmp/outbox ([taskcalendar] smtpserver is not set)",
  );
  assertEquals(
    bridgeLine(config),
    "Mail bridge: .eml files in /srv/mail (embedded defaults: [graph] is not set) -> issues " +
      "as JSON in /srv/issues (embedded defaults: [jira] is not set)",
  );
});
