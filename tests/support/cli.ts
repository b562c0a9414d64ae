/** Runs the agent's CLI as a user would: a separate process with the real permission flags. */
import { SELF_RUN_FLAGS } from "../../mod/cli/permissions.ts";
import { resetSync } from "@logtape/logtape";
import { recordOutput } from "./suite_log.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** `agent ...args` via `deno run <flags> main.ts` (or another entry file). */
export async function runAgent(
  args: string[],
  options: {
    env?: Record<string, string>;
    cwd?: string;
    entry?: string;
    stdin?: string;
    denoDir?: string;
    /** false: keep the output out of the suite log (it holds a secret on purpose). */
    record?: boolean;
  } = {},
): Promise<CliResult> {
  const env: Record<string, string> = { NO_COLOR: "1", ...options.env };
  if (options.denoDir) env.DENO_DIR = options.denoDir;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...SELF_RUN_FLAGS, options.entry ?? MAIN, ...args],
    env,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  const result = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (options.record !== false) {
    recordOutput(`agent ${args[0] ?? ""}`, result.stdout, result.stderr);
  }
  return result;
}

/** `agent enrich --ticket-file` on the demo ticket with config.example.ini. */
export function demoEnrichArgs(): string[] {
  return [
    "enrich",
    "--ticket-file",
    new URL("../../scripts/demo/ticket.json", import.meta.url).pathname,
    "--config",
    new URL("../../config.example.ini", import.meta.url).pathname,
    "--log-level",
    "error",
  ];
}

/** `agent ...args` started as its own process (stdout and stderr piped), for long runs. */
export function spawnAgent(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...SELF_RUN_FLAGS, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * `agent ...args` in this process, through `main(args, deps)` with its output captured: for
 * usage, help and config checks, which need no process of their own (no signals, no
 * permission flags, no bundle). `env` is all the command sees of the environment.
 */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<CliResult> {
  const { main } = await import("../../main.ts");
  let stdout = "";
  let stderr = "";
  const env = options.env ?? {};
  try {
    const code = await main(args, {
      signal: new AbortController().signal,
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      env: (name) => env[name],
      isTerminal: false,
    });
    return { code, stdout, stderr };
  } finally {
    // The command set up logging for itself; the tests after it log nowhere again.
    resetSync();
  }
}
