/**
 * A faster way in for @stomp/stompjs's incoming frames: its `Parser` reads a chunk one byte
 * at a time, through a function call per byte and a JavaScript array it pushes every byte
 * of every header and body onto; in the agent's busiest path (a burst of action messages)
 * that was an eighth of the main thread, and half of what the garbage collector had to clear.
 *
 * {@linkcode useFastFrameParser} replaces `Parser.prototype.parseChunk` (the one method
 * stompjs's connection handler calls) with one that finds a frame's lines and body with
 * `indexOf` and slices them out, and hands stompjs the very same raw frames (command,
 * `[key, value]` headers, body bytes) in the same order, pings included. Anything the fast
 * path does not take exactly as stompjs would (a CR inside a line, a header line without a
 * colon, a content-length that is not a plain number, a string chunk) hands that parser
 * back to stompjs's own byte-at-a-time code for good, from the start of that frame:
 * frames stay exactly stompjs's. tests/stomp_frame_parser_test.ts holds the two side by side
 * over every split of a stream of well-formed and odd frames.
 *
 * The same goes for the static `FrameImpl.fromRawFrame`, which the handler calls to make a
 * frame of each raw one ({@linkcode fastFromRawFrame}).
 */
import { FrameImpl, type IRawFrameType, Parser } from "@stomp/stompjs";
import { log } from "../log/log.ts";
import { concatBytes } from "../text/bytes.ts";

const NULL = 0;
const LF = 10;
const CR = 13;
const COLON = 58;

/** What a parser holds between chunks (stompjs's own state is kept for the slow path). */
interface FastState {
  /** Bytes of an incomplete frame, waiting for more. */
  chunks: Uint8Array[];
  have: number;
  /** How many bytes the incomplete frame needs before it is worth looking again. */
  need: number;
  /** Given back to stompjs's byte-at-a-time code (for the rest of the connection). */
  slow: boolean;
}

interface RawFrame {
  command: string;
  headers: [string, string][];
  binaryBody: Uint8Array;
}

type ParserInternals = Parser & {
  onFrame: (frame: RawFrame) => void;
  onIncomingPing: () => void;
};

/** stompjs's own `parseChunk`, for the slow path and for tests. */
export const stompjsParseChunk: Parser["parseChunk"] = Parser.prototype.parseChunk;

const states = new WeakMap<Parser, FastState>();
const decoder = new TextDecoder();

/** Installs the fast `parseChunk` and `fromRawFrame` (calling it again changes nothing). */
export function useFastFrameParser(): void {
  Parser.prototype.parseChunk = fastParseChunk;
  FrameImpl.fromRawFrame = fastFromRawFrame;
}

/** stompjs's own `FrameImpl.fromRawFrame`, for tests. */
export const stompjsFromRawFrame: typeof FrameImpl.fromRawFrame = FrameImpl.fromRawFrame;

/**
 * stompjs's `FrameImpl.hdrValueUnEscape` (private in its types), replace for replace in its
 * order: the same text for every value, also where that order reads a value oddly (two
 * backslashes and a `c` become a backslash and a colon).
 */
function unescapeValue(value: string): string {
  return value.replaceAll("\\r", "\r").replaceAll("\\n", "\n").replaceAll("\\c", ":")
    .replaceAll("\\\\", "\\");
}

/**
 * A received frame as stompjs's connection handler makes it (`FrameImpl.fromRawFrame`, the
 * static it calls for every raw frame): the first of repeated headers wins, names and values
 * trimmed, values unescaped on STOMP 1.1/1.2 (not in CONNECT/CONNECTED). stompjs trims every
 * name and value with a regular expression and unescapes every value with four replaces;
 * here `trim()` (the same white space as its `\s`) and the unescape only for a value with a
 * backslash, which is the only thing it changes. Together that was an eighth of what the
 * agent's main thread allocated in a burst.
 */
