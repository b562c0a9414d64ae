/**
 * Reading incoming STOMP frames: mod/stomp/frame_parser.ts against @stomp/stompjs's own
 * byte-at-a-time parser (the baseline: the library doing the same work), each making a frame
 * of every raw one as stompjs's connection handler does (stompjs's `FrameImpl.fromRawFrame`,
 * and the agent's, which the agent puts in its place). The frames
 * are Action Module messages as ActiveMQ sends them (about 1 KB with their headers), read in
 * 16 KB chunks as the socket hands them on; alternating rounds, the median of each.
 *
 * Writing each message's reply SEND and its ACK: mod/stomp/frame_writer.ts against what
 * stompjs's `publish` and `ack` do for the same frames (a FrameImpl serialized, the text
 * encoded by the socket), in alternating rounds as well.
 */
import { FrameImpl, Parser } from "@stomp/stompjs";
import { type BenchResult, percentile, round } from "./_report.ts";
import {
  fastFromRawFrame,
  fastParseChunk,
  stompjsFromRawFrame,
  stompjsParseChunk,
} from "../mod/stomp/frame_parser.ts";
import { frameBytes } from "../mod/stomp/frame_writer.ts";
import { taskAction } from "../tests/support/stomp_client.ts";
import { concatBytes } from "../mod/text/bytes.ts";

const FRAMES = 3000;
const ROUNDS = 7;

function stream(): ArrayBuffer[] {
  const encoder = new TextEncoder();
  const frames = Array.from({ length: FRAMES }, (_, i) => {
    const body = encoder.encode(JSON.stringify(taskAction({ id: 10_000 + i })));
    const head = `MESSAGE\ncontent-length:${body.length}\nexpires:0\n` +
      "destination:/queue/actions.201.noop\nsubscription:actions.201.noop\npriority:4\n" +
      `correlation-id:invid:${i}\nack:ID\\cbench-1-5\\c${i}\nmessage-id:ID:bench-1-5:3:1:1:${i}\n` +
      `persistent:true\nreply-to:/queue/acks.201.noop\ntimestamp:1700000000000\n\n`;
    return [encoder.encode(head), body, new Uint8Array([0, 10])];
  }).flat();
  const all = concatBytes(frames);
  const chunks: ArrayBuffer[] = [];
  for (let i = 0; i < all.length; i += 16_384) chunks.push(all.slice(i, i + 16_384).buffer);
  return chunks;
}

/** A way of reading: a parser's parseChunk and the frame maker its frames go to. */
interface Reader {
  parse: typeof stompjsParseChunk;
  frame: typeof stompjsFromRawFrame;
}
const STOMPJS: Reader = { parse: stompjsParseChunk, frame: stompjsFromRawFrame };
const AGENT: Reader = { parse: fastParseChunk, frame: fastFromRawFrame };

function usPerFrame({ parse, frame }: Reader, chunks: ArrayBuffer[]): number {
  let frames = 0;
  const parser = new Parser((raw) => {
    frame(raw, true);
    frames++;
  }, () => {});
  const start = performance.now();
  for (const chunk of chunks) parse.call(parser, chunk);
  const us = (performance.now() - start) * 1000 / frames;
  if (frames !== FRAMES) throw new Error(`read ${frames} frames of ${FRAMES}`);
  return us;
}

/** A reply and its ACK per message, as the agent sends them. */
function replies(): { reply: Record<string, string>; body: string; ack: Record<string, string> }[] {
  return Array.from({ length: FRAMES }, (_, i) => ({
    reply: { destination: "/queue/acks.201.noop", "correlation-id": `invid:${i}` },
    body: JSON.stringify({ message_type: 0, message: `Task ${10_000 + i}: done`, complete: true }),
    ack: { id: `ID:bench-1-5:3:1:1:${i}`, subscription: "actions.201.noop" },
  }));
}

type Writer = (command: string, headers: Record<string, string>, body?: string) => Uint8Array;

const encoder = new TextEncoder();
/** What stompjs's _transmit does for a frame, and the socket's encoding of its text. */
const stompjsWriter: Writer = (command, headers, body) =>
  encoder.encode(
    new FrameImpl({ command, headers, body, escapeHeaderValues: true }).serialize() as string,
  );

function usPerPair(write: Writer, pairs: ReturnType<typeof replies>): number {
  let bytes = 0;
  const start = performance.now();
  for (const { reply, body, ack } of pairs) {
    bytes += write("SEND", reply, body).length + write("ACK", ack).length;
  }
  const us = (performance.now() - start) * 1000 / pairs.length;
  if (bytes < pairs.length * 100) throw new Error("frames too short");
  return us;
}

export function benchStompFrames(): Promise<BenchResult> {
  const chunks = stream();
  const library: number[] = [];
  const ours: number[] = [];
  usPerFrame(STOMPJS, chunks); // warm-up, both
  usPerFrame(AGENT, chunks);
  for (let i = 0; i < ROUNDS; i++) {
    library.push(usPerFrame(STOMPJS, chunks));
    ours.push(usPerFrame(AGENT, chunks));
  }
  const pairs = replies();
  const libraryWrites: number[] = [];
  const ourWrites: number[] = [];
  usPerPair(stompjsWriter, pairs);
  usPerPair(frameBytes, pairs);
  for (let i = 0; i < ROUNDS; i++) {
    libraryWrites.push(usPerPair(stompjsWriter, pairs));
    ourWrites.push(usPerPair(frameBytes, pairs));
  }
  const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
  const stompjs = median(library);
  const fast = median(ours);
  const stompjsWrite = median(libraryWrites);
  const fastWrite = median(ourWrites);
  return Promise.resolve({
    name: "stomp_frames",
    figures: {
      frames: FRAMES,
      stompjs_parser_us_per_frame: round(stompjs, 2),
      agent_parser_us_per_frame: round(fast, 2),
      stompjs_vs_agent_ratio: round(stompjs / fast, 1),
      stompjs_writer_us_per_reply_and_ack: round(stompjsWrite, 2),
      agent_writer_us_per_reply_and_ack: round(fastWrite, 2),
      stompjs_vs_agent_writer_ratio: round(stompjsWrite / fastWrite, 1),
    },
    notes: [
      "parser: each includes making a frame of every raw one as stompjs's connection handler does (stompjs's FrameImpl.fromRawFrame, the agent's replacement of it); writer: a reply SEND and its ACK; median of 7 alternating rounds each",
    ],
  });
}
