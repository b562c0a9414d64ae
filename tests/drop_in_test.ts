/**
 * Drop-in: an app.config as `resilient-circuits config -c` writes it (`~` paths, logdir,
 * componentsdir, num_workers, keys the agent does not know, an [fn_*] section) works with
 * every command. Nothing fails because of the file itself: what needs a system that cannot
 * be reached fails on the network, and what needs a section the file lacks says which.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { runAgent, spawnAgent } from "./support/cli.ts";
import { waitUntil } from "./support/wait.ts";

const FIXTURE = new URL("./fixtures/resilient-circuits.app.config", import.meta.url);

Deno.test({
  name: "every command runs on a resilient-circuits app.config as it is",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const home = await Deno.makeTempDir({ prefix: "agent-rc-home-" });
    const file = `${home}/app.config`;
    await Deno.copyFile(FIXTURE, file);
    const env = {
      HOME: home,
      RC_API_KEY_ID: "key-id",
      RC_API_KEY_SECRET: "key-secret",
      // The Deno cache stays where it is (it is found through HOME otherwise).
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    };
    const run = (...args: string[]) => runAgent([...args, "--config", file], { env, cwd: home });
    const notTheFile = (what: string, result: { stderr: string; stdout: string }) => {
      for (const bad of ["No such file or directory", "is not a", "out of range", "~"]) {
        assert(
          !result.stderr.includes(bad) || !/config|logdir|\.resilient/.test(result.stderr),
          `${what} failed because of the file: ${result.stderr}`,
        );
      }
    };
    try {
      const check = await run("config", "check", "--json");
      assertEquals(check.code, 0, check.stderr);
      const settings = JSON.parse(check.stdout).settings;
      assertEquals(settings.resilient.logdir.value, `${home}/.resilient/logs/`);
      assertEquals(settings.resilient.componentsdir.value, `${home}/.resilient/components`);
      assertEquals(settings.resilient.num_workers.value, "10");
      assertStringIncludes(check.stdout, "fn_utilities");

      const list = await run("actions", "list");
      assertEquals(list.code, 0, list.stderr);
      notTheFile("actions list", list);
      // resilient-circuits' logdir is made and written as its log.
      const log = await Deno.readTextFile(`${home}/.resilient/logs/app.log`);
      assertStringIncludes(log, "heartbeat_timeout_threshold: unknown key");

      const dead = await run("replay", "--dead-letters");
      assertEquals(dead.code, 0, dead.stderr);
      const doctor = await run("doctor", "--timeout", "2", "--json");
      assertEquals(doctor.code, 1, "the platform cannot be reached from here");
      const findings = JSON.parse(doctor.stdout).findings as { system: string; status: string }[];
      assert(
        findings.filter((f) => f.system.startsWith("[config]") || f.system === "[agent] store")
          .every((f) => f.status !== "fail"),
        doctor.stdout,
      );
      const unit = await run("service", "install", "--unit-dir", home);
      assertEquals(unit.code, 0, unit.stderr);
      const completions = await runAgent(["completions", "bash"], { env });
      assertEquals(completions.code, 0);

      // The services start and keep going (here: no processors in the stock componentsdir
      // yet, said with the folder's real path), as resilient-circuits does.
      for (const service of [["run"]]) {
        const child = spawnAgent([...service, "--config", file, "--log-format", "json"], env);
        let stderr = "";
        const reading = (async () => {
          for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
            stderr += chunk;
          }
        })();
        const stdout = child.stdout.cancel();
        try {
          await waitUntil(
            `${service[0]} goes on`,
            () => Promise.resolve(/trying again in|restarting in/.test(stderr)),
          );
          assertStringIncludes(stderr, `No processors in ${home}/.resilient/components`);
        } finally {
          child.kill("SIGTERM");
        }
        assertEquals((await child.status).code, 0, stderr);
        await reading;
        await stdout;
      }

      // No processors in the stock componentsdir yet: said, with the folder's real path.
      const actions = await run("actions");
      assertEquals(actions.code, 1, actions.stderr);
      assertStringIncludes(actions.stderr, `No processors in ${home}/.resilient/components`);

      // Commands for systems this file does not configure say which section they need.
      for (
        const [args, section] of [
          [["calendar"], "[taskcalendar]"],
          [["mail-bridge", "--once"], "[mail_bridge]"],
        ] as const
      ) {
        const result = await run(...args);
        assertEquals(result.code, 2, result.stderr);
        assertStringIncludes(result.stderr, section);
      }
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});
