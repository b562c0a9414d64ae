/** Connection failures that retrying cannot fix: a refused login (TLS ones: mod/tls). */

/** The broker refused the login. */
export class AuthError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthError";
  }
}
