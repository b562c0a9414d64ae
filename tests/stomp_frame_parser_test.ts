/**
 * The fast STOMP frame reader against stompjs's own, side by side: every stream of frames,
 * cut into chunks every possible way (and at random), must give the same frames and pings in
 * the same order, odd frames included (those the fast path hands back to stompjs). The frames
 * made of raw ones against stompjs's `FrameImpl.fromRawFrame`, and the frame writer's SEND and
 * ACK frames against stompjs's serializer, byte for byte.
 */
import { assertEquals } from "./support/assert.ts";
import { FrameImpl, Parser } from "@stomp/stompjs";
import { frameBytes } from "../mod/stomp/frame_writer.ts";
import {
  fastFromRawFrame,
  fastParseChunk,
  readsFast,
  stompjsFromRawFrame,
  stompjsParseChunk,
} from "../mod/stomp/frame_parser.ts";
import { concatBytes } from "../mod/text/bytes.ts";

const enc = new TextEncoder();
const bytes = (...parts: (string | number[] | Uint8Array)[]): Uint8Array =>
  concatBytes(parts.map((p) => typeof p === "string" ? enc.encode(p) : new Uint8Array(p)));

const body = JSON.stringify({
  task: { id: 4711, name: "Contain host", owner_id: 3 },
  object_type: "task",
  note: "Ünïcödé ✓ and a NUL-free body",
});

/** Frames as ActiveMQ sends them, and the odd ones a broken peer might. */
const WELL_FORMED = [
  "CONNECTED\nversion:1.2\nheart-beat:0,15000\nserver:ActiveMQ/5.17.6\n\n\0",
  `MESSAGE\ncontent-length:${enc.encode(body).length}\nexpires:0\n` +
  "destination:/queue/actions.201.noop\nsubscription:actions.201.noop\npriority:4\n" +
  "correlation-id:invid:4711\nack:ID\\cbox-1-5\\c3\nmessage-id:ID:box-1-5:3:1:1:1\n" +
  `persistent:true\nreply-to:/queue/acks.201.noop\ntimestamp:1700000000000\n\n${body}\0\n`,
  "\n", // a heartbeat
  "\r\n", // another
  "MESSAGE\ndestination:/queue/a\nmessage-id:no-length\n\nplain text body\0",
  "RECEIPT\nreceipt-id:confirm-1\n\n\0\n",
  "MESSAGE\r\ncontent-length:3\r\nmessage-id:crlf\r\n\r\nabc\0",
  "RECEIPT\r\nreceipt-id:crlf-2\r\nx:y\r\n\r\nbody\0",
  "MESSAGE\ncontent-length:0\nmessage-id:empty\n\n\0",
  "MESSAGE\nmessage-id:dup-length\ncontent-length:2\ncontent-length:5\n\nxy\0",
  "MESSAGE\nx-name:Zoë 😀 \u00e9t\u00e9\nx-colons:a:b:c\nx-empty:\n:\n\n\0",
  "MESSAGE\nx-bom:\ufeffvalue\n\ufeffkey:v\n\n\0",
  "ERROR\nmessage:bad frame\ncontent-length:6\n\ndetail\0",
  "MESSAGE\ncontent-length:007\n\nseven!!\0",
];

/** How many of {@linkcode streams} are well-formed throughout (the first ones). */
const FAST_STREAMS = 3;

function streams(): Uint8Array[] {
  const binary = bytes("MESSAGE\ncontent-length:5\nmessage-id:bin\n\n", [0, 1, 0, 255, 13], [0]);
  const noTerminator = bytes("MESSAGE\ncontent-length:2\n\nokX"); // stompjs drops any byte after
  const odd = [
    "MESSAGE\nno colon on this line\nk:v\n\n\0",
    "MESSAGE\nk:va\rlue\n\n\0",
    "MESSAGE\n\rk:v\n\n\0",
    "MESS\rAGE\nk:v\n\n\0",
    "MESSAGE\nke\ry:v\n\n\0",
    "MESSAGE\ncontent-length: 4\n\nabcd\0",
    "MESSAGE\ncontent-length:4x\n\nabcd\0",
    "MESSAGE\ncontent-length:\n\n\0",
  ];
  const base = bytes(...WELL_FORMED);
  return [
    // Read by the fast path to the end:
    base,
    bytes(...WELL_FORMED, "\0\0\r\n"),
    bytes(binary, noTerminator, ...WELL_FORMED.slice(0, 3)),
    // Handed back to stompjs at the odd frame:
    ...odd.map((o) => bytes(WELL_FORMED[1]!, o, ...WELL_FORMED.slice(2))),
    bytes(WELL_FORMED[0]!, "MESSAGE\ncontent-length:abc\n\nnever ends\0", WELL_FORMED[1]!),
  ];
}

