/**
 * The integrations that ship with the agent. Each `getData` is self-contained (no imports,
 * no helpers outside it): it runs in a sandboxed Worker as its own module, made from the
 * function's source, which also works inside the bundled single file.
 */
import type { GetData, PluginLogger, TicketInfo } from "./plugin.ts";

/**
 * address_classification: private/reserved/public per address (IPv4 and IPv6), block
 * sizes, and overlaps between the sources and destinations of one request.
 */
export const addressClassification: GetData = (ticket: TicketInfo) => {
  /** An address as a number and its family's width in bits. */
  const parse = (ip: string): { value: bigint; bits: number } | undefined => {
    if (!ip.includes(":")) {
      const parts = ip.split(".").map(Number);
      if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) return undefined;
      return { value: parts.reduce((n, p) => n * 256n + BigInt(p), 0n), bits: 32 };
    }
    const [head = "", tail] = ip.toLowerCase().split("::");
    const left = head ? head.split(":") : [];
    const right = tail ? tail.split(":") : [];
    const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
    if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
    return { value: groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n), bits: 128 };
  };
  const reserved: [string, number, string][] = [
    ["10.0.0.0", 8, "private (RFC 1918)"],
    ["172.16.0.0", 12, "private (RFC 1918)"],
    ["192.168.0.0", 16, "private (RFC 1918)"],
    ["127.0.0.0", 8, "loopback"],
    ["169.254.0.0", 16, "link-local"],
    ["100.64.0.0", 10, "carrier-grade NAT"],
    ["0.0.0.0", 8, '"this network"'],
    ["224.0.0.0", 4, "multicast"],
    ["240.0.0.0", 4, "reserved"],
    ["192.0.2.0", 24, "documentation (TEST-NET-1)"],
    ["198.51.100.0", 24, "documentation (TEST-NET-2)"],
    ["203.0.113.0", 24, "documentation (TEST-NET-3)"],
    ["198.18.0.0", 15, "benchmarking"],
    ["192.0.0.0", 24, "IETF protocol assignments"],
    ["::", 128, "unspecified"],
    ["::1", 128, "loopback"],
    ["::ffff:0:0", 96, "IPv4-mapped"],
    ["100::", 64, "discard"],
    ["fc00::", 7, "private (unique local)"],
    ["fe80::", 10, "link-local"],
    ["ff00::", 8, "multicast"],
    ["2001:db8::", 32, "documentation"],
    ["2001:2::", 48, "benchmarking"],
    ["2001::", 23, "IETF protocol assignments"],
  ];
  const kind = (ip: string, cidr: number) => {
    if (cidr === 0) return "ANY (every address)";
    const a = parse(ip);
    if (!a) return "not an address";
    for (const [net, bits, label] of reserved) {
      const n = parse(net)!;
      if (n.bits !== a.bits || cidr < bits) continue;
      const shift = BigInt(a.bits - bits);
      if (a.value >> shift === n.value >> shift) return label;
    }
    return "public";
  };
  const span = (a: { Ip: string; Cidr: string }) => {
    const parsed = parse(a.Ip);
    if (!parsed) return undefined;
    const size = 1n << BigInt(parsed.bits - Number(a.Cidr));
    return { bits: parsed.bits, first: parsed.value, last: parsed.value + size - 1n, size };
  };
  const lines: string[] = [];
  ticket.Requests.forEach((request, i) => {
    const name = request.Order || `request ${i + 1}`;
    const describe = (a: { Ip: string; Cidr: string; HostName?: string }) => {
      const cidr = Number(a.Cidr);
      const host = a.HostName ? ` (${a.HostName})` : "";
      const s = span(a);
      const free = s ? s.bits - cidr : 0;
      const count = !s
        ? "?"
        : s.size === 1n
        ? "1 address"
        : free <= 32
        ? `${s.size} addresses`
        : `2^${free} addresses`;
      return `${a.Ip}/${cidr}${host}: ${kind(a.Ip, cidr)}, ${count}`;
    };
    for (
      const [label, list] of [["source", request.Sources], [
        "destination",
        request.Destinations,
      ]] as const
    ) {
      for (const a of list) lines.push(`${name} ${label} ${describe(a)}`);
    }
    for (const s of request.Sources) {
      for (const d of request.Destinations) {
        const [ss, ds] = [span(s), span(d)];
        if (!ss || !ds || ss.bits !== ds.bits || s.Cidr === "0" || d.Cidr === "0") continue;
        if (ss.first <= ds.last && ds.first <= ss.last) {
          lines.push(`${name}: source ${s.Ip}/${s.Cidr} overlaps destination ${d.Ip}/${d.Cidr}`);
        }
      }
    }
  });
  return lines.length ? lines.join("\n") : null;
};

/**
 * risky_services: well-known risky ports, ANY services, wide port ranges and ANY
 * destinations. Settings: `ports` ("23/telnet, 445/SMB, ..." replaces the default list),
 * `max_range` (ports in one range before it is flagged, default 1000).
 */
