/**
 * Temporary directories for tests that cannot remove their own (an agent child may still be
 * writing when a test ends): removed when the test process ends, so a suite run leaves none.
 */
const made: string[] = [];

globalThis.addEventListener("unload", () => {
  for (const dir of made.splice(0)) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // gone already
    }
  }
});

/** A new temporary directory, removed when the test process ends. */
export async function tempDir(options: { prefix?: string } = {}): Promise<string> {
  const dir = await Deno.makeTempDir(options);
  made.push(dir);
  return dir;
}
