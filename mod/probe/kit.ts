/**
 * What every system's probe for `agent doctor` uses: a finding builder, the doctor's time
 * limit, and DNS/TCP/TLS of an endpoint with the server's clock. The probes themselves live
 * with their systems (mod/smtp/probe.ts, mod/graph/probe.ts, ...); mod/doctor runs them.
 */
import { dirname } from "node:path";
import { caCertsFor, type TlsTrust } from "../tls/trust.ts";
import { checkEndpoint, type EndpointTls } from "./network.ts";
import type { Finding, Status } from "./report.ts";

/** What a system's probe gets: the doctor's abort signal, time limit and clock. */
export interface ProbeContext {
  signal: AbortSignal | undefined;
  timeoutMs: number;
  now: () => number;
  /** Server clock minus ours, ms, per system that answered with a Date header. */
  clocks: { system: string; skewMs: number }[];
}

/** A finding builder for one system. */
export function findingsOf(system: string) {
  const list: Finding[] = [];
  const add = (check: string, status: Status, detail: string, hint?: string) => {
    list.push({ system, check, status, detail, ...(hint ? { hint } : {}) });
  };
  return { list, add };
}

/** Runs `fn` with the doctor's time limit; a timeout becomes a clear error. */
export async function limited<T>(
  ctx: ProbeContext,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
) {
  const timeout = AbortSignal.timeout(ctx.timeoutMs);
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, timeout]) : timeout;
  try {
    return await fn(signal);
  } catch (error) {
    if (timeout.aborted) {
      throw new Error(`${what}: no answer within ${ctx.timeoutMs / 1000} s`, { cause: error });
    }
    throw error;
  }
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown }).status;
  return typeof status === "number" ? status : undefined;
}

export async function tlsOf(trust: TlsTrust, trustKey: string): Promise<EndpointTls> {
  return { ca: await caCertsFor(trust), insecure: trust.kind === "insecure", trustKey };
}

/** DNS/TCP/TLS of a URL's host; the findings go to `into`. */
export async function checkUrl(
  ctx: ProbeContext,
  into: Finding[],
  spec: { system: string; url: string; urlKey: string; trust: TlsTrust; trustKey: string },
): Promise<boolean> {
  const url = new URL(spec.url);
  const tls = await tlsOf(spec.trust, spec.trustKey);
  const report = await checkEndpoint({
    system: spec.system,
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || (url.protocol === "http:" ? 80 : 443)),
    hostKey: spec.urlKey,
    tls: url.protocol === "https:" ? tls : undefined,
    timeoutMs: ctx.timeoutMs,
  }, ctx.signal);
  into.push(...report.findings);
  if (report.usable) await readClock(ctx, spec.system, spec.url, tls.ca);
  return report.usable;
}

/**
 * DNS/TCP/TLS of a system's URL setting: rows under `[section]`, naming `[section] urlKey` and
 * the section's `cafile`.
 */
export function reachable(
  ctx: ProbeContext,
  into: Finding[],
  section: string,
  setting: { url: string; urlKey: string; trust: TlsTrust },
): Promise<boolean> {
  return checkUrl(ctx, into, {
    system: `[${section}]`,
    url: setting.url,
    urlKey: `[${section}] ${setting.urlKey}`,
    trust: setting.trust,
    trustKey: `[${section}] cafile`,
  });
}

/** The server's clock from its Date header (any answer has one). */
async function readClock(
  ctx: ProbeContext,
  system: string,
  url: string,
  ca: string[] | undefined,
) {
  const client = ca ? Deno.createHttpClient({ caCerts: ca }) : undefined;
  try {
    const sent = ctx.now();
    const response = await limited(ctx, "clock", (signal) =>
      fetch(new URL("/", url), {
        method: "HEAD",
        signal,
        ...(client ? { client } : {}),
      } as RequestInit));
    await response.body?.cancel();
    const date = Date.parse(response.headers.get("date") ?? "");
    // The Date header has whole seconds: compare with the middle of the round trip.
    if (!Number.isNaN(date)) {
      ctx.clocks.push({ system, skewMs: date + 500 - (sent + ctx.now()) / 2 });
    }
  } catch {
    // No clock from this one; the others may have one.
  } finally {
    client?.close();
  }
}

/**
 * The folder where `path` would be made: its nearest existing ancestor, proven writable by
 * a file made and removed there (no folder is created). Throws naming why not.
 */
export async function writableFolder(path: string): Promise<string> {
  let dir = path;
  while (!(await Deno.stat(dir).then((i) => i.isDirectory, () => false))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no folder of ${path} exists`);
    dir = up;
  }
  const probe = `${dir}/.agent-doctor-${crypto.randomUUID()}`;
  await Deno.writeTextFile(probe, "", { createNew: true });
  await Deno.remove(probe);
  return dir;
}
