/**
 * The public types for enrichment plugin authors: a plugin is a module exporting `getData`
 * (the old add-on's `get_data` is accepted too). It gets the ticket in the add-on's exact
 * `ticket_info` shape, a logger, and its own INI section's settings, and returns the text
 * to add to the ticket comment, or nothing to add nothing.
 *
 * ```ts
 * import type { GetData } from "./plugin.ts";
 * export const getData: GetData = (ticket, logger, config) => {
 *   const n = ticket.Requests.flatMap((r) => r.Sources).length;
 *   logger.info(`${n} sources`);
 *   return n > 10 ? `Ticket ${ticket.Id} opens access from ${n} sources` : null;
 * };
 * ```
 */

/** An address: one IPv4 block. */
export interface TicketAddress {
  /** Dotted IPv4 of the block's start. */
  Ip: string;
  /** Dotted netmask. */
  Mask: string;
  /** The prefix length as a string ("32"). */
  Cidr: string;
  /** Inside RFC 1918 or another non-public range. */
  Private: boolean;
  /** Where it came from when not a plain IP: "RANGE", "DNS", "ANY", "Object", "INTERNET". */
  Type?: string;
  /** The DNS name, for DNS entries. */
  HostName?: string;
}

/** A service: a protocol and a port range (strings, as the old add-on passed them). */
export interface TicketService {
  /** "TCP", "UDP", "ICMP", "ANY", ... */
  Protocol: string;
  Min: string;
  /** ANY is Min "0", Max "65536" (the add-on's convention). */
  Max: string;
  /** The predefined service name, for PREDEFINED entries. */
  Name?: string;
}

/** One access request (AR1, AR2, ...) or one server decommission request. */
export interface TicketRequest {
  Sources: TicketAddress[];
  Destinations: TicketAddress[];
  Services: TicketService[];
  /** Access request order ("AR1"); "DECOMMISSION" for server decommission requests. */
  Order?: string;
  /** Entries the mapping could not express, passed as SecureChange sent them. */
  Unmapped?: {
    field: "source" | "destination" | "service" | "server";
    entry: unknown;
    /** Why it could not be mapped, when the entry itself is malformed. */
    reason?: string;
  }[];
}

/** The ticket, in the SecureChange Request Add-on's `ticket_info` shape. */
export interface TicketInfo {
  Id: number;
  Subject: string;
  WorkflowName: string;
  Requester: string;
  RequesterId: number;
  Status: string;
  /** Every comment's text, one per line. */
  Comments: string;
  Requests: TicketRequest[];
}

/** Logs go to the agent's log, tagged with the plugin's name. */
export interface PluginLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** The plugin's settings: its INI section, with surrounding quotes removed. */
export type PluginConfig = Record<string, string>;

/** What a plugin exports. */
export type GetData = (
  ticketInfo: TicketInfo,
  logger: PluginLogger,
  config: PluginConfig,
) => string | null | undefined | void | Promise<string | null | undefined | void>;
