/** Which certificates a client trusts, as the config says, and loading them. */

/** TLS trust: a PEM bundle, the system roots, or (loudly) no verification. */
export type TlsTrust = { kind: "system" } | { kind: "cafile"; path: string } | { kind: "insecure" };

/**
 * The PEM CA certificates a trust setting names: undefined for the system roots (and for
 * "insecure", which Deno can only honour with its command-line flag). `label` names the
 * setting in the error ("smtp_cafile"); by default "the CA bundle".
 */
export async function caCertsFor(
  trust: TlsTrust,
  label = "the CA bundle",
): Promise<string[] | undefined> {
  if (trust.kind !== "cafile") return undefined;
  try {
    return [await Deno.readTextFile(trust.path)];
  } catch (error) {
    throw new Error(`Cannot read ${label} "${trust.path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}
