/**
 * The sandboxes' memory watch (mod/sandbox/memory_watch.ts): one watcher process for every
 * sandbox process, which stops one that outgrows max_memory_mb even while its code never
 * yields, leaves the others running, and ends when no sandbox is left to watch.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { waitUntil } from "./support/wait.ts";
import { runPlugins, startSandbox } from "../mod/enrich/plugin_runner.ts";
import { buildTicketInfo } from "../mod/enrich/ticket_info.ts";
import { setupLogging } from "../mod/log/log.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** This process's children whose command line contains `text`. */
async function childrenWith(text: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const command = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).split("\0");
      if (parent === Deno.pid && command.some((arg) => arg.includes(text))) {
        found.push(Number(entry.name));
      }
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

Deno.test({
  name:
    "a plugin allocating in a loop that never yields is stopped at max_memory_mb while another finishes; the watcher process ends with the last sandbox",
  ...integration,
  async fn() {
    setupLogging({ format: "json", level: "error" });
    const dir = await Deno.makeTempDir();
    try {
      // Bounded (1.6 GB) so that a broken watch cannot take the machine down.
      await Deno.writeTextFile(
        `${dir}/hoard.js`,
        `export function getData() {
          const hoard = [];
          for (let i = 0; i < 100; i++) hoard.push(new Uint8Array(16 * 1024 * 1024).fill(7));
          return "kept " + hoard.length;
        }`,
      );
      await Deno.writeTextFile(
        `${dir}/calm.js`,
        `export async function getData(ticket) {
          await new Promise((r) => setTimeout(r, 300));
          return "calm " + ticket.Id;
        }`,
      );
      const job = (name: string) => ({
        name,
        source: { kind: "file" as const, path: `${dir}/${name}.js` },
        config: {},
        allowNet: [],
        allowRead: [],
        timeoutMs: 20_000,
        maxMemoryMb: 200,
      });
      const ticket = buildTicketInfo({ id: 7, subject: "s", workflow: { name: "w" } } as never);
      const run = runPlugins([job("hoard"), job("calm")], ticket);
      await waitUntil(
        "the watcher process runs",
        async () => (await childrenWith("--allow-all")).length === 1,
        10_000,
        20,
      );
      const [hoard, calm] = await run;
      assert(!hoard!.ok, JSON.stringify(hoard));
      assertStringIncludes(hoard!.error, "ran out of memory: its sandbox used");
      assertStringIncludes(hoard!.error, "(max_memory_mb 200)");
      const used = Number(/used (\d+) MB/.exec(hoard!.error)?.[1]);
      assert(used > 200 && used < 1600, `stopped at ${used} MB`);
      assertEquals(calm, { name: "calm", ok: true, text: "calm 7", ms: calm!.ms });
      await waitUntil(
        "the watcher process ends with the last sandbox",
        async () => (await childrenWith("--allow-all")).length === 0,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A sandbox with a plugin that holds `mb` MB more each call (bounded by the call count). */
async function hoarder(dir: string, name: string) {
  await Deno.writeTextFile(
    `${dir}/${name}.js`,
    `const hoard = [];
    export function getData(ticket, logger, config) {
      for (let i = 0; i < Number(config.mb) / 16; i++) {
        hoard.push(new Uint8Array(16 * 1024 * 1024).fill(7));
      }
      return "holding " + hoard.length * 16 + " MB";
    }`,
  );
  return await startSandbox({
    name,
    source: { kind: "file", path: `${dir}/${name}.js` },
    config: {},
    allowNet: [],
    allowRead: [],
    timeoutMs: 20_000,
    maxMemoryMb: 200,
  });
}

const TICKET = { ticketInfo: { Id: 1 } };

Deno.test({
  name:
    "a memory watcher killed from outside is replaced: the sandboxes it watched are still held to their limit",
  ...integration,
  async fn() {
    setupLogging({ format: "json", level: "error" });
    const dir = await Deno.makeTempDir();
    try {
      const sandbox = await hoarder(dir, "later");
      assertEquals(await sandbox.call({ ...TICKET, config: { mb: "32" } }), "holding 32 MB");
      const [watcher] = await childrenWith("--allow-all");
      assert(watcher, "a watcher runs");
      await new Promise((r) => setTimeout(r, 1_100)); // past the watcher's own start
      Deno.kill(watcher, "SIGKILL");
      await waitUntil(
        "another watcher runs",
        async () => {
          const now = await childrenWith("--allow-all");
          return now.length === 1 && now[0] !== watcher;
        },
        10_000,
        20,
      );
      const error = await sandbox.call({ ...TICKET, config: { mb: "400" } }).then(
        () => "",
        (e) => String(e),
      );
      assertStringIncludes(error, "ran out of memory: its sandbox used");
      assertEquals(sandbox.alive, false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a memory watcher that cannot stay up stops the sandboxes it watched instead of leaving them unwatched",
  ...integration,
  async fn() {
    setupLogging({ format: "json", level: "error" });
    const dir = await Deno.makeTempDir();
    try {
      const sandbox = await hoarder(dir, "unwatched");
      const [watcher] = await childrenWith("--allow-all");
      assert(watcher, "a watcher runs");
      Deno.kill(watcher, "SIGKILL"); // within its first second: it counts as unable to run
      await waitUntil("the sandbox is stopped", () => !sandbox.alive, 10_000, 20);
      assertStringIncludes(sandbox.endReason ?? "", "its memory could not be watched");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
