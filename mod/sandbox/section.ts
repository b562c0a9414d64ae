/**
 * The INI section of sandboxed code (an enrichment plugin or a custom processor, `[name]`):
 * the keys that configure its sandbox, and the rest, which the code gets as its settings.
 * Values may be quoted; `$NAME`/`${NAME}` read the environment (and are treated as secrets).
 */
import { isAbsolute, relative, resolve } from "node:path";
import { type Config, ConfigError } from "../config/config.ts";
import { substituteEnv } from "../config/reader.ts";
import { secrets } from "../log/redact.ts";

/** Keys every sandboxed section may have that configure the sandbox, not the code. */
const SANDBOX_KEYS = ["allow_net", "allow_read", "timeout_seconds", "max_memory_mb", "cafile"];

/** A section, read. */
export interface SandboxSection {
  /** What the code gets: the section without the host's keys, a `cafile`'s PEM as `ca_pem`. */
  settings: Record<string, string>;
  allowNet: string[];
  allowRead: string[];
  /** `timeout_seconds`, when set. */
  timeoutSeconds: number | undefined;
  /** `max_memory_mb`, when set: the sandbox's heap and resident memory limit. */
  maxMemoryMb: number | undefined;
  /** Every value after unquoting and substitution (host keys included). */
  values: Record<string, string>;
}

/**
 * Reads section `name` (`raw` holds its values as written). `hostKeys` are further keys
 * the host reads itself (e.g. `workers`), kept out of `settings`.
 */
export async function readSandboxSection(
  config: Config,
  name: string,
  raw: Record<string, string>,
  env: (name: string) => string | undefined,
  hostKeys: string[] = [],
): Promise<SandboxSection> {
  const values = Object.fromEntries(
    Object.entries(raw).map(([k, v]) => [k, substitute(config.file, name, k, unquote(v), env)]),
  );
  const hidden = new Set([...SANDBOX_KEYS, ...hostKeys]);
  const settings = Object.fromEntries(Object.entries(values).filter(([k]) => !hidden.has(k)));
  if (values["cafile"]) {
    // The sandbox cannot read files it was not granted: the host hands over the PEM.
    try {
      settings["ca_pem"] = await Deno.readTextFile(values["cafile"]);
    } catch (error) {
      throw new ConfigError(
        { file: config.file, section: name, key: "cafile" },
        `cannot read "${values["cafile"]}": ${(error as Error).message}`,
      );
    }
  }
  let timeoutSeconds: number | undefined;
  if (values["timeout_seconds"] !== undefined) {
    timeoutSeconds = Number(values["timeout_seconds"]);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
      throw new ConfigError(
        { file: config.file, section: name, key: "timeout_seconds" },
        `"${values["timeout_seconds"]}" is not a number of seconds`,
      );
    }
  }
  let maxMemoryMb: number | undefined;
  if (values["max_memory_mb"] !== undefined) {
    maxMemoryMb = Number(values["max_memory_mb"]);
    if (!Number.isInteger(maxMemoryMb) || maxMemoryMb < 64 || maxMemoryMb > 65536) {
      throw new ConfigError(
        { file: config.file, section: name, key: "max_memory_mb" },
        `"${values["max_memory_mb"]}" is not a whole number of megabytes from 64 to 65536`,
      );
    }
  }
  const allowRead = splitList(values["allow_read"]);
  for (const path of allowRead) refuseSecretsIn(config, path, { section: name, key: "allow_read" });
  return {
    settings,
    allowNet: splitList(values["allow_net"]),
    allowRead,
    timeoutSeconds,
    maxMemoryMb,
    values,
  };
}

function unquote(value: string): string {
  const m = /^(["'])(.*)\1$/s.exec(value.trim());
  return m ? m[2]! : value;
}

function substitute(
  file: string,
  section: string,
  key: string,
  value: string,
  env: (name: string) => string | undefined,
): string {
  return substituteEnv(value, (name) => {
    const v = env(name);
    if (v === undefined) {
      throw new ConfigError({ file, section, key }, `environment variable $${name} is not set`);
    }
    secrets.add(v);
    return v;
  });
}

function splitList(value: string | undefined): string[] {
  return (value ?? "").split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
}

/**
 * Refuses a folder user code may read (its code folder, an `allow_read` path) that holds the
 * agent's config or its store: the code would read the secrets and tokens there.
 */
export function refuseSecretsIn(
  config: Config,
  path: string,
  where: { section: string; key: string },
): void {
  const guarded = [
    { file: resolve(config.file), what: "the config" },
    ...(/^https?:|^:memory:$/.test(config.agent.store)
      ? []
      : [{ file: resolve(config.agent.store), what: "the store" }]),
  ];
  for (const { file, what } of guarded) {
    const rel = relative(resolve(path), file);
    if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))) {
      throw new ConfigError(
        { file: config.file, section: where.section, key: where.key },
        `${path} holds ${what} (${file}): code run from or reading it could read the agent's ` +
          `secrets. Give user code a folder of its own`,
      );
    }
  }
}
