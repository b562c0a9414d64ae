/** Turns a STOMP delivery into an ActionMessage, or says exactly what is wrong with it. */
import type { ActionData, ActionMessage } from "./types.ts";

/** The outcome of parsing: a message, or the problem and what could be read. */
export type ParseResult =
  | { ok: true; message: ActionMessage }
  | { ok: false; problem: string; headers: Record<string, string>; messageId: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A frame's message id: `message-id`, else its `ack` id, else a made-up one (never shared). */
export function messageIdOf(headers: Record<string, string>): string {
  return headers["message-id"] ?? headers["ack"] ?? `no-id-${crypto.randomUUID()}`;
}

/** Parses headers and body (UTF-8 JSON ActionDataDTO). */
export function parseDelivery(headers: Record<string, string>, body: Uint8Array): ParseResult {
  const messageId = messageIdOf(headers);
  const fail = (problem: string): ParseResult => ({ ok: false, problem, headers, messageId });
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return fail("the message body is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return fail(`the message body is not JSON (${(error as Error).message})`);
  }
  const problem = checkActionData(json);
  if (problem) return fail(problem);
  const destination = headers["destination"] ?? "";
  return {
    ok: true,
    message: {
      messageId,
      correlationId: headers["correlation-id"],
      replyTo: headers["reply-to"],
      contextToken: headers["Co3ContextToken"] ?? headers["co3contexttoken"],
      destination,
      queue: queueOf(destination),
      redelivered: headers["redelivered"] === "true",
      headers,
      data: json as ActionData,
    },
  };
}

/** What is wrong with a parsed body as an ActionDataDTO, if anything. */
export function checkActionData(json: unknown): string | undefined {
  if (json === null || typeof json !== "object") {
    return `the message body is JSON ${
      json === null ? "null" : typeof json
    }, not an ActionDataDTO object`;
  }
  if (Array.isArray(json)) return "the message body is a JSON array, not an ActionDataDTO object";
  const data = json as Record<string, unknown>;
  const incident = data["incident"];
  if (
    incident === null || typeof incident !== "object" ||
    typeof (incident as { id?: unknown }).id !== "number"
  ) {
    return 'the action has no "incident" with a numeric id';
  }
  if (typeof data["object_type"] !== "number") return 'the action has no numeric "object_type"';
  return undefined;
}

/** `/queue/actions.201.taskcalendar` -> `taskcalendar`. */
/** The Action Module's queue for a message destination: `actions.<org id>.<name>`. */
export function actionQueue(orgId: number, queue: string): string {
  return `actions.${orgId}.${queue}`;
}

export function queueOf(destination: string): string {
  const name = destination.replace(/^\/queue\//, "");
  const match = /^actions\.\d+\.(.+)$/.exec(name);
  return match ? match[1]! : name;
}

const OBJECT_KEYS = ["incident", "task", "note", "milestone", "artifact", "attachment"] as const;

/** The default ordering key: the object the action is about. */
export function objectKey(data: ActionData): string {
  const field = OBJECT_KEYS[data.object_type];
  const object = field ? data[field] as { id?: unknown } | null | undefined : undefined;
  if (object && (typeof object.id === "number" || typeof object.id === "string")) {
    return `${field}:${object.id}`;
  }
  return `incident:${data.incident.id}`;
}
