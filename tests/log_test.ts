import { assert, assertStringIncludes } from "./support/assert.ts";
import { log, setupLogging } from "../mod/log/log.ts";
import { secrets } from "../mod/log/redact.ts";

Deno.test("a secret passed to a log call never appears in the output", async (t) => {
  const secret = "hunter2-" + crypto.randomUUID();
  const token = "eyJ0eXAi" + crypto.randomUUID().replaceAll("-", "");
  secrets.add(secret); // what config loading does for every secret-bearing key
  for (const format of ["json", "text"] as const) {
    await t.step(format, () => {
      const lines: string[] = [];
      setupLogging({ format, level: "debug", write: (l) => lines.push(l) });
      const logger = log("test");
      logger.info(`connecting with ${secret}`);
      logger.info("login {login} {passcode}", { login: "bob", passcode: "whatever-pass" });
      logger.warn("headers", { headers: { Authorization: `Bearer ${token}`, "X-Other": "fine" } });
      logger.error("failed: {error}", { error: new Error(`bad password ${secret}`) });
      logger.debug("nested", {
        config: { smtppw: "pw-value-1", api_key_secret: "k-value-2", list: [secret] },
      });
      logger.info(`raw header Authorization: Basic ${btoa("id:" + secret)}`);
      const out = lines.join("");
      for (
        const leaked of [
          secret,
          token,
          "whatever-pass",
          "pw-value-1",
          "k-value-2",
          btoa("id:" + secret),
        ]
      ) {
        assert(!out.includes(leaked), `${leaked} leaked into: ${out}`);
      }
      assertStringIncludes(out, "[REDACTED]");
      assertStringIncludes(out, "fine");
      assertStringIncludes(out, "bob");
    });
  }
});
