/**
 * The suite's secret scan: every fake makes its secrets with a recognisable prefix
 * (SECRET_PATTERNS), and output the tests collect from agent processes is appended to
 * $AGENT_SUITE_LOG, which `deno task ok` scans with the suite's own output afterwards.
 */

/** The shapes of the secrets the fakes and the test broker make (random parts hex). */
export const SECRET_PATTERNS: readonly RegExp[] = [
  /broker-pass-[0-9a-f]{8}/g,
  /graph-secret-[0-9a-f]{8}/g,
  /eyJ0eXAi\.[0-9a-f]{32}\.sig/g,
  /jira-token-[0-9a-f]{8}/g,
  /test-key-secret-[0-9a-f]{8}/g,
  /\bpw-[0-9a-f]{8}\b/g,
  /sc-pass-[0-9a-f]{8}/g,
  /smtp-pass-[0-9a-f]{8}/g,
  /agtk_[A-Za-z0-9_-]{43}/g,
];

/** Appends a process's output to the suite log (when the suite runs under `deno task ok`). */
export function recordOutput(label: string, ...texts: string[]): void {
  const file = Deno.env.get("AGENT_SUITE_LOG");
  if (!file) return;
  Deno.writeTextFileSync(file, `\n=== ${label}\n${texts.join("\n")}\n`, { append: true });
}

/** The secrets found in `text`, each with a little context. */
export function findSecrets(text: string): string[] {
  const hits: string[] = [];
  for (const pattern of SECRET_PATTERNS) {
    for (const match of text.matchAll(pattern)) {
      const at = match.index ?? 0;
      hits.push(text.slice(Math.max(0, at - 60), at + match[0].length + 20).replace(/\s+/g, " "));
    }
  }
  return hits;
}
