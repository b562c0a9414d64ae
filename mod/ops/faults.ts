/**
 * Failpoints for crash tests: `AGENT_FAULT=kill-after-commit:3` kills the process with
 * SIGKILL the 3rd time the agent passes the point "after-commit". Unset in production,
 * where faultPoint() is a cheap no-op.
 */
let spec: { point: string; at: number } | undefined | null = null;
const counts = new Map<string, number>();

export function faultPoint(point: string): void {
  if (spec === null) spec = readSpec();
  if (!spec || spec.point !== point) return;
  const n = (counts.get(point) ?? 0) + 1;
  counts.set(point, n);
  if (n !== spec.at) return;
  try {
    Deno.kill(Deno.pid, "SIGKILL");
  } catch {
    Deno.exit(137);
  }
}

function readSpec(): { point: string; at: number } | undefined {
  let value: string | undefined;
  try {
    value = Deno.env.get("AGENT_FAULT");
  } catch {
    return undefined;
  }
  const match = value ? /^kill-(.+):(\d+)$/.exec(value) : null;
  return match ? { point: match[1]!, at: Number(match[2]) } : undefined;
}
