/**
 * `deno task ok`: format check, lint, type check, then the tests; ends with the plain line
 * "N passed, N failed" (CI reads it). A failed check counts as one failure. After the tests,
 * one more test: the suite's whole output, and the agent output the tests collected, must
 * hold none of the secrets the fakes made.
 */
import { findSecrets } from "../tests/support/suite_log.ts";

const deno = Deno.execPath();

async function run(
  label: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ ok: boolean; output: string }> {
  console.error(`\n== ${label}: deno ${args.join(" ")}`);
  const child = new Deno.Command(deno, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      await sink.write(chunk);
    }
  };
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, Deno.stdout),
    pump(child.stderr, Deno.stderr),
  ]);
  return { ok: status.success, output };
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
  });
  const summary = /(?:ok|FAILED) \| (\d+) passed(?: \([^)]*\))? \| (\d+) failed/.exec(test.output);
  let passed = 0;
  let failed = failedChecks;
  if (summary) {
    passed = Number(summary[1]);
    failed += Number(summary[2]);
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
