/**
 * `deno task ok`: format check, lint, type check, then the tests; ends with the plain line
 * "N passed, N failed" (CI reads it). A failed check counts as one failure. After the tests,
 * one more test: the suite's whole output, and the agent output the tests collected, must
 * hold none of the secrets the fakes made.
 */
import { findSecrets } from "../tests/support/suite_log.ts";
import { DENO_TEST_IDLE, runSupervised, type Supervised } from "./supervise.ts";

const deno = Deno.execPath();

/**
 * How long the tests may print nothing before the run counts as stuck (the slowest test
 * prints its line within a few minutes): then it is stopped and the test it hung in is named,
 * instead of a CI run that never ends.
 */
const SILENCE_LIMIT_MS = Number(Deno.env.get("AGENT_TEST_SILENCE_S") ?? 600) * 1000;

function run(
  label: string,
  args: string[],
  env: Record<string, string> = {},
  silenceMs?: number,
): Promise<Supervised> {
  console.error(`\n== ${label}: deno ${args.join(" ")}`);
  return runSupervised(deno, args, {
    env: { NO_COLOR: "1", ...env },
    silenceMs,
    idle: DENO_TEST_IDLE,
  });
}

/** The checks, then the tests; how many passed and failed. */
async function checkAndTest(): Promise<{ passed: number; failed: number }> {
  let failedChecks = 0;
  for (
    const [label, args] of [
      ["format", ["fmt", "--check"]],
      ["lint", ["lint"]],
      ["type check", ["check", "main.ts", "mod/", "tests/", "bench/", "scripts/", "examples/"]],
    ] as const
  ) {
    const { ok } = await run(label, [...args]);
    if (!ok) failedChecks++;
  }

  const suiteLog = await Deno.makeTempFile({ prefix: "agent-suite-log-" });
  const test = await run("tests", ["test", "-A", "--no-check", ...Deno.args], {
    AGENT_SUITE_LOG: suiteLog,
  }, SILENCE_LIMIT_MS);
  if (test.stuck !== undefined) {
    console.error(
      `\ntests: no output for ${SILENCE_LIMIT_MS / 1000} s; stopped while in: ${test.stuck}`,
    );
  }
  const summary = /(?:ok|FAILED) \| (\d+) passed(?: \([^)]*\))? \| (\d+) failed/.exec(test.output);
  let passed = 0;
  let failed = failedChecks;
  if (summary) {
    passed = Number(summary[1]);
    failed += Number(summary[2]);
  } else if (test.stuck !== undefined) {
    // No summary: the tests that ended before it count, and the stuck one fails.
    passed = test.output.match(/^\S.* \.\.\. ok \(/gm)?.length ?? 0;
    failed += (test.output.match(/^\S.* \.\.\. FAILED/gm)?.length ?? 0) + 1;
  } else if (!test.ok) {
    failed += 1; // the runner itself failed (crash, no tests found)
  }
  if (!test.ok && summary && Number(summary[2]) === 0) failed += 1;

  const collected = await Deno.readTextFile(suiteLog).catch(() => "");
  await Deno.remove(suiteLog).catch(() => {});
  const leaks = findSecrets(test.output + collected);
  const scanned = `${Math.round((test.output.length + collected.length) / 1024)} KB`;
  if (leaks.length) {
    console.error(`\nsecret scan of the suite's output (${scanned}) FAILED:`);
    for (const leak of leaks.slice(0, 20)) console.error(`  ... ${leak}`);
    failed++;
  } else {
    console.error(`\nsecret scan of the suite's output (${scanned}): no secret ... ok`);
    passed++;
  }
  return { passed, failed };
}

// The last line is the count CI reads, even if this script itself fails.
let result = { passed: 0, failed: 1 };
try {
  result = await checkAndTest();
} catch (error) {
  console.error(`deno task ok could not run: ${error instanceof Error ? error.message : error}`);
}
console.log(`\n${result.passed} passed, ${result.failed} failed`);
Deno.exit(result.failed === 0 ? 0 : 1);
