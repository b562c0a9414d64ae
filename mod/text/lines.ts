/**
 * The lines of a child process's output (a sandbox's messages and stderr, the memory
 * watcher's reports, a Python integration's log records).
 */

/**
 * Calls `onLine` for each non-empty line of `stream` (without its "\n") until the stream
 * ends or fails; the last line need not end in "\n", and is passed on in both cases. Text
 * that grows past `maxLineChars` without a line end is passed on as a line of its own.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  maxLineChars = Infinity,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  /** Where the text not yet passed on starts: cut off once per chunk, not once per line. */
  let start = 0;
  try {
    // A plain reader rather than a decoding stream: one hop per chunk, not a chain of them.
    for await (const bytes of stream) {
      buffer = buffer.slice(start) + decoder.decode(bytes, { stream: true });
      start = 0;
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n", start)) {
        const line = buffer.slice(start, end);
        start = end + 1;
        if (line) onLine(line);
      }
      if (buffer.length - start > maxLineChars) {
        onLine(buffer.slice(start));
        start = buffer.length;
      }
    }
  } finally {
    // Also when the stream failed (a process killed mid-line): what was read is all there is.
    const rest = buffer.slice(start) + decoder.decode();
    if (rest) onLine(rest);
  }
}
