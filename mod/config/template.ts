/**
 * The commented config template: `agent config init` writes it, and config.example.ini in
 * the repository is this text (a test keeps them equal). Kept as a string so that the
 * bundled file and the compiled binary carry it.
 */
export const CONFIG_TEMPLATE =
  `# agent configuration. The format is the resilient-circuits app.config format (Python
# configparser): whole-line # or ; comments, "key = value", indented lines continue a value,
# and a # inside a value is part of the value. A value $NAME or \${NAME} (also inside a longer
# value) is read from the environment: keep secrets there, not in this file.
# Sections the agent does not know (other resilient-circuits apps) are left alone.

[agent]
# Deno KV store for dedupe ledgers, tokens and cursors. Relative paths are taken from this
# file's folder. Several agents on one host may share one file.
store = agent.kv
# text (default on a terminal) or json (default otherwise)
#log_format = json
#log_level = info
# A one-line health summary in the log every N minutes (0 = never).
health_interval_minutes = 5
# /healthz and /metrics for "agent run" (localhost unless you say otherwise).
#http_listen = 127.0.0.1:9464
# Your own action processors for "agent actions" ("agent actions new NAME" writes one);
# resilient-circuits' [resilient] componentsdir is used when this is not set.
#processors_dir = /etc/agent/processors

[resilient]
# The IBM Resilient / IBM SOAR platform.
host = soar.example.com
port = 443
# The organization's *name*; the agent looks up its id.
org = Example Org
# API key (preferred) or email/password. Put the secret in the environment:
#   api_key_secret = $RESILIENT_API_KEY_SECRET
api_key_id = 00000000-0000-0000-0000-000000000000
api_key_secret = change-me
#email = integrations@example.com
#password = $RESILIENT_PASSWORD
# PEM bundle that signs the platform's certificate (default: the system's roots).
# "false" turns verification off, which the agent warns about loudly.
#cafile = /etc/agent/soar-ca.pem
# STOMP (Action Module); stomp_host defaults to host.
#stomp_host = soar.example.com
stomp_port = 65001
#stomp_cafile = /etc/agent/soar-ca.pem
# Actions handled at once (the broker's prefetch is twice that, six times for a custom
# processor, unless stomp_prefetch_limit is set).
num_workers = 10
#stomp_prefetch_limit = 20
# Send each ACK and its reply in one broker transaction: exactly one reply per action even
# across crashes, at about half the throughput. Default: reply then ACK, the reply recorded
# in the store (never lost: a message whose ACK was lost comes back and is answered from
# the record; after a crash or a dropped link a reply may rarely be sent twice).
#stomp_transactions = false
# Action messages larger than this (KB) get an error reply and become dead letters unread.
#stomp_max_message_kb = 1024
#logdir = /var/log/agent
#logfile = agent.log
#loglevel = INFO
# REST request timeout, seconds.
#timeout = 30
# resilient-circuits' components folder: your processors when [agent] processors_dir is
# not set.
#componentsdir = /etc/agent/processors
# A forward proxy for SOAR REST, Entra ID, Graph, Jira and SecureChange (else HTTPS_PROXY
# from the environment; NO_PROXY hosts go direct).
#proxy_host = proxy.example.com
#proxy_port = 3128
#proxy_user = agent
#proxy_password = $PROXY_PASSWORD

[taskcalendar]
# Task owner / due date changes become calendar invites.
queue = taskcalendar
# Without smtpserver, invites are written as .eml files to outbox_dir.
#smtpserver = smtp.example.com
#smtpport = 587
smtpfrom = soar-calendar@example.com
#smtpuser = soar-calendar@example.com
#smtppw = $SMTP_PASSWORD
# STARTTLS (required and verified when true) or implicit TLS (use_ssl, port 465).
use_start_tls = false
use_ssl = false
#smtp_cafile = /etc/agent/smtp-ca.pem
timezone = UTC
all_day = false
# Owner and due date changed together within this many seconds give one invite.
debounce_seconds = 5
outbox_dir = outbox

[securechange]
# Tufin SecureChange REST API, for \`agent enrich\` (the trigger script).
url = https://securechange.example.com
username = agent
password = change-me
#cafile = /etc/agent/securechange-ca.pem
timeout = 30

[enrich]
# Integrations in comment order: built-ins (address_classification, risky_services,
# http_lookup) and plugins (<name>.js/.ts/.mjs in integrations_dir). Default: the first
# two built-ins plus every plugin in integrations_dir.
integrations = address_classification, risky_services
#integrations_dir = /opt/agent/integrations
# The Request Add-on's Python integrations (<name>.py with get_data(ticket_info, logger)),
# run unchanged by this interpreter (the only one the agent may start): point
# integrations_dir at the add-on's bin/integrations.
#python = /usr/bin/python3
# SCW_EVENT values to act on.
events = CREATE
timeout_seconds = 30
max_comment_chars = 10000
post_errors = false
# Memory (MB) each plugin's sandbox may use; a plugin's section may set its own.
max_memory_mb = 1024

# Each integration reads its own section. allow_net / allow_read grant its sandbox network
# hosts and files (nothing by default); timeout_seconds and max_memory_mb override the defaults.
[risky_services]
max_range = 1000

#[http_lookup]
#url = https://cmdb.example.com/api/ci?ip={ip}
#headers = Authorization: Bearer $CMDB_TOKEN
#field = result.name
#allow_net = cmdb.example.com

# --- The mail bridge ("agent mail-bridge", "agent authorize") ---------------------------
# A Microsoft 365 mailbox read with application permissions (client credentials). Give the
# app Mail.ReadWrite (+ Mail.Send for acknowledgements) and restrict it to this mailbox with
# an Exchange application access policy. Without [graph] and [jira], [mail_bridge] alone
# runs on the embedded defaults: .eml files from mail_dir, issues as JSON in issues_dir.
#[graph]
#tenant_id = 00000000-0000-0000-0000-000000000000
#client_id = 00000000-0000-0000-0000-000000000000
#client_secret = $GRAPH_CLIENT_SECRET
# ...or a certificate instead of the secret:
#certificate_file = /etc/agent/graph-app.key
#certificate_thumbprint = 3F2A...
# ...or no credential and a user who signs in once (agent authorize --device-code), where
# the tenant grants no application permissions on mailboxes:
#auth = delegated
#scopes = Mail.ReadWrite, Mail.Send, offline_access
#mailbox = helpdesk@example.com
#folders = Inbox
# National clouds: https://login.microsoftonline.us, https://graph.microsoft.us/v1.0
#authority_host = https://login.microsoftonline.com
#graph_url = https://graph.microsoft.com/v1.0
#poll_seconds = 30
#page_size = 50
# Graph allows 4 requests at once per app and mailbox.
#max_concurrency = 4
# PEM bundle for Entra ID's and Graph's certificates (default: the system's roots).
#cafile = /etc/agent/proxy-ca.pem
#timeout = 30

# Jira Cloud (REST v3, ADF) or Server/Data Center (REST v2, wiki markup).
#[jira]
#url = https://example.atlassian.net
#deployment = cloud
#user = bridge@example.com
#api_token = $JIRA_API_TOKEN
# Server/DC with a personal access token instead of user + api_token:
#personal_access_token = $JIRA_PAT
#project = SUP
#issue_type = Task
#cafile = /etc/agent/jira-ca.pem
#timeout = 30

#[mail_bridge]
# Labels on every issue (each also gets its mail's marker label, for crash recovery).
#labels = from-mail
#bridge_label = mail-bridge
# A [tag] in the subject picks a category label; otherwise default_category.
#categories = general, network, access
#default_category = general
# Recipient address -> project; a [KEY] subject tag of these projects also picks one.
#projects = netops@example.com = NET, access@example.com = ACC
# More projects whose keys a [KEY] tag or an issue key in the subject may name.
#project_keys = SEC
#allowed_domains = example.com
#blocked_addresses = noreply@example.com, *@spam.example
# The bridge's own mail is never bridged: its header, and these addresses besides the
# mailbox's own (its aliases), in any From or the Sender.
#own_header = X-Agent-Mail-Bridge
#own_addresses = support@example.com
# Reporter for senders who are not Jira users (e-mail, account id or user name).
#default_reporter = servicedesk@example.com
#watchers_from_cc = true
# Outlook importance -> Jira priority
#priorities = high:High, low:Low
#ack_mail = true
#mark_category = Jira: {key}
#move_to = archive
#max_mail_mb = 25
# Summary length; how many days back crash recovery looks for an issue created but not
# recorded; how long a mail is reserved for the agent working on it (0: one bridge per
# mailbox).
#max_summary = 200
#reconcile_days = 14
#claim_seconds = 120
# The way back: public comments on bridged issues go to the sender as replies in their
# thread (also to the original Cc's with reply_cc). Jira's comment webhook, if you add one,
# posts to <ticket API>/webhooks/jira with this shared secret.
#replies = true
#reply_cc = false
#webhook_secret = $JIRA_WEBHOOK_SECRET
#mail_dir = mail
#issues_dir = issues

#[ticket_api]
# The ticket service (agent ticket-api, or in agent run): the Ticket Manager's REST API and a
# Swagger UI under http(s)://listen/context/. Tokens: agent ticket-api token create NAME.
#listen = 127.0.0.1:5000
#context = /api/tickets/v1
#tls_cert = /etc/agent/ticket-api.crt
#tls_key = /etc/agent/ticket-api.key
# Narrow what it serves: projects (default: every project the bridge may create in) and
# categories (default: every [mail_bridge] category).
#boards = SUP
#categories = general, network
#max_request_mb = 25
# A request's deadline, Jira's retries included; how long a ticket read is served from the
# store before Jira is asked again.
#timeout_seconds = 10
#cache_seconds = 30
`;
