/**
 * Scale-out: several agent processes consuming the same queue on one broker, sharing one
 * store file, share the work (competing consumers) without a duplicate side effect or reply.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { FakeResilient } from "./support/fake_resilient.ts";
import { PlatformClient, taskAction } from "./support/stomp_client.ts";
import { spawnListenerChild } from "./support/listener_child.ts";

const ORG = 201;
const MESSAGES = 3_000;
const AGENTS = ["agent-a", "agent-b", "agent-c"];
const integration = { sanitizeOps: false, sanitizeResources: false };

/** Resolves once the child printed "ready" (it listens on the queue). */
async function ready(child: Deno.ChildProcess): Promise<void> {
  const decoder = new TextDecoder();
  let seen = "";
  for await (const chunk of child.stdout) {
    seen += decoder.decode(chunk);
    if (seen.includes("ready")) return;
  }
  throw new Error(`agent exited before it was ready: ${seen}`);
}

Deno.test({
  name:
    "three agents on one queue and one store process 3,000 messages: one reply and one side effect each, work spread across all three",
  ...integration,
  async fn() {
    const broker = await startBroker();
    const fake = await new FakeResilient({ orgId: ORG }).start();
    const platform = await PlatformClient.connect(broker);
    const pki = await testPki();
    const dir = await Deno.makeTempDir();
    const queue = "scale";
    const effects = `${dir}/effects`;
    const children: Deno.ChildProcess[] = [];
    try {
      platform.listenForReplies(ORG, queue);
      for (const name of AGENTS) {
        const child = spawnListenerChild({
          broker,
          fake,
          caCertFile: pki.caCertFile,
          store: `${dir}/shared.kv`,
          queue,
          effects,
          transactions: false,
          workers: 4,
          name,
          stdout: "piped",
        });
        children.push(child);
      }
      await Promise.all(children.map(ready));

      const ids = Array.from(
        { length: MESSAGES },
        (_, i) => platform.sendAction(ORG, queue, taskAction({ id: i })),
      );
      await platform.waitFor((r) => r.length >= MESSAGES, 120_000);
      await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up

      const lines = (await Deno.readTextFile(effects)).split("\n").filter((l) => l !== "");
      const byId = new Map<string, string[]>();
      for (const line of lines) {
        const [id, agent] = line.split(" ");
        byId.set(id!, [...byId.get(id!) ?? [], agent!]);
      }
      assertEquals(lines.length, MESSAGES, "one side effect per message, none twice");
      assertEquals(byId.size, MESSAGES);
      assert(ids.every((id) => byId.get(id)?.length === 1), "every message has its side effect");

      const replies = new Map<string, number>();
      for (const r of platform.replies) {
        replies.set(r.correlationId, (replies.get(r.correlationId) ?? 0) + 1);
      }
      assert(ids.every((id) => replies.get(id) === 1), "exactly one reply per message");
      assertEquals(platform.replies.length, MESSAGES);
      assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);

      const share = AGENTS.map((agent) => lines.filter((l) => l.endsWith(` ${agent}`)).length);
      // Competing consumers: each agent did a real part of the work, not a token message.
      for (const [i, count] of share.entries()) {
        assert(count >= MESSAGES * 0.1, `${AGENTS[i]} handled only ${count} of ${MESSAGES}`);
      }
      console.log(`work spread: ${AGENTS.map((a, i) => `${a} ${share[i]}`).join(", ")}`);
    } finally {
      for (const child of children) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        await child.status;
        await child.stdout.cancel().catch(() => {});
      }
      await platform.close();
      await fake.stop();
      await broker.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
