import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { log, setupLogging } from "../mod/log/log.ts";
import { secrets } from "../mod/log/redact.ts";
import { findSecrets } from "./support/suite_log.ts";
import { FakeJira } from "./support/fake_jira.ts";
import { FakeGraph } from "./support/fake_graph.ts";
import { FakeSecureChange } from "./support/fake_securechange.ts";
import { FakeResilient } from "./support/fake_resilient.ts";

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

Deno.test("the suite's secret scan recognises every secret the fakes make, and nothing else", () => {
  const secrets = [
    new FakeJira().token,
    new FakeGraph().clientSecret,
    new FakeSecureChange().password,
    new FakeResilient().apiKeySecret,
    new FakeResilient().password,
  ];
  for (const secret of secrets) {
    assertEquals(findSecrets(`level=info msg="login with ${secret} ok"`).length, 1, secret);
  }
  assertEquals(findSecrets('msg="login with *** ok" pw-redacted jira-token-'), []);
});
