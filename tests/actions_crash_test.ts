import { assert, assertEquals } from "./support/assert.ts";
import { startBroker } from "./support/activemq.ts";
import { testPki } from "./support/ca.ts";
import { FakeResilient } from "./support/fake_resilient.ts";
import { PlatformClient, taskAction } from "./support/stomp_client.ts";
import { spawnListenerChild } from "./support/listener_child.ts";

const ORG = 201;
const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "agent killed with SIGKILL mid-stream and started again: nothing lost, no side effect twice",
  ...integration,
  async fn(t) {
    const broker = await startBroker();
    const fake = await new FakeResilient({ orgId: ORG }).start();
    const platform = await PlatformClient.connect(broker);
    const pki = await testPki();
    const dir = await Deno.makeTempDir();
    try {
      // Each crash point sits between two steps whose order guarantees exactly-once side
      // effects; with transactions, exactly one reply too (else at least one).
      for (const mode of ["ledger", "transactions"] as const) {
        for (const point of ["after-effect", "after-commit", "after-send"]) {
          await t.step(`${mode}: killed ${point.replace("-", " ")}`, async () => {
            const queue = `crash-${mode}-${point}`;
            const effects = `${dir}/${mode}-${point}.effects`;
            platform.listenForReplies(ORG, queue);
            const spawn = (fault?: string) =>
              spawnListenerChild({
                broker,
                fake,
                caCertFile: pki.caCertFile,
                store: `${dir}/${mode}-${point}.kv`,
                queue,
                effects,
                transactions: mode === "transactions",
                ...(fault ? { fault } : {}),
              });
            const ids = Array.from(
              { length: 20 },
              (_, i) => platform.sendAction(ORG, queue, taskAction({ id: i })),
            );
            const crashing = spawn(`kill-${point}:5`);
            const status = await crashing.status;
            assertEquals(status.signal, "SIGKILL");
            const survivor = spawn();
            try {
              await platform.waitFor(
                (r) => ids.every((id) => r.some((x) => x.correlationId === id)),
                60_000,
              );
            } finally {
              await new Promise((r) => setTimeout(r, 300)); // room for a duplicate to show up
              survivor.kill("SIGTERM");
              await survivor.status;
            }
            const lines = (await Deno.readTextFile(effects)).split("\n").filter((l) => l !== "");
            assertEquals(
              lines.sort(),
              [...ids].sort(),
              "each message's side effect happened exactly once",
            );
            for (const id of ids) {
              const replies = platform.replies.filter((r) => r.correlationId === id);
              if (mode === "transactions") assertEquals(replies.length, 1, `replies for ${id}`);
              else {assert(
                  replies.length >= 1 && replies.length <= 2,
                  `${replies.length} replies for ${id}`,
                );}
              assertEquals(replies[0]!.json?.message_type, 0);
            }
            assertEquals(await platform.queueSize(`actions.${ORG}.${queue}`), 0);
          });
        }
      }
    } finally {
      await platform.close();
      await fake.stop();
      await broker.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
