/**
 * The platform's side of the listener benchmark, in its own process (the real platform is
 * a separate system). Reads commands on stdin, one per line, and answers each on stdout:
 * - `burst QUEUE N BASE`: publishes N task actions (task ids BASE..BASE+N-1, so no two
 *   share an object) while the consumer runs, and prints the milliseconds from the first
 *   publish until every reply is in;
 * - `single QUEUE N BASE`: N actions one at a time, each sent when the last one's reply
 *   came; prints the round trips in milliseconds as a JSON array;
 * - `sync`: prints "ok" once the broker has everything published so far.
 * Args: stompPort user password org
 */
import { PlatformClient, taskAction } from "../tests/support/stomp_client.ts";

const [port, user, password, orgArg] = Deno.args;
const org = Number(orgArg);
const platform = await PlatformClient.connect(
  { stompPort: Number(port), user: user!, password: password! } as never,
);
const listening = new Set<string>();
const listen = (queue: string) => {
  if (!listening.has(queue)) platform.listenForReplies(org, queue);
  listening.add(queue);
};

/**
 * Resolves when `count` of the ids in `wanted` (which may still grow) have their replies,
 * counted as replies arrive.
 */
function repliesTo(wanted: Set<string>, count: number): Promise<void> {
  let seen = platform.replies.length;
  let matched = 0;
  return platform.waitFor((r) => {
    for (; seen < r.length; seen++) if (wanted.delete(r[seen]!.correlationId)) matched++;
    return matched >= count;
  }, 600_000);
}

async function burst(queue: string, n: number, base: number): Promise<number> {
  listen(queue);
  await platform.sync();
  const wanted = new Set<string>();
  const t0 = performance.now();
  const done = repliesTo(wanted, n);
  for (let i = 0; i < n; i++) {
    wanted.add(platform.sendAction(org, queue, taskAction({ id: base + i, due_date: i })));
    // Publishing yields now and then, so the consumer's replies are read meanwhile.
    if (i % 100 === 99) await platform.sync();
  }
  await done;
  return performance.now() - t0;
}

async function single(queue: string, n: number, base: number): Promise<number[]> {
  listen(queue);
  await platform.sync();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const id = platform.sendAction(org, queue, taskAction({ id: base + i, due_date: i }));
    await repliesTo(new Set([id]), 1);
    times.push(performance.now() - t0);
  }
  return times;
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffer = "";
for await (const chunk of lines) {
  buffer += chunk;
  let at: number;
  while ((at = buffer.indexOf("\n")) >= 0) {
    const [command, queue, n, base] = buffer.slice(0, at).split(" ");
    buffer = buffer.slice(at + 1);
    if (command === "burst") console.log(String(await burst(queue!, Number(n), Number(base))));
    else if (command === "single") {
      console.log(JSON.stringify(await single(queue!, Number(n), Number(base))));
    } else if (command === "sync") {
      await platform.sync();
      console.log("ok");
    }
  }
}
await platform.close();
Deno.exit(0);
