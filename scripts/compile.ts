/**
 * `deno task compile`: the single binary `agent`, with the permissions of
 * mod/cli/permissions.ts baked in. `deno compile` needs the `denort` runtime for the
 * target; it is downloaded from Deno's download host, which appliances and CI here cannot
 * reach. Point DENORT_BIN at a local denort of the same Deno version to compile offline.
 */
import { AGENT_RUN_FLAGS } from "../mod/cli/permissions.ts";

const out = Deno.args[0] ?? "agent";
const root = new URL("..", import.meta.url).pathname;
const denort = Deno.env.get("DENORT_BIN");
if (denort) {
  try {
    await Deno.stat(denort);
  } catch {
    console.error(
      `DENORT_BIN=${denort}: no such file. It must be the denort binary of Deno ${Deno.version.deno}.`,
    );
    Deno.exit(1);
  }
}
const args = [
  "compile",
  ...AGENT_RUN_FLAGS.filter((f) => f !== "--no-prompt"),
  "--include",
  "config.example.ini",
  "-o",
  out,
  "main.ts",
];
const result = await new Deno.Command(Deno.execPath(), {
  args,
  cwd: root,
  stdout: "inherit",
  stderr: "piped",
})
  .output();
const stderr = new TextDecoder().decode(result.stderr);
if (!result.success) {
  console.error(stderr.trim());
  if (/denort|download/i.test(stderr) || !denort) {
    console.error(
      `\ndeno compile could not get the denort runtime (Deno ${Deno.version.deno}). It downloads it from ` +
        `Deno's download host unless DENORT_BIN points at a local copy:\n` +
        `  DENORT_BIN=/path/to/denort deno task compile\n` +
        `Without it, use the bundle: deno task bundle (dist/agent.js, run with deno run).`,
    );
  }
  Deno.exit(1);
}
Deno.stderr.writeSync(result.stderr);
console.log(`Wrote ./${out}`);
