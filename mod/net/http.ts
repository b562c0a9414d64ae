/**
 * The HTTP clients of the REST-speaking systems (SOAR, Graph, Jira, SecureChange): the CA to
 * trust and the way out. A proxy comes from `[resilient] proxy_host` / `proxy_port` /
 * `proxy_user` / `proxy_password` (resilient-circuits' keys, for every system), else from
 * `HTTPS_PROXY` / `HTTP_PROXY`; a host matched by `NO_PROXY` goes direct either way.
 */

/** A forward proxy (HTTP CONNECT). */
export interface ProxySettings {
  /** `http://host:port`. */
  url: string;
  username?: string | undefined;
  password?: string | undefined;
}

type Env = (name: string) => string | undefined;
const processEnv: Env = (name) => {
  try {
    return Deno.env.get(name) ?? Deno.env.get(name.toLowerCase());
  } catch {
    return undefined;
  }
};

/** Whether `NO_PROXY` sends requests to `target`'s host direct. */
export function bypassesProxy(target: string, env: Env = processEnv): boolean {
  const host = new URL(target).hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return (env("NO_PROXY") ?? "").split(",").map((e) => e.trim().toLowerCase()).filter(Boolean)
    .some((entry) => {
      if (entry === "*") return true;
      const name = entry.replace(/:\d+$/, "").replace(/^\*?\./, "");
      return host === name || host.endsWith(`.${name}`);
    });
}

/** The proxy for `target`: the configured one, else the environment's; none for NO_PROXY. */
export function proxyFor(
  target: string,
  configured: ProxySettings | undefined,
  env: Env = processEnv,
): ProxySettings | undefined {
  if (bypassesProxy(target, env)) return undefined;
  if (configured) return configured;
  const fromEnv = new URL(target).protocol === "https:"
    ? env("HTTPS_PROXY") ?? env("HTTP_PROXY")
    : env("HTTP_PROXY");
  if (!fromEnv) return undefined;
  const url = new URL(fromEnv.includes("://") ? fromEnv : `http://${fromEnv}`);
  return {
    url: `${url.protocol}//${url.host}`,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
  };
}

/** A fetch client for `target`: its CA, its proxy; undefined when the defaults will do. */
export function httpClientFor(
  target: string,
  options: { caCerts?: string[] | undefined; proxy?: ProxySettings | undefined },
): Deno.HttpClient | undefined {
  const proxy = proxyFor(target, options.proxy);
  if (!proxy && !options.caCerts) return undefined;
  return Deno.createHttpClient({
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    ...(proxy
      ? {
        proxy: {
          url: proxy.url,
          ...(proxy.username
            ? { basicAuth: { username: proxy.username, password: proxy.password ?? "" } }
            : {}),
        },
      }
      : {}),
  });
}
