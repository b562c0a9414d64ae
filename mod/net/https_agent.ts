/**
 * A node:https agent for libraries built on node:https (jira.js's axios), in a module of its
 * own so that only the services that use such a library load node:https and the proxy
 * tunnel.
 */
import { HttpsProxyAgent } from "https-proxy-agent";
import type { Agent as HttpsAgent } from "node:https";
import { Agent } from "node:https";
import { proxyFor, type ProxySettings } from "./http.ts";

/**
 * A node:https agent for libraries built on it (jira.js's axios): its CA, verification, and
 * the proxy tunnel (CONNECT) when there is one.
 */
export function httpsAgentFor(
  target: string,
  options: { ca?: string[] | undefined; verify: boolean; proxy?: ProxySettings | undefined },
): HttpsAgent {
  const tls = { ...(options.ca ? { ca: options.ca } : {}), rejectUnauthorized: options.verify };
  const proxy = proxyFor(target, options.proxy);
  if (!proxy) return new Agent({ keepAlive: false, ...tls });
  const url = new URL(proxy.url);
  if (proxy.username) {
    url.username = encodeURIComponent(proxy.username);
    url.password = encodeURIComponent(proxy.password ?? "");
  }
  // The agent's own options are for the proxy; the target's TLS settings go with each socket.
  class Tunnel extends HttpsProxyAgent<string> {
    override connect(
      req: Parameters<HttpsProxyAgent<string>["connect"]>[0],
      opts: Parameters<HttpsProxyAgent<string>["connect"]>[1],
    ) {
      return super.connect(req, { ...opts, ...tls });
    }
  }
  return new Tunnel(url.href, { keepAlive: false }) as unknown as HttpsAgent;
}
