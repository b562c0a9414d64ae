/**
 * Reading incoming STOMP frames: mod/stomp/frame_parser.ts against @stomp/stompjs's own
 * byte-at-a-time parser (the baseline: the library doing the same work), both handing each
 * raw frame to stompjs's `FrameImpl.fromRawFrame` as its connection handler does. The frames
 * are Action Module messages as ActiveMQ sends them (about 1 KB with their headers), read in
 * 16 KB chunks as the socket hands them on; alternating rounds, the median of each.
 */
import { FrameImpl, Parser } from "@stomp/stompjs";
import { type BenchResult, percentile, round } from "./_report.ts";
import { fastParseChunk, stompjsParseChunk } from "../mod/stomp/frame_parser.ts";
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

function usPerFrame(parse: typeof stompjsParseChunk, chunks: ArrayBuffer[]): number {
  let frames = 0;
  const parser = new Parser((raw) => {
    FrameImpl.fromRawFrame(raw, true);
    frames++;
  }, () => {});
  const start = performance.now();
  for (const chunk of chunks) parse.call(parser, chunk);
  const us = (performance.now() - start) * 1000 / frames;
  if (frames !== FRAMES) throw new Error(`read ${frames} frames of ${FRAMES}`);
  return us;
}

export function benchStompFrames(): Promise<BenchResult> {
  const chunks = stream();
  const library: number[] = [];
  const ours: number[] = [];
  usPerFrame(stompjsParseChunk, chunks); // warm-up, both
  usPerFrame(fastParseChunk, chunks);
  for (let i = 0; i < ROUNDS; i++) {
    library.push(usPerFrame(stompjsParseChunk, chunks));
    ours.push(usPerFrame(fastParseChunk, chunks));
  }
  const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
  const stompjs = median(library);
  const fast = median(ours);
  return Promise.resolve({
    name: "stomp_frames",
    figures: {
      frames: FRAMES,
      stompjs_parser_us_per_frame: round(stompjs, 2),
      agent_parser_us_per_frame: round(fast, 2),
      stompjs_vs_agent_ratio: round(stompjs / fast, 1),
    },
    notes: [
      "each raw frame is handed to stompjs's FrameImpl.fromRawFrame as its connection handler does, so both figures include that; median of 7 alternating rounds",
    ],
  });
}
