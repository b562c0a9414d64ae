/** readLines (mod/text/lines.ts): the lines of a child process's output, however it is chunked. */
import { assertEquals } from "./support/assert.ts";
import { readLines } from "../mod/text/lines.ts";

async function lines(chunks: (string | Uint8Array)[], maxLineChars?: number): Promise<string[]> {
  const out: string[] = [];
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) {
        controller.enqueue(typeof c === "string" ? new TextEncoder().encode(c) : c);
      }
      controller.close();
    },
  });
  await readLines(stream, (line) => out.push(line), maxLineChars);
  return out;
}

Deno.test("readLines: lines split across chunks, many in one, empty ones skipped, the last without its line end", async () => {
  assertEquals(await lines(["a\nb", "c\n\nd\ne", "f"]), ["a", "bc", "d", "ef"]);
  assertEquals(
    await lines([Array.from({ length: 500 }, (_, i) => `${i}\n`).join("")]).then((l) => l.length),
    500,
  );
});

Deno.test("readLines: text past the limit without a line end is a line of its own; a character split across chunks stays whole", async () => {
  assertEquals(await lines(["xxxxx", "yyyyy", "z\nq"], 8), ["xxxxxyyyyy", "z", "q"]);
  const e = new TextEncoder().encode("é\n");
  assertEquals(await lines([e.subarray(0, 1), e.subarray(1)]), ["é"]);
});