type Event = string;

/** Whether the last run's parser stayed on the fast path. */
let lastFast = false;

function run(parse: typeof stompjsParseChunk, chunks: Uint8Array[], strings = false): Event[] {
  const events: Event[] = [];
  const parser = new Parser(
    (frame) => {
      events.push(JSON.stringify([
        frame.command,
        frame.headers,
        [...(frame.binaryBody ?? [])],
      ]));
    },
    () => events.push("ping"),
  );
  for (const chunk of chunks) {
    const segment = strings ? new TextDecoder().decode(chunk) : chunk.slice().buffer;
    parse.call(parser, segment, false);
  }
  lastFast = readsFast(parser);
  return events;
}

function split(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const cut of [...cuts, stream.length]) {
    chunks.push(stream.subarray(at, cut));
    at = cut;
  }
  return chunks;
}

/** A small seeded PRNG, so that a failure can be replayed. */
function prng(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
}

Deno.test("the fast frame reader gives stompjs's frames and pings for every two-chunk split of each stream", () => {
  for (const [n, stream] of streams().entries()) {
    const expected = run(stompjsParseChunk, [stream]);
    assertEquals(run(fastParseChunk, [stream]), expected, `stream ${n} whole`);
    assertEquals(lastFast, n < FAST_STREAMS, `stream ${n} read by the fast path to the end`);
    for (let cut = 0; cut <= stream.length; cut++) {
      const chunks = split(stream, [cut]);
      assertEquals(run(fastParseChunk, chunks), expected, `stream ${n} cut at ${cut}`);
    }
  }
});

Deno.test("the fast frame reader gives stompjs's frames byte by byte, in random chunks, and from string chunks", () => {
  const random = prng(19);
  for (const [n, stream] of streams().entries()) {
    const expected = run(stompjsParseChunk, [stream]);
    const single = split(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1));
    assertEquals(run(fastParseChunk, single), expected, `stream ${n} byte by byte`);
    for (let round = 0; round < 100; round++) {
      const cuts = Array.from(
        { length: 1 + Math.floor(random() * 12) },
        () => Math.floor(random() * stream.length),
      ).sort((a, b) => a - b);
      assertEquals(run(fastParseChunk, split(stream, cuts)), expected, `stream ${n} at ${cuts}`);
    }
  }
  // A string chunk hands the parser to stompjs, with what it held of a frame.
  const text = enc.encode(WELL_FORMED.slice(0, 3).join(""));
  const cut = 40;
  const mixed: Event[] = [];
  const parser = new Parser(
    (frame) =>
      mixed.push(JSON.stringify([frame.command, frame.headers, [...(frame.binaryBody ?? [])]])),
    () => mixed.push("ping"),
  );
  fastParseChunk.call(parser, text.slice(0, cut).buffer);
  fastParseChunk.call(parser, new TextDecoder().decode(text.slice(cut)));
  assertEquals(mixed, run(stompjsParseChunk, [text]));
});

Deno.test("the fast frame reader reads a 1 MB body that comes in 1,000 chunks, and a burst of frames in one chunk", () => {
  const big = "x".repeat(1024 * 1024);
  const stream = bytes(`MESSAGE\ncontent-length:${big.length}\n\n${big}\0\n`, WELL_FORMED[1]!);
  const size = Math.ceil(stream.length / 1000);
  const cuts = Array.from({ length: 999 }, (_, i) => (i + 1) * size).filter((c) =>
    c < stream.length
  );
  const events = run(fastParseChunk, split(stream, cuts));
  assertEquals(events.length, 4); // the big frame, the ping after it, the next frame and its ping
  assertEquals(events, run(stompjsParseChunk, [stream]));
  const burst = bytes(...Array.from({ length: 500 }, () => WELL_FORMED[1]!));
  assertEquals(run(fastParseChunk, [burst]).length, 1000); // each frame and its ping
});

