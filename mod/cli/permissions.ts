/**
 * The Deno permissions the agent runs with, written down once. deno.json's tasks, the
 * bundle/compile scripts, the benchmarks and the CLI tests use these flags (a test checks
 * that deno.json agrees).
 *
 * What Deno can narrow at start-up is narrowed: no FFI, only the system facts the libraries
 * ask for, and no subprocess but Deno itself (each sandbox for user code is a `deno run`
 * with the sandbox's own narrow flags; mod/sandbox). Hosts and paths come from the config
 * file, which Deno cannot know before the process starts, so net/read/write are granted by
 * kind; `agent service install` writes a unit whose flags list the configured hosts and
 * paths.
 */

/**
 * The one Python interpreter the agent may start: for the old add-on's Python integrations
 * (`[enrich] python`, opt-in). Nothing else but Deno.
 */
export const PYTHON = "/usr/bin/python3";

/** V8 settings the agent runs with (see agentRunFlags). */
export const V8_FLAGS = "--v8-flags=--max-semi-space-size=2,--heap-growing-percent=10";

/** The flags, with `deno` the Deno binary sandboxes are started with (a name on PATH or a path). */
export function agentRunFlags(deno = "deno"): string[] {
  return [
    // The bundle does not carry deno.json's "unstable" list: Deno KV, and Worker permissions
    // for the sandbox where it cannot be a process (the compiled binary).
    "--unstable-kv",
    "--unstable-worker-options",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys=hostname,osRelease,homedir,networkInterfaces",
    `--allow-run=${deno},${PYTHON}`,
    "--deny-ffi",
    "--no-prompt",
    // V8's young generation grows to 3 x 16 MB under a burst and stays resident, and its old
    // generation grows eagerly: the agent's objects are short-lived and small, so 2 MB
    // semi-spaces and an old generation that grows by 10% at a time keep it near its resting
    // size (bench/listener.ts: 169 -> 95 MB after 10,000 no-op actions). Measured against
    // V8's optimize-for-size with 1 MB semi-spaces, used before: the same memory, and 15% less
    // CPU per calendar invite (in 1 MB, more short-lived objects outlived two scavenges and
    // were collected from the old generation).
    V8_FLAGS,
  ];
}

/** The flags as deno.json's `agent` task and the README write them (`deno` from PATH). */
export const AGENT_RUN_FLAGS: readonly string[] = agentRunFlags();

/** The flags for starting the agent with this very Deno binary (tests, demo, benchmarks). */
export const SELF_RUN_FLAGS: readonly string[] = agentRunFlags(Deno.execPath());
