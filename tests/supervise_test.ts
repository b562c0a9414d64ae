/** scripts/supervise.ts: the test run's deadline on silence (scripts/ok.ts). */
import { assert, assertEquals } from "./support/assert.ts";
import { DENO_TEST_IDLE, runSupervised } from "../scripts/supervise.ts";

/**
 * Prints like deno test: a test's line, then its note on a long test after "..." on the same
 * line and on lines of their own (giving up by itself after 3 s).
 */
const HANGS = [
  'console.log("a test ... ok (1ms)");',
  'Deno.stdout.writeSync(new TextEncoder().encode("the agent\'s test that hangs ..."));',
  "let n = 0;",
  "setInterval(() => {",
  `  console.log("'the agent's test that hangs' has been running for over (1m0s)");`,
  "  if (++n === 30) Deno.exit(0);",
  "}, 100);",
].join("\n");

Deno.test("a command that prints nothing but idle notes for the silence limit is stopped, and its last other line names where it hung; one that keeps printing runs to its end", async () => {
  const hang = await runSupervised(Deno.execPath(), ["eval", HANGS], {
    silenceMs: 500,
    echo: false,
    idle: DENO_TEST_IDLE,
  });
  assertEquals(hang.stuck, "the agent's test that hangs ...");
  assertEquals(hang.ok, false);

  const talker = await runSupervised(Deno.execPath(), [
    "eval",
    "let n = 0; const t = setInterval(() => { console.log(`tick ${++n}`); if (n === 8) clearInterval(t); }, 150);",
  ], { silenceMs: 500, echo: false });
  assertEquals(talker.stuck, undefined);
  assert(talker.ok);
  assertEquals(talker.output.trim().split("\n").at(-1), "tick 8", "ran for 1.2 s, past the limit");
});
