/**
 * `deno task bundle`: one JavaScript file (dist/agent.js) with every dependency inside,
 * type-checked, that runs with `deno run <flags> dist/agent.js` on a machine with an empty
 * module cache. The flags are in mod/cli/permissions.ts.
 */
import { AGENT_RUN_FLAGS } from "../mod/cli/permissions.ts";

const out = Deno.args[0] ?? "dist/agent.js";
const root = new URL("..", import.meta.url).pathname;
const result = await new Deno.Command(Deno.execPath(), {
  args: ["bundle", "--platform", "deno", "--check", "-o", out, "main.ts"],
  cwd: root,
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!result.success) Deno.exit(result.code || 1);
console.log(`Wrote ${out}. Run it with:\n  deno run ${AGENT_RUN_FLAGS.join(" ")} ${out} --help`);
