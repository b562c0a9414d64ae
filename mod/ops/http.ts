/**
 * The agent's HTTP listener (`[agent] http_listen`, localhost unless configured otherwise):
 * `/healthz` (200 only when every service is healthy, else 503; JSON either way) and
 * `/metrics` (Prometheus text format).
 */
import { ConfigError } from "../config/errors.ts";
import { log } from "../log/log.ts";

const logger = log("http");

/** A service's health, as /healthz reports it. */
export interface Health {
  healthy: boolean;
  detail: string;
}

/** What the listener serves. */
export interface OpsSources {
  health(): Promise<Record<string, Health>>;
  metrics(): Promise<string>;
}

/** `host:port`, `:port` or `port` (host 127.0.0.1); `[v6]:port`. */
export function parseListen(value: string, where: { file: string }): {
  hostname: string;
  port: number;
} {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new ConfigError(
      { file: where.file, section: "agent", key: "http_listen" },
      `"${value}" is not host:port (e.g. 127.0.0.1:9464)`,
    );
  }
  return { hostname: m[1] ?? (m[2] || "127.0.0.1"), port };
}

/** Serves until `signal` aborts; resolves once listening. */
export function serveOps(
  address: { hostname: string; port: number },
  sources: OpsSources,
  signal: AbortSignal,
): Promise<{ port: number; finished: Promise<void> }> {
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: address.hostname,
    port: address.port,
    signal,
    onListen: ({ port }) => listening.resolve(port),
    onError: (error) => {
      logger.error("HTTP handler failed: {error}", { error });
      return new Response("internal error\n", { status: 500 });
    },
  }, async (request) => {
    const { pathname } = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    if (pathname === "/healthz") {
      const services = await sources.health();
      const healthy = Object.values(services).every((s) => s.healthy);
      return Response.json({ healthy, services }, { status: healthy ? 200 : 503 });
    }
    if (pathname === "/metrics") {
      return new Response(await sources.metrics(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    return new Response("not found: try /healthz or /metrics\n", { status: 404 });
  });
  return listening.promise.then((port) => {
    logger.info("Serving /healthz and /metrics on {address}", {
      address: `http://${address.hostname}:${port}`,
    });
    return { port, finished: server.finished };
  });
}
