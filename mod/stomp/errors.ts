/** Connection failures that retrying cannot fix. */

/** The peer's certificate was refused (untrusted CA, wrong host name, expired...). */
export class TlsError extends Error {
  constructor(readonly host: string, readonly reason: string, options?: ErrorOptions) {
    super(`TLS verification of ${host} failed: ${reason}`, options);
    this.name = "TlsError";
  }
}

/** The broker refused the login. */
export class AuthError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthError";
  }
}

const TLS_REASONS: [RegExp, string][] = [
  [
    /UnknownIssuer|unknown ca|self.signed|unable to get local issuer/i,
    "the certificate is not signed by a trusted CA (set cafile to the CA bundle that signed it)",
  ],
  [
    /NotValidForName|not valid for name|hostname|altname|IP address mismatch/i,
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
  if (!/certificate|tls|handshake|UnknownIssuer|NotValidForName/i.test(message)) return undefined;
  for (const [pattern, reason] of TLS_REASONS) {
    if (pattern.test(message)) {
      return new TlsError(host, `${reason} [${message}]`, { cause: error });
    }
  }
  return /invalid peer certificate/i.test(message)
    ? new TlsError(host, message, { cause: error })
    : undefined;
}
