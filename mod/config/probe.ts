/** `agent doctor`'s check of the config file: secrets written where others can read them. */
import type { Config } from "./config.ts";
import { literalSecrets } from "./secrets.ts";
import { findingsOf, message } from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";

/** Secrets written into a file others can read. */
export async function checkConfigFile(config: Config): Promise<Finding[]> {
  const { list, add } = findingsOf("[config] file");
  const literal = literalSecrets(config);
  try {
    const info = await Deno.stat(config.file);
    const mode = info.mode === null ? undefined : info.mode & 0o777;
    const octal = mode === undefined ? "unknown" : `0${mode.toString(8)}`;
    const holds = literal.length
      ? `holds secrets (${literal.join(", ")})`
      : "holds no secrets (they come from the environment)";
    if (mode !== undefined && mode & 0o004 && literal.length) {
      add(
        "permissions",
        "warn",
        `${config.file} is world-readable (mode ${octal}) and ${holds}`,
        `chmod 600 ${config.file}, or move the secrets to environment variables ($NAME)`,
      );
    } else {
      add("permissions", "pass", `${config.file}: mode ${octal}, ${holds}`);
    }
  } catch (error) {
    add("permissions", "fail", `cannot stat ${config.file}: ${message(error)}`);
  }
  for (const warning of config.warnings) {
    add("keys", "warn", warning, "remove the key or fix its spelling");
  }
  return list;
}
