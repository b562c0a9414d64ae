/**
 * Builds the `ticket_info` structure plugins expect from a ticket as GET tickets/{id}
 * returns it. The mapping:
 *
 * - IPv4 and IPv6 alike (IPv6 in its canonical text form, RFC 5952).
 * - IP: the block (`cidr`, else the `netmask`); RANGE: the smallest list of CIDR blocks
 *   covering first..last (at most 64, else unmapped); DNS: one /32 per resolved address
 *   (`dns_ip_addresses`), unmapped without any; ANY and INTERNET: 0.0.0.0/0; Object: its
 *   `object_details` when they read as an address or block, else unmapped; anything else
 *   (LDAP_ENTITY, ...) unmapped.
 * - PROTOCOL and PREDEFINED: protocol and port ("80" or "1000-2000"); ANY: "ANY" 0..65536;
 *   Object and APPLICATION_IDENTITY: unmapped.
 * - Server decommission requests: each server's addresses as Sources, Order "DECOMMISSION".
 *
 * Nothing is dropped silently: what cannot be mapped goes to `Unmapped`, as sent.
 */
import { asList, type RawTicket } from "../securechange/types.ts";
import { stripControls } from "../text/clean.ts";
import type { TicketAddress, TicketInfo, TicketRequest, TicketService } from "./plugin.ts";

const MAX_RANGE_BLOCKS = 64;

/**
 * Ticket text as one line without control characters: whatever a requester types into a
 * field cannot start a line of its own (a forged section or marker) in the posted comment.
 */
function flat(value: unknown): string {
  return value === undefined || value === null
    ? ""
    : stripControls(String(value), { oneLine: true });
}

export function buildTicketInfo(ticket: RawTicket): TicketInfo {
  const requests: TicketRequest[] = [];
  for (const step of asList(ticket.steps ? ticket.steps.step : undefined)) {
    for (const task of asList(step.tasks ? step.tasks.task : undefined)) {
      for (const field of asList(task.fields ? task.fields.field : undefined)) {
        for (const ar of asList(field.access_request)) requests.push(accessRequest(ar));
        for (const sd of asList(field.server_decommission_request)) requests.push(decommission(sd));
      }
    }
  }
  const comments = asList(ticket.comments ? ticket.comments.comment : undefined)
    .map((c) => stripControls(String(c.content ?? "")).trim())
    .filter((c) => c !== "");
  return {
    Id: Number(ticket.id),
    Subject: flat(ticket.subject),
    WorkflowName: ticket.workflow ? flat(ticket.workflow.name) : "",
    Requester: flat(ticket.requester),
    RequesterId: Number(ticket.requester_id ?? 0),
    Status: flat(ticket.status),
    Comments: comments.join("\n"),
    Requests: requests,
  };
}

type Entry = Record<string, unknown>;

function accessRequest(ar: Entry): TicketRequest {
  const request: TicketRequest = {
    Sources: [],
    Destinations: [],
    Services: [],
    Order: flat(ar["order"]),
  };
  const unmapped: NonNullable<TicketRequest["Unmapped"]> = [];
  for (
    const [list, field, key] of [
      [request.Sources, "source", "sources"],
      [request.Destinations, "destination", "destinations"],
    ] as const
  ) {
    const container = ar[key] as Entry | "" | undefined;
    for (
      const entry of asList(
        (container ? container[field] : undefined) as Entry | Entry[] | undefined,
      )
    ) {
      const mapped = mapEntry(entry, address);
      if (Array.isArray(mapped)) list.push(...mapped);
      else unmapped.push({ field, entry, ...mapped });
    }
  }
  const services = ar["services"] as Entry | "" | undefined;
  for (
    const entry of asList(
      (services ? services["service"] : undefined) as Entry | Entry[] | undefined,
    )
  ) {
    const mapped = mapEntry(entry, (e) => {
      const one = service(e);
      return one ? [one] : undefined;
    });
    if (Array.isArray(mapped)) request.Services.push(...mapped);
    else unmapped.push({ field: "service", entry, ...mapped });
  }
  if (unmapped.length) request.Unmapped = unmapped;
  return request;
}

function decommission(sd: Entry): TicketRequest {
  const request: TicketRequest = {
    Sources: [],
    Destinations: [],
    Services: [],
    Order: "DECOMMISSION",
  };
  const servers = sd["servers"] as Entry | "" | undefined;
  for (
    const entry of asList((servers ? servers["server"] : undefined) as Entry | Entry[] | undefined)
  ) {
    const mapped = mapEntry(entry, address);
    if (Array.isArray(mapped)) request.Sources.push(...mapped);
    else (request.Unmapped ??= []).push({ field: "server", entry, ...mapped });
  }
  return request;
}

/**
 * One entry mapped, or why not: `{}` when the mapping has no form for it, `{reason}` when
 * the entry is malformed (not an object, or a shape the mapping trips over). Never throws,
 * so that one bad entry cannot fail the run.
 */