export function fastFromRawFrame(rawFrame: IRawFrameType, escapeHeaderValues: boolean): FrameImpl {
  const headers: Record<string, string> = {};
  const unescape = escapeHeaderValues && rawFrame.command !== "CONNECT" &&
    rawFrame.command !== "CONNECTED";
  for (let i = rawFrame.headers.length - 1; i >= 0; i--) {
    const [name, raw] = rawFrame.headers[i]!;
    const value = raw.trim();
    headers[name.trim()] = unescape && value.includes("\\") ? unescapeValue(value) : value;
  }
  return new FrameImpl({
    command: rawFrame.command!,
    headers,
    binaryBody: rawFrame.binaryBody,
    escapeHeaderValues,
  });
}

/** Whether a parser is still on the fast path (false once handed back to stompjs). */
export function readsFast(parser: Parser): boolean {
  return states.get(parser)?.slow !== true;
}

/** The fast `parseChunk` (see module doc); `this` is a stompjs Parser. */
export function fastParseChunk(
  this: Parser,
  segment: string | ArrayBuffer,
  appendMissingNULLonIncoming = false,
): void {
  let state = states.get(this);
  if (!state) states.set(this, state = { chunks: [], have: 0, need: 0, slow: false });
  if (state.slow) return stompjsParseChunk.call(this, segment, appendMissingNULLonIncoming);
  if (typeof segment === "string" || appendMissingNULLonIncoming) {
    return slowFrom(this, state, segment, appendMissingNULLonIncoming);
  }
  const chunk = new Uint8Array(segment);
  state.chunks.push(chunk);
  state.have += chunk.byteLength;
  if (state.have < state.need) return;
  const bytes = state.chunks.length === 1 ? chunk : concatBytes(state.chunks);
  state.chunks = [];
  state.have = 0;
  state.need = 0;
  const parser = this as ParserInternals;
  let at = 0;
  while (at < bytes.length) {
    const byte = bytes[at]!;
    if (byte === NULL || byte === CR) {
      at++;
      continue;
    }
    if (byte === LF) {
      at++;
      parser.onIncomingPing();
      continue;
    }
    const found = frameAt(bytes, at);
    if (found === "odd") return slowFrom(this, state, bytes.subarray(at), false);
    if (typeof found === "number") {
      state.chunks = [bytes.subarray(at)];
      state.have = bytes.length - at;
      state.need = found;
      return;
    }
    at = found.end;
    try {
      parser.onFrame(found.frame);
    } catch (error) {
      // As stompjs does: one frame's handler failing does not stop the connection.
      log("stomp").error("A STOMP frame handler failed; going on: {error}", { error });
    }
  }
}

/** Hands the parser (and what it holds of a frame) back to stompjs's own code. */
function slowFrom(
  parser: Parser,
  state: FastState,
  rest: string | ArrayBuffer | Uint8Array,
  appendMissingNULLonIncoming: boolean,
): void {
  state.slow = true;
  const held = state.have ? concatBytes(state.chunks) : undefined;
  state.chunks = [];
  state.have = 0;
  if (held) stompjsParseChunk.call(parser, held.slice().buffer, false);
  const segment = rest instanceof Uint8Array ? rest.slice().buffer : rest;
  stompjsParseChunk.call(parser, segment, appendMissingNULLonIncoming);
}

/**
 * The frame that starts at `start`: the frame and where the next begins, "odd" when stompjs
 * would read it differently than this does, or the byte count it needs (from `start`) before
 * it can be complete (at least one more byte than there is).
 */
