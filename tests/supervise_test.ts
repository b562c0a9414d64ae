/** scripts/supervise.ts: the test run's deadline on silence (scripts/ok.ts). */
import { assert, assertEquals } from "./support/assert.ts";
import { runSupervised } from "../scripts/supervise.ts";

Deno.test("a command that prints nothing for the silence limit is stopped, and its last line names where it hung; one that keeps printing runs to its end", async () => {
  const hang = await runSupervised(Deno.execPath(), [
    "eval",
    'console.log("a test ... ok (1ms)"); console.log("a test that hangs ..."); setInterval(() => {}, 1000);',
  ], { silenceMs: 500, echo: false });
  assertEquals(hang.stuck, "a test that hangs ...");
  assertEquals(hang.ok, false);

  const talker = await runSupervised(Deno.execPath(), [
    "eval",
    "let n = 0; const t = setInterval(() => { console.log(`tick ${++n}`); if (n === 8) clearInterval(t); }, 150);",
  ], { silenceMs: 500, echo: false });
  assertEquals(talker.stuck, undefined);
  assert(talker.ok);
  assertEquals(talker.output.trim().split("\n").at(-1), "tick 8", "ran for 1.2 s, past the limit");
});