export const riskyServices: GetData = (
  ticket: TicketInfo,
  _logger: PluginLogger,
  config: Record<string, string>,
) => {
  const defaults =
    "20/FTP data, 21/FTP, 22/SSH, 23/Telnet, 69/TFTP, 135/MS RPC, 137/NetBIOS, 138/NetBIOS, 139/NetBIOS, " +
    "161/SNMP, 445/SMB, 512/rexec, 513/rlogin, 514/rsh, 1433/MS SQL, 3306/MySQL, 3389/RDP, 5432/PostgreSQL, " +
    "5900/VNC, 6379/Redis, 9200/Elasticsearch, 11211/memcached, 27017/MongoDB";
  const risky = new Map<number, string>();
  for (const item of (config["ports"] || defaults).split(",")) {
    const m = /^\s*(\d+)\s*(?:\/\s*(.+?))?\s*$/.exec(item);
    if (m) risky.set(Number(m[1]), m[2] ?? `port ${m[1]}`);
  }
  const maxRange = Number(config["max_range"] || 1000);
  const lines: string[] = [];
  ticket.Requests.forEach((request, i) => {
    const name = request.Order || `request ${i + 1}`;
    for (const s of request.Services) {
      const min = Number(s.Min);
      const max = Number(s.Max);
      if (s.Protocol === "ANY" || (min === 0 && max >= 65535)) {
        lines.push(`${name}: service ANY opens every port`);
        continue;
      }
      const hits = [...risky].filter(([port]) => port >= min && port <= max).map(([port, label]) =>
        `${port}/${label}`
      );
      if (hits.length) {
        lines.push(
          `${name}: ${s.Protocol} ${s.Min === s.Max ? s.Min : `${s.Min}-${s.Max}`} includes ${
            hits.join(", ")
          }`,
        );
      }
      if (max - min + 1 > maxRange) {
        lines.push(
          `${name}: ${s.Protocol} ${s.Min}-${s.Max} is a wide range (${max - min + 1} ports)`,
        );
      }
    }
    if (request.Destinations.some((d) => d.Cidr === "0")) lines.push(`${name}: destination ANY`);
  });
  return lines.length ? lines.join("\n") : null;
};

/**
 * http_lookup: a generic HTTP JSON lookup per address (CMDB, IPAM, threat intel).
 * Settings: `url` with {ip} (required), `headers` ("Name: value" per line), `field` (a
 * dot path into the JSON, default the whole body), `addresses` (sources, destinations or
 * all; default all), `label` (default the host), `only` (private or public). The section's
 * `allow_net` must name the host, and `cafile` a private CA if the API uses one. Only
 * single addresses (/32) are looked up.
 */
export const httpLookup: GetData = async (
  ticket: TicketInfo,
  logger: PluginLogger,
  config: Record<string, string>,
) => {
  const template = config["url"];
  if (!template || !template.includes("{ip}")) {
    throw new Error('setting "url" with {ip} is required');
  }
  const headers: Record<string, string> = {};
  for (const line of (config["headers"] ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  const which = (config["addresses"] || "all").toLowerCase();
  const only = (config["only"] || "").toLowerCase();
  const label = config["label"] || new URL(template.replace("{ip}", "0.0.0.0")).host;
  const pick = (value: unknown, path: string): unknown =>
    path
      ? path.split(".").reduce<unknown>(
        (
          v,
          k,
        ) => (v !== null && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined),
        value,
      )
      : value;
  const ips = new Set<string>();
  for (const request of ticket.Requests) {
    const list = which === "sources"
      ? request.Sources
      : which === "destinations"
      ? request.Destinations
      : [...request.Sources, ...request.Destinations];
    for (const a of list) {
      if (a.Cidr !== "32") continue;
      if ((only === "private" && !a.Private) || (only === "public" && a.Private)) continue;
      ips.add(a.Ip);
    }
  }
  // A private CA: the section's cafile, handed over by the host as ca_pem.
  const client = config["ca_pem"]
    ? Deno.createHttpClient({ caCerts: [config["ca_pem"]] })
    : undefined;
  const lines: string[] = [];
  for (const ip of ips) {
    let response: Response;
    try {
      response = await fetch(template.replaceAll("{ip}", encodeURIComponent(ip)), {
        headers,
        ...(client ? { client } : {}),
      });
    } catch (error) {
      const e = error as Error & { cause?: Error };
      throw new Error(`${label} lookup of ${ip} failed: ${e.cause?.message ?? e.message}`);
    }
    if (response.status === 404) {
      await response.body?.cancel();
      lines.push(`${ip}: not found in ${label}`);
      continue;
    }
    if (!response.ok) throw new Error(`${label} answered HTTP ${response.status} for ${ip}`);
    const value = pick(await response.json(), config["field"] ?? "");
    logger.debug(`${ip} looked up`);
    lines.push(
      `${ip}: ${
        value === undefined
          ? "(no such field)"
          : typeof value === "string"
          ? value
          : JSON.stringify(value)
      }`,
    );
  }
  return lines.length ? lines.join("\n") : null;
};

/** The built-ins by the name used in config (`[enrich] integrations`) and section names. */
export const BUILTINS: Record<string, GetData> = {
  address_classification: addressClassification,
  risky_services: riskyServices,
  http_lookup: httpLookup,
};
