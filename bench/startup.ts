/** How long `agent --help` takes from process start to exit (target: under 300 ms). */
import { type BenchResult, percentile, round } from "./_report.ts";
import { SELF_RUN_FLAGS } from "../mod/cli/permissions.ts";

export async function benchStartup(runs = 15): Promise<BenchResult> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const args = ["run", ...SELF_RUN_FLAGS, main, "--help"];
  // Warm the module cache once, as an installed agent's would be.
  await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" }).output();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const out = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" })
      .output();
    times.push(performance.now() - start);
    if (!out.success) {
      throw new Error(`agent --help failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  }
  times.sort((a, b) => a - b);
  const median = percentile(times, 50);
  return {
    name: "startup",
    figures: { help_median_ms: round(median), help_p90_ms: round(percentile(times, 90)), runs },
    targets: { help_median_ms: { target: "< 300 ms", met: median < 300 } },
  };
}
