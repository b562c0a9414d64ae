/**
 * The Deno permissions the agent runs with, written down once. deno.json's tasks, the
 * bundle/compile scripts, the benchmarks and the CLI tests use these flags (a test checks
 * that deno.json agrees).
 *
 * What Deno can narrow at start-up is narrowed: no subprocesses, no FFI, only the system
 * facts the libraries ask for. Hosts and paths come from the config file, which Deno cannot
 * know before the process starts, so net/read/write are granted by kind; `agent service
 * install` writes a unit whose flags list the configured hosts and paths.
 */
export const AGENT_RUN_FLAGS: readonly string[] = [
  // The bundle does not carry deno.json's "unstable" list: Deno KV, and Worker permissions
  // for the plugin sandbox.
  "--unstable-kv",
  "--unstable-worker-options",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=hostname,osRelease,homedir,networkInterfaces",
  "--deny-run",
  "--deny-ffi",
  "--no-prompt",
];