Deno.test("frames are made of raw frames as stompjs makes them: the first of repeated headers, names and values trimmed, values unescaped where the connection escapes them (1.2) outside CONNECT/CONNECTED", () => {
  const raws: { command: string; headers: [string, string][]; binaryBody: Uint8Array }[] = [];
  new Parser((raw) => raws.push(raw as (typeof raws)[number]), () => {})
    .parseChunk(bytes(...WELL_FORMED).buffer as ArrayBuffer);
  const hostile: [string, string][] = [
    [" x-padded\t", " \u00a0value\ufeff\u2028 "],
    ["ack", "ID\\cbox\\c1"],
    ["x-odd", "a\\\\cb\\x\\"],
    ["x-escaped", "\\r\\n\\\\\\c"],
    ["x-dup", "first"],
    ["x-dup", "second"],
    ["", ""],
  ];
  for (const command of ["MESSAGE", "CONNECTED", "CONNECT", "RECEIPT"]) {
    raws.push({ command, headers: hostile, binaryBody: enc.encode("body") });
  }
  let unescaped = 0;
  for (const raw of raws) {
    for (const escape of [true, false]) {
      // stompjs reverses the raw headers in place: each gets a copy.
      const copy = () => ({
        ...raw,
        headers: raw.headers.map(([k, v]) => [k, v] as [string, string]),
      });
      const theirs = stompjsFromRawFrame(copy(), escape);
      const ours = fastFromRawFrame(copy(), escape);
      const escapes = (frame: FrameImpl) =>
        (frame as unknown as { escapeHeaderValues: boolean }).escapeHeaderValues;
      assertEquals(
        [ours.command, ours.headers, [...ours.binaryBody], escapes(ours)],
        [theirs.command, theirs.headers, [...theirs.binaryBody], escapes(theirs)],
        `${raw.command} ${escape}`,
      );
      if (ours.headers["x-escaped"] === "\r\n\\:") unescaped++;
    }
  }
  assertEquals(unescaped, 2, "MESSAGE and RECEIPT with escapes read as 1.2 unescapes them");
});

Deno.test("the frame writer's frames are stompjs's, byte for byte, for plain and hostile headers and bodies", () => {
  const headers: Record<string, string>[] = [
    {},
    { destination: "/queue/acks.201.noop", "correlation-id": "invid:4711" },
    { id: "ID:box-1-5:3:1:1:1", subscription: "actions.201.noop", transaction: "tx-1" },
    { "x-hostile": "a:b\\c\r\nSEND\ndestination:/queue/other\n\n\0", "x-ünï": "Zoë 😀" },
    { "x-escapes": "\\c\\n\\\\", "x-empty": "", "x-colon": ":" },
  ];
  const bodies = [
    "",
    body,
    "NUL \0 inside, CRLF \r\n, ✓ 😀 \u00e9",
    "lone surrogates \ud83d, \udc00 and at the end \ud83d",
    "x".repeat(70_000) + "✓",
  ];
  for (const command of ["SEND", "ACK"]) {
    for (const header of headers) {
      for (const text of bodies) {
        const theirs = new FrameImpl({
          command,
          headers: header,
          body: text,
          escapeHeaderValues: true,
        }).serialize() as string;
        assertEquals(
          frameBytes(command, header, text),
          new TextEncoder().encode(theirs), // as the socket sends stompjs's text
          `${command} ${JSON.stringify(header)} ${text.slice(0, 20)}`,
        );
      }
    }
  }
  // A content-length among the headers is left out: the body's own is the one sent.
  assertEquals(
    new TextDecoder().decode(frameBytes("SEND", { "content-length": "1", a: "b" }, "✓")),
    "SEND\na:b\ncontent-length:3\n\n✓\0",
  );
});
