/**
 * One classification of TLS failures for every client (STOMP, SOAR REST, SecureChange, SMTP)
 * and for doctor: a certificate problem becomes a TlsError naming the host and what to fix,
 * which the services treat as not worth retrying.
 */

/** The peer's certificate was refused (untrusted CA, wrong host name, expired...). */
export class TlsError extends Error {
  constructor(readonly host: string, readonly reason: string, options?: ErrorOptions) {
    super(`TLS verification of ${host} failed: ${reason}`, options);
    this.name = "TlsError";
  }
}

const TLS_REASONS: [RegExp, string][] = [
  [
    /UnknownIssuer|unknown ca|self.signed|unable to get local issuer/i,
    "the certificate is not signed by a trusted CA (set cafile to the CA bundle that signed it)",
  ],
  [
    /NotValidForName|not valid for name|hostname|altname|IP address mismatch|ERR_TLS_CERT_ALTNAME/i,
    "the certificate does not name this host",
  ],
  [/Expired|NotValidYet|not valid yet|expired/i, "the certificate is expired or not yet valid"],
  [/CaUsedAsEndEntity/i, "the server presents a CA certificate as its own (CaUsedAsEndEntity)"],
];

/** Classifies a connect error: a TlsError for certificate problems, else undefined. */
export function tlsErrorFrom(host: string, error: unknown): TlsError | undefined {
  // fetch says only "fetch failed"; the reason is further down the cause chain.
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  const message = parts.join(": ");
  if (!/certificate|tls|handshake|UnknownIssuer|NotValidForName|CERT_/i.test(message)) {
    return undefined;
  }
  for (const [pattern, reason] of TLS_REASONS) {
    if (pattern.test(message)) {
      return new TlsError(host, `${reason} [${message}]`, { cause: error });
    }
  }
  // Deno's rustls says "invalid peer certificate"; node:tls (nodemailer) says "unable to
  // verify the first certificate" or names an OpenSSL code (CERT_...).
  return /invalid peer certificate|unable to verify|CERT_/i.test(message)
    ? new TlsError(host, message, { cause: error })
    : undefined;
}
