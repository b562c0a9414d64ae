/**
 * What the action core keeps of the messages it receives: dead letters (a message that could
 * not be processed, kept in the store with its body in pieces that fit store values, for
 * `agent replay` and the ticket API's /dead-letters), and `--record DIR` (every received
 * message in a JSON file of its own, for replaying against a processor under development).
 */
import { Buffer } from "node:buffer";
import { log } from "../log/log.ts";
import type { Store, StoreSet } from "../store/store.ts";
import type { Delivery } from "../stomp/types.ts";

const logger = log("actions");

/** A message kept because it could not be processed. */
export interface DeadLetter {
  queue: string;
  /** The frame's headers (each value cut at 1,000 characters). */
  headers: Record<string, string>;
  /** The body's first bytes (base64); the rest is in `parts` records (deadLetterBody). */
  bodyBase64: string;
  /** The body's size as received. */
  bodySize?: number;
  /** How many more records hold the body (`DEAD_BODY_PREFIX`, id, n). */
  parts?: number;
  /** Set when the body was longer than a dead letter keeps (DEAD_BODY_MAX bytes). */
  truncated?: boolean;
  problem: string;
  at: number;
}

/** Where dead letters are kept (by message id). */
export const DEAD_LETTER_PREFIX = ["actions", "dead"];
/** Where the rest of a dead letter's body is (id, piece number). */
export const DEAD_BODY_PREFIX = ["actions", "dead_body"];
/** A store value holds at most 64 KiB: a dead letter's body is kept in pieces of this size. */
const DEAD_BODY_PIECE = 48 * 1024;
/** How much of a dead letter's body its record holds itself (base64: 40 KB). */
const DEAD_BODY_HEAD = 30_000;
/** How much of a dead letter's body is kept (the rest is cut, and the record says so). */
const DEAD_BODY_MAX = 8 * DEAD_BODY_PIECE;

/** A dead letter's body as kept (whole unless `letter.truncated`). */
export async function deadLetterBody(
  store: Store,
  id: string,
  letter: DeadLetter,
): Promise<Uint8Array> {
  const pieces = [Buffer.from(letter.bodyBase64, "base64")];
  for (let n = 1; n <= (letter.parts ?? 0); n++) {
    const piece = await store.get<Uint8Array>([...DEAD_BODY_PREFIX, id, n]);
    if (piece) pieces.push(Buffer.from(piece));
  }
  return new Uint8Array(Buffer.concat(pieces));
}

/** The store writes of a dead letter: the record, and its body in pieces that fit the store. */
export function deadLetterOps(
  id: string,
  queue: string,
  problem: string,
  delivery: Delivery,
): StoreSet[] {
  const body = delivery.body.subarray(0, DEAD_BODY_MAX);
  // The record carries the start (base64 grows it by a third); raw pieces carry the rest.
  const head = body.subarray(0, DEAD_BODY_HEAD);
  const pieces: Uint8Array[] = [];
  for (let at = head.byteLength; at < body.byteLength; at += DEAD_BODY_PIECE) {
    pieces.push(body.slice(at, at + DEAD_BODY_PIECE));
  }
  const headers = Object.fromEntries(
    Object.entries(delivery.headers).map(([k, v]) => [k.slice(0, 200), v.slice(0, 1000)]),
  );
  const letter: DeadLetter = {
    queue,
    headers,
    bodyBase64: Buffer.from(head).toString("base64"),
    bodySize: delivery.body.byteLength,
    parts: pieces.length,
    truncated: delivery.body.byteLength > DEAD_BODY_MAX,
    problem: problem.slice(0, 2000),
    at: Date.now(),
  };
  return [
    [[...DEAD_LETTER_PREFIX, id], letter],
    ...pieces.map((piece, i): StoreSet => [[...DEAD_BODY_PREFIX, id, i + 1], piece]),
  ];
}

/** `--record DIR`: each received message as `<epoch ms>-<seq>.json` in DIR. */
export class MessageRecorder {
  readonly #dir: string;
  #seq = 0;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Writes one received message to its own file (errors are logged, never thrown). */
  async record(delivery: Delivery): Promise<void> {
    const dir = this.#dir;
    const seq = String(++this.#seq).padStart(6, "0");
    const text = new TextDecoder().decode(delivery.body);
    const record: Record<string, unknown> = { headers: delivery.headers, body: text };
    if (!isValidUtf8(delivery.body)) {
      record.bodyBase64 = Buffer.from(delivery.body).toString("base64");
    }
    try {
      await Deno.writeTextFile(
        `${dir}/${Date.now()}-${seq}.json`,
        JSON.stringify(record, null, 2) + "\n",
      );
    } catch (error) {
      logger.warn("Could not record message to {dir}: {error}", { dir, error });
    }
  }
}

function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