function mapEntry<T>(
  entry: unknown,
  map: (entry: Entry) => T[] | undefined,
): T[] | { reason?: string } {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    return {
      reason: `not an object (${
        entry === null ? "null" : Array.isArray(entry) ? "a list" : typeof entry
      })`,
    };
  }
  try {
    return map(entry as Entry) ?? {};
  } catch (error) {
    return { reason: `malformed: ${(error as Error).message}` };
  }
}

function address(entry: Entry): TicketAddress[] | undefined {
  const type = String(entry["@type"] ?? "IP").toUpperCase();
  switch (type) {
    case "IP": {
      const ip = String(entry["ip_address"] ?? "").trim();
      if (ip.includes(":")) {
        const prefix = entry["cidr"] !== undefined
          ? Number(entry["cidr"])
          : entry["netmask"] !== undefined
          ? maskToPrefix6(String(entry["netmask"]))
          : 128;
        return block6(ip, prefix, "IP");
      }
      const cidr = entry["cidr"] !== undefined
        ? Number(entry["cidr"])
        : maskToCidr(String(entry["netmask"] ?? "255.255.255.255"));
      return block(ip, cidr, "IP");
    }
    case "RANGE": {
      const firstText = String(entry["range_first_ip"] ?? "");
      if (firstText.includes(":")) {
        const first = toBig6(firstText);
        const last = toBig6(String(entry["range_last_ip"] ?? ""));
        if (first === undefined || last === undefined || last < first) return undefined;
        const blocks = rangeToBlocks6(first, last);
        if (blocks.length > MAX_RANGE_BLOCKS) return undefined;
        return blocks.map(([start, prefix]) => make6(start, prefix, "RANGE"));
      }
      const first = toInt(firstText);
      const last = toInt(String(entry["range_last_ip"] ?? ""));
      if (first === undefined || last === undefined || last < first) return undefined;
      const blocks = rangeToBlocks(first, last);
      if (blocks.length > MAX_RANGE_BLOCKS) return undefined;
      return blocks.map(([start, prefix]) => make(start, prefix, "RANGE"));
    }
    case "DNS": {
      const addresses = asList(entry["dns_ip_addresses"] as string | string[] | undefined)
        .flatMap((a) =>
          typeof a === "object" && a !== null ? asList((a as Entry)["ip_address"] as string) : [a]
        );
      const mapped = addresses.map((a) =>
        String(a).includes(":") ? block6(String(a), 128, "DNS") : block(String(a), 32, "DNS")
      ).filter((a) => a !== undefined).flat();
      if (!mapped.length) return undefined;
      return mapped.map((a) => ({ ...a, HostName: flat(entry["host_name"]) }));
    }
    case "ANY":
    case "INTERNET":
      return [make(0, 0, type)];
    case "OBJECT": {
      const details = String(entry["object_details"] ?? "").trim();
      const v6 = /^([0-9a-f:.]*:[0-9a-f:.]*)(?:\/(\d{1,3}))?$/i.exec(details);
      if (v6) return block6(v6[1]!, v6[2] === undefined ? 128 : Number(v6[2]), "Object");
      const m = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+\.\d+\.\d+\.\d+|\d{1,2}))?$/.exec(details);
      if (!m) return undefined;
      const cidr = m[2] === undefined ? 32 : m[2].includes(".") ? maskToCidr(m[2]) : Number(m[2]);
      return block(m[1]!, cidr, "Object");
    }
    default:
      return undefined;
  }
}

function service(entry: Entry): TicketService | undefined {
  const type = String(entry["@type"] ?? "PROTOCOL").toUpperCase();
  if (type === "ANY") return { Protocol: "ANY", Min: "0", Max: "65536" };
  if (type !== "PROTOCOL" && type !== "PREDEFINED") return undefined;
  const protocol = String(entry["protocol"] ?? "").toUpperCase();
  const port = String(entry["port"] ?? "").trim();
  const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(port);
  if (!protocol) return undefined;
  const named = type === "PREDEFINED" && entry["predefined_name"]
    ? { Name: flat(entry["predefined_name"]) }
    : {};
  if (!m) return port === "" ? { Protocol: protocol, Min: "0", Max: "65536", ...named } : undefined;
  return { Protocol: protocol, Min: m[1]!, Max: m[2] ?? m[1]!, ...named };
}

function block(ip: string, cidr: number, type: string): TicketAddress[] | undefined {
  const value = toInt(ip);
  if (value === undefined || !Number.isInteger(cidr) || cidr < 0 || cidr > 32) return undefined;
  return [make(value, cidr, type)];
}

function make(value: number, prefix: number, type: string): TicketAddress {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const start = (value & mask) >>> 0;
  return {
    Ip: toDotted(start),
    Mask: toDotted(mask),
    Cidr: String(prefix),
    Private: isPrivate(start, prefix),
    Type: type,
  };
}

/**
 * Non-public ranges: RFC 1918, loopback, link-local, CGNAT, "this network", multicast,
 * reserved, documentation, benchmarking, IETF assignments.
 */
