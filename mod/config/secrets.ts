/**
 * Secrets written into the config file itself (not `$NAME` from the environment): the
 * agent's own secret keys, and in plugin and processor sections any key named like a secret
 * or a value that carries a credential (a Bearer token, an Authorization header).
 */
import type { Config } from "./config.ts";

const SECRET_KEY = /pass(word)?|passwd|secret|token|api[_-]?key|credential|auth|_pw$|^pw$/i;
const CREDENTIAL_VALUE =
  /\bBearer\s+[A-Za-z0-9._~+/=-]{8,}|Authorization:\s*(Basic|Bearer|Token)\s+\S{6,}/i;
const ENV_ONLY = /^\s*["']?\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)["']?\s*$/;

/** `section.key` of every secret written literally into the file. */
export function literalSecrets(config: Config): string[] {
  const own = [...config.effective].flatMap(([section, values]) =>
    [...values].filter(([, v]) => v.secret && v.literal).map(([key]) => `${section}.${key}`)
  );
  const user = Object.entries(config.other).flatMap(([section, values]) =>
    Object.entries(values).filter(([key, value]) =>
      value.trim() !== "" && !ENV_ONLY.test(value) &&
      ((SECRET_KEY.test(key) && !/\$\{?[A-Za-z_]/.test(value)) ||
        (CREDENTIAL_VALUE.test(value) && !/(Bearer|Basic|Token)\s+["']?\$/i.test(value)))
    ).map(([key]) => `${section}.${key}`)
  );
  return [...own, ...user];
}

/**
 * A warning when the config file can be read by every user of the machine and holds
 * secrets; undefined when it cannot, or holds none.
 */
export async function worldReadableSecrets(config: Config): Promise<string | undefined> {
  const secrets = literalSecrets(config);
  if (!secrets.length) return undefined;
  const mode = (await Deno.stat(config.file)).mode;
  if (mode === null || !(mode & 0o004)) return undefined;
  return `${config.file} is world-readable (mode 0${(mode & 0o777).toString(8)}) and holds ` +
    `secrets (${secrets.join(", ")}): chmod 600 ${config.file}, or move them to environment ` +
    `variables ($NAME)`;
}