function frameAt(
  bytes: Uint8Array,
  start: number,
): { frame: RawFrame; end: number } | "odd" | number {
  const more = bytes.length - start + 1;
  const commandEnd = bytes.indexOf(LF, start);
  if (commandEnd < 0) return more;
  if (!scanLine(bytes, start, commandEnd)) return "odd";
  const command = scan.end;
  let ascii = scan.ascii;
  // Header lines up to an empty one: [key start, colon, value end] each.
  const marks: number[] = [];
  let line = commandEnd + 1;
  let contentLength = -1;
  for (;;) {
    const end = bytes.indexOf(LF, line);
    if (end < 0) return more;
    if (!scanLine(bytes, line, end)) return "odd";
    const valueEnd = scan.end;
    if (valueEnd === line) {
      line = end + 1;
      break;
    }
    const colon = scan.colon;
    if (colon < 0) return "odd";
    ascii &&= scan.ascii;
    if (contentLength < 0 && isContentLength(bytes, line, colon)) {
      contentLength = digits(bytes, colon + 1, valueEnd);
      if (contentLength < 0) return "odd";
    }
    marks.push(line, colon, valueEnd);
    line = end + 1;
  }
  let bodyEnd: number;
  let end: number;
  if (contentLength >= 0) {
    bodyEnd = line + contentLength;
    if (bodyEnd >= bytes.length) return bodyEnd + 1 - start;
    end = bodyEnd + 1; // stompjs drops the byte after the body, whatever it is
  } else {
    bodyEnd = bytes.indexOf(NULL, line);
    if (bodyEnd < 0) return more;
    end = bodyEnd + 1;
  }
  const text = (from: number, to: number): string => decoder.decode(bytes.subarray(from, to));
  const headers: [string, string][] = [];
  if (ascii) {
    // One decode for the whole head; in ASCII, string and byte offsets are the same.
    const head = text(start, marks.length ? marks.at(-1)! : commandEnd);
    for (let i = 0; i < marks.length; i += 3) {
      headers.push([
        head.slice(marks[i]! - start, marks[i + 1]! - start),
        head.slice(marks[i + 1]! + 1 - start, marks[i + 2]! - start),
      ]);
    }
    return {
      frame: {
        command: head.slice(0, command - start),
        headers,
        binaryBody: bytes.slice(line, bodyEnd),
      },
      end,
    };
  }
  // Each token decoded alone, as stompjs does (a byte-order mark at a token's start goes).
  for (let i = 0; i < marks.length; i += 3) {
    headers.push([text(marks[i]!, marks[i + 1]!), text(marks[i + 1]! + 1, marks[i + 2]!)]);
  }
  return {
    frame: { command: text(start, command), headers, binaryBody: bytes.slice(line, bodyEnd) },
    end,
  };
}

/** What {@linkcode scanLine} found (one object, reused: this runs for every header). */
const scan = { end: 0, colon: -1, ascii: true };

/**
 * Reads the line from `from` to its LF at `lf` into `scan`: where its text ends (before a CR
 * that ends it), its first colon (-1: none), whether it is ASCII. False when a CR sits
 * anywhere else in it (stompjs drops those in some places and keeps them in others).
 */
function scanLine(bytes: Uint8Array, from: number, lf: number): boolean {
  let end = lf;
  let colon = -1;
  let high = 0;
  for (let i = from; i < lf; i++) {
    const byte = bytes[i]!;
    high |= byte;
    if (byte === COLON) {
      if (colon < 0) colon = i;
    } else if (byte === CR) {
      if (i !== lf - 1) return false;
      end = i;
    }
  }
  scan.end = end;
  scan.colon = colon;
  scan.ascii = high < 0x80;
  return true;
}

const CONTENT_LENGTH = new TextEncoder().encode("content-length");

function isContentLength(bytes: Uint8Array, from: number, colon: number): boolean {
  if (colon - from !== CONTENT_LENGTH.length) return false;
  for (let i = 0; i < CONTENT_LENGTH.length; i++) {
    if (bytes[from + i] !== CONTENT_LENGTH[i]) return false;
  }
  return true;
}

/** A plain decimal number (what parseInt reads the same way), else -1. */
function digits(bytes: Uint8Array, from: number, to: number): number {
  if (to === from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = bytes[i]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
