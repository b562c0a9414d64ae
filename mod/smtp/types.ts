import type { EmailAddress } from "./address.ts";
/** Sending mail, as the calendar sees it (SMTP, or .eml files for the demo). */

/** A mail with a calendar part. */
export interface InviteMail {
  from: string;
  /** The one recipient (validated: no name, list or header can ride along). */
  to: EmailAddress;
  subject: string;
  text: string;
  /** The iCalendar text; sent as a text/calendar part and as an .ics attachment. */
  ics: string;
  method: "REQUEST" | "CANCEL";
  messageId: string;
  /** Extra headers (e.g. the agent's own marker). */
  headers?: Record<string, string>;
}

/** Where a mail went. */
export interface SendResult {
  /** "smtp" with the server's answer, or "file" with the path. */
  kind: "smtp" | "file";
  detail: string;
}

/** Sends mail. */
export interface Mailer {
  send(mail: InviteMail, options?: { signal?: AbortSignal }): Promise<SendResult>;
  close(): void;
}

/** The SMTP server refused for good (5xx, TLS trust, authentication). */
export class PermanentMailError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentMailError";
  }
}

/** The server refused the login (AUTH): the credentials, not the mail, are wrong. */
export class SmtpAuthError extends PermanentMailError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SmtpAuthError";
  }
}