const PRIVATE_RANGES: [string, number][] = [
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["100.64.0.0", 10],
  ["0.0.0.0", 8],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
  ["192.0.2.0", 24],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["198.18.0.0", 15],
  ["192.0.0.0", 24],
];

export function isPrivate(start: number, prefix: number): boolean {
  if (prefix === 0) return false;
  return PRIVATE_RANGES.some(([net, bits]) => {
    if (prefix < bits) return false;
    const mask = (0xffffffff << (32 - bits)) >>> 0;
    return ((start & mask) >>> 0) === toInt(net);
  });
}

export function toInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip.trim());
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

function toDotted(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

function maskToCidr(mask: string): number {
  const value = toInt(mask);
  if (value === undefined) return NaN;
  const bits = value.toString(2).padStart(32, "0");
  return /^1*0*$/.test(bits) ? bits.indexOf("0") === -1 ? 32 : bits.indexOf("0") : NaN;
}

/** The fewest CIDR blocks covering first..last. */
function rangeToBlocks(first: number, last: number): [number, number][] {
  const blocks: [number, number][] = [];
  let start = first;
  while (start <= last && blocks.length <= MAX_RANGE_BLOCKS) {
    let size = 32;
    while (size > 0) {
      const bigger = size - 1;
      const blockSize = 2 ** (32 - bigger);
      if (start % blockSize !== 0 || start + blockSize - 1 > last) break;
      size = bigger;
    }
    blocks.push([start, size]);
    start += 2 ** (32 - size);
  }
  return blocks;
}

// ---------------------------------------------------------------------------------------
// IPv6: the same mapping, with 128-bit numbers

const V6_BITS = 128n;
const V6_ALL = (1n << V6_BITS) - 1n;

/** Non-public IPv6 ranges: unspecified, loopback, IPv4-mapped, discard, ULA, link-local,
 * multicast, documentation, IETF assignments, benchmarking. */
const PRIVATE_RANGES_6: [string, number][] = [
  ["::", 128],
  ["::1", 128],
  ["::ffff:0:0", 96],
  ["100::", 64],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
  ["2001:db8::", 32],
  ["2001::", 23],
  ["2001:2::", 48],
];

function block6(ip: string, prefix: number, type: string): TicketAddress[] | undefined {
  const value = toBig6(ip);
  if (value === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 128) {
    return undefined;
  }
  return [make6(value, prefix, type)];
}

function make6(value: bigint, prefix: number, type: string): TicketAddress {
  const mask = prefix === 0 ? 0n : (V6_ALL << (V6_BITS - BigInt(prefix))) & V6_ALL;
  const start = value & mask;
  return {
    Ip: toText6(start),
    Mask: toText6(mask),
    Cidr: String(prefix),
    Private: isPrivate6(start, prefix),
    Type: type,
  };
}

export function isPrivate6(start: bigint, prefix: number): boolean {
  if (prefix === 0) return false;
  return PRIVATE_RANGES_6.some(([net, bits]) => {
    if (prefix < bits) return false;
    const mask = (V6_ALL << (V6_BITS - BigInt(bits))) & V6_ALL;
    return (start & mask) === toBig6(net);
  });
}

/** An IPv6 address (`::` shorthand and a trailing dotted IPv4 allowed) as a number. */
export function toBig6(text: string): bigint | undefined {
  let ip = text.trim().toLowerCase().replace(/%.*$/, "");
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (v4) {
    const n = toInt(v4[1]!);
    if (n === undefined) return undefined;
    ip = ip.slice(0, -v4[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  if (!/^[0-9a-f:]+$/.test(ip) || (ip.match(/::/g) ?? []).length > 1) return undefined;
  const [head = "", tail] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...left, ...Array(tail === undefined ? 0 : missing).fill("0"), ...right];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The canonical text form (RFC 5952: lower case, the longest run of zeros as `::`). */
function toText6(value: bigint): string {
  const groups = Array.from(
    { length: 8 },
    (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16),
  );
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLength).join(":")}`;
}

function maskToPrefix6(mask: string): number {
  if (/^\d{1,3}$/.test(mask.trim())) return Number(mask);
  const value = toBig6(mask);
  if (value === undefined) return NaN;
  const bits = value.toString(2).padStart(128, "0");
  return /^1*0*$/.test(bits) ? (bits.indexOf("0") === -1 ? 128 : bits.indexOf("0")) : NaN;
}

/** The fewest CIDR blocks covering first..last (IPv6). */
function rangeToBlocks6(first: bigint, last: bigint): [bigint, number][] {
  const blocks: [bigint, number][] = [];
  let start = first;
  while (start <= last && blocks.length <= MAX_RANGE_BLOCKS) {
    let size = 128;
    while (size > 0) {
      const blockSize = 1n << BigInt(128 - (size - 1));
      if (start % blockSize !== 0n || start + blockSize - 1n > last) break;
      size--;
    }
    blocks.push([start, size]);
    start += 1n << BigInt(128 - size);
  }
  return blocks;
}
