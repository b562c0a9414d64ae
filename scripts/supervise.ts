/**
 * Runs a command with its output passed through and kept, and stops it when it has printed
 * nothing for too long (the test runner has no per-test deadline): `stuck` then holds the
 * last line it printed, which for `deno test` names the test it hung in. Lines matching `idle`
 * are not progress.
 */

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
    /** Lines that are not progress (`deno test`'s "... has been running for over 1m0s"). */
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
  const decoder = new TextDecoder();
  let output = "";
  let heard = Date.now();
  let stuck: string | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      output += text;
      if (!isIdle(text)) heard = Date.now();
      if (options.echo !== false) await sink.write(chunk);
    }
  };
  const isIdle = (text: string) =>
    options.idle !== undefined &&
    text.split("\n").every((line) => !line.trim() || options.idle!.test(line));
  const silenceMs = options.silenceMs;
  const watch = silenceMs === undefined ? undefined : setInterval(() => {
    if (stuck !== undefined || Date.now() - heard < silenceMs) return;
    const lines = output.split("\n").filter((line) => line.trim() && !isIdle(line));
    stuck = lines.at(-1)?.trim() ?? "(nothing printed)";
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
