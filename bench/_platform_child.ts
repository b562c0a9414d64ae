/**
 * The platform's side of a throughput run, in its own process (as the real platform is a
 * separate system): loads N action messages onto a queue, says "loaded", and on "go" times
 * how long until every reply is in, printing the milliseconds.
 * Args: stompPort user password org queue count
 */
import { PlatformClient, taskAction } from "../tests/support/stomp_client.ts";

const [port, user, password, org, queue, count] = Deno.args;
const platform = await PlatformClient.connect(
  { stompPort: Number(port), user: user!, password: password! } as never,
);
platform.listenForReplies(Number(org), queue!);
const wanted = new Set<string>();
for (let i = 0; i < Number(count); i++) {
  wanted.add(platform.sendAction(Number(org), queue!, taskAction({ id: i % 200, due_date: i })));
}
await platform.sync();
console.log("loaded");
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
await lines.read(); // "go"
const t0 = performance.now();
let seen = 0;
await platform.waitFor((r) => {
  for (; seen < r.length; seen++) wanted.delete(r[seen]!.correlationId);
  return wanted.size === 0;
}, 300_000);
console.log(String(performance.now() - t0));
await platform.close();
Deno.exit(0);
