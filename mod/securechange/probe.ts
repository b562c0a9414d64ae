/** `agent doctor`'s check of SecureChange: one authenticated read. */
import type { Config } from "../config/config.ts";
import {
  findingsOf,
  limited,
  message,
  type ProbeContext,
  reachable,
  statusOf,
} from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";
import { caCertsFor } from "../tls/trust.ts";

/** SecureChange: one authenticated read. */
export async function checkSecureChange(config: Config, ctx: ProbeContext): Promise<Finding[]> {
  const s = config.securechange!;
  const { list, add } = findingsOf("[securechange]");
  if (!await reachable(ctx, list, "securechange", { url: s.url, urlKey: "url", trust: s.tls })) {
    return list;
  }
  const { SecureChangeClient } = await import("./client.ts");
  const client = new SecureChangeClient({
    url: s.url,
    username: s.username,
    password: s.password,
    caCerts: await caCertsFor(s.tls),
    proxy: s.proxy,
    timeoutMs: ctx.timeoutMs,
  });
  try {
    const workflows = await limited(ctx, "SecureChange", (signal) => client.probe({ signal }));
    add("auth", "pass", `"${s.username}" logged in; ${workflows} workflow(s) visible`);
  } catch (error) {
    const status = statusOf(error);
    add(
      "auth",
      "fail",
      message(error),
      status === 401
        ? "check [securechange] username and password"
        : status === 403
        ? "the user needs API access in SecureChange"
        : undefined,
    );
  }
  return list;
}
