/**
 * What SecureChange hands a trigger script: the `<ticket_info>` XML on stdin and the
 * event in SCW_EVENT (see ../shared/docs/securechange-enrichment.md).
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";

/** The parts of `<ticket_info>` the agent uses. */
export interface TriggerInfo {
  /** Undefined for the Test button's empty `<ticket_info/>`. */
  ticketId: number | undefined;
  subject?: string | undefined;
  /** current_stage, or completion_data/stage on closing events. */
  stage?: { id: number; name?: string | undefined; taskId?: number | undefined } | undefined;
}

/** A `<ticket_info>` that cannot be read; the message is one line for SecureChange. */
export class TriggerInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TriggerInputError";
  }
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true });

/** Parses the trigger's stdin. */
export function parseTicketInfo(xml: string): TriggerInfo {
  const text = xml.trim();
  if (text === "") return { ticketId: undefined };
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new TriggerInputError(
      `ticket_info is not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text) as Record<string, unknown>;
  } catch (error) {
    // e.g. external entities, which are refused rather than fetched.
    throw new TriggerInputError(`ticket_info cannot be read: ${(error as Error).message}`);
  }
  if (!("ticket_info" in doc)) {
    throw new TriggerInputError(
      `expected a <ticket_info> document, got <${Object.keys(doc)[0] ?? "nothing"}>`,
    );
  }
  const info = doc["ticket_info"];
  if (info === "" || info === null || typeof info !== "object") return { ticketId: undefined };
  const record = info as Record<string, unknown>;
  const id = record["id"];
  if (id === undefined) return { ticketId: undefined };
  const ticketId = positiveId(id, "ticket <id>");
  const completion = record["completion_data"] as Record<string, unknown> | undefined;
  const stage = (record["current_stage"] ?? completion?.["stage"]) as
    | Record<string, unknown>
    | undefined;
  const task = stage?.["ticket_task"] as Record<string, unknown> | undefined;
  return {
    ticketId,
    subject: typeof record["subject"] === "string" ? record["subject"] : undefined,
    stage: stage && stage["id"] !== undefined
      ? {
        id: positiveId(stage["id"], "current_stage <id>"),
        name: typeof stage["name"] === "string" ? stage["name"] : undefined,
        taskId: task?.["id"] !== undefined ? positiveId(task["id"], "ticket_task <id>") : undefined,
      }
      : undefined,
  };
}

/**
 * A positive whole number that survives the round trip through a JavaScript number: larger
 * ids (23 digits, say) would turn into other ids (`1e+23`), so they are bad input.
 */
function positiveId(value: unknown, what: string): number {
  const text = String(value).trim();
  const id = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(id) || id <= 0) {
    throw new TriggerInputError(
      `ticket_info has no valid ${what} ("${text.slice(0, 40)}": not a whole number from 1 to ` +
        `${Number.MAX_SAFE_INTEGER})`,
    );
  }
  return id;
}

/** SecureChange may pass the Arguments string as one argv element: split it like a shell. */
export function splitArguments(args: string[]): string[] {
  if (args.length !== 1 || !/\s/.test(args[0]!)) return args;
  const out: string[] = [];
  let current = "";
  let quote: '"' | "'" | undefined;
  let pending = false;
  for (let i = 0; i < args[0]!.length; i++) {
    const c = args[0]![i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < args[0]!.length) current += args[0]![++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      pending = true;
    } else if (/\s/.test(c)) {
      if (pending || current) out.push(current);
      current = "";
      pending = false;
    } else if (c === "\\" && i + 1 < args[0]!.length) {
      current += args[0]![++i];
    } else {
      current += c;
    }
  }
  if (quote) throw new TriggerInputError(`unbalanced ${quote} in the script arguments`);
  if (pending || current) out.push(current);
  return out;
}
