/**
 * Runs a command with its output passed through and kept, and stops it when it has printed
 * nothing for too long (the test runner has no per-test deadline): `stuck` then holds the
 * last line it printed, which for `deno test` names the test it hung in. Text matching `idle`
 * is not progress.
 */

/**
 * deno test's own note on a long test, every minute: "'name' has been running for over
 * (1m0s)", the first one right after the test's "name ..." on its line.
 */
export const DENO_TEST_IDLE = /(^|(?<=\.\.\.))'.*' has been running for over \([^)]*\)/;

/** How a supervised command ended. */
export interface Supervised {
  ok: boolean;
  output: string;
  /** Set when it was stopped for printing nothing for `silenceMs`: its last line. */
  stuck?: string;
}

export async function runSupervised(
  command: string,
  args: string[],
  options: {
    env?: Record<string, string>;
    silenceMs?: number | undefined;
    /** What is not progress (`deno test`'s "'name' has been running for over (1m0s)"). */
    idle?: RegExp;
    /** Pass the output through to this process's (default true). */
    echo?: boolean;
  } = {},
): Promise<Supervised> {
  const child = new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: options.env ?? {},
  }).spawn();
  let output = "";
  let heard = Date.now();
  let stuck: string | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    // One decoder per stream: a character split between chunks must not meet the other's.
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      output += text;
      if (!isIdle(text)) heard = Date.now();
      if (options.echo !== false) await sink.write(chunk);
    }
  };
  // A line with its idle note taken out (deno test puts the first one on the test's own line).
  const progress = (line: string) => (options.idle ? line.replace(options.idle, "") : line).trim();
  const isIdle = (text: string) => text.split("\n").every((line) => !progress(line));
  const silenceMs = options.silenceMs;
  const watch = silenceMs === undefined ? undefined : setInterval(() => {
    if (stuck !== undefined || Date.now() - heard < silenceMs) return;
    stuck = output.split("\n").map(progress).filter(Boolean).at(-1) ?? "(nothing printed)";
    try {
      child.kill("SIGKILL");
    } catch {
      // ended meanwhile
    }
  }, Math.min(5_000, Math.max(50, silenceMs / 4)));
  try {
    const [status] = await Promise.all([
      child.status,
      pump(child.stdout, Deno.stdout),
      pump(child.stderr, Deno.stderr),
    ]);
    return {
      ok: status.success && stuck === undefined,
      output,
      ...(stuck !== undefined ? { stuck } : {}),
    };
  } finally {
    clearInterval(watch);
  }
}
