/**
 * One watcher for the resident memory of every sandbox process. Deno refuses to read
 * another process's `/proc/<pid>` entries without all permissions, so the agent cannot
 * read them itself; a small `deno run -A` child of its own does, for every watched process
 * every {@linkcode MEMORY_CHECK_MS}, and says which ones went over their limit. The host
 * then stops that sandbox. The child runs only the fixed script below (no user code) and
 * ends when its stdin closes, which happens when no sandbox is left to watch.
 *
 * Why not a thread in each sandbox: a Worker costs a sandbox about 25 ms of CPU to start
 * (as much as the rest of its start-up), which eight plugins starting at once on two cores
 * feel; one watcher costs that once. The watch still does not depend on the sandbox's
 * own event loop, so code stuck in a synchronous loop that allocates is stopped too.
 */

import { readLines } from "../text/lines.ts";

/** How often the watched processes' memory is read. */
const MEMORY_CHECK_MS = 50;

/** The watcher: lines "watch PID LIMIT_BYTES" / "unwatch PID" in, "over PID RSS_BYTES" out. */
function watcher(checkMs: number): void {
  const limits = new Map<number, number>();
  const encoder = new TextEncoder();
  const say = (line: string) => {
    let bytes = encoder.encode(line + "\n");
    while (bytes.byteLength) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
  };
  const rssOf = (pid: number): number | undefined => {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      return kb === undefined ? 0 : Number(kb) * 1024; // no VmRSS: a zombie, nothing resident
    } catch {
      return undefined; // gone
    }
  };
  const check = () => {
    for (const [pid, limit] of limits) {
      const rss = rssOf(pid);
      if (rss === undefined) limits.delete(pid);
      else if (rss > limit) {
        limits.delete(pid);
        say(`over ${pid} ${rss}`);
      }
    }
  };
  const timer = setInterval(check, checkMs);
  void (async () => {
    let buffer = "";
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
        const [verb, pid, limit] = buffer.slice(0, end).split(" ");
        buffer = buffer.slice(end + 1);
        if (verb === "watch") limits.set(Number(pid), Number(limit));
        else if (verb === "unwatch") limits.delete(Number(pid));
      }
      check(); // a process watched just now is read at once, not a period later
    }
    clearInterval(timer);
  })();
}

/** What to call for a watched process. */
export interface MemoryHandlers {
  /** It went over its limit (its resident bytes); called once. */
  onOver(rss: number): void;
  /** Its memory can no longer be watched (the watcher cannot run). */
  onLost(): void;
}

interface Watched extends MemoryHandlers {
  limitBytes: number;
}

interface Running {
  input: WritableStreamDefaultWriter<Uint8Array>;
  /** The watched processes by pid: their limit and what to call when they go over it. */
  watched: Map<number, Watched>;
}

let running: Running | undefined;
const encoder = new TextEncoder();

/**
 * Watches process `pid`: `onOver` with its resident bytes (once) when they exceed
 * `limitBytes`. Returns the function that stops watching it; the watcher process ends when
 * nothing is watched. Throws when the watcher cannot start.
 */
export function watchMemory(
  pid: number,
  limitBytes: number,
  handlers: MemoryHandlers,
): () => void {
  const entry: Watched = { ...handlers, limitBytes: Math.floor(limitBytes) };
  add(running ?? start(), pid, entry);
  return () => {
    const watch = running;
    if (!watch || watch.watched.get(pid) !== entry) return;
    watch.watched.delete(pid);
    if (watch.watched.size) return send(watch, `unwatch ${pid}`);
    running = undefined;
    watch.input.close().catch(() => {});
  };
}

function add(watch: Running, pid: number, entry: Watched): void {
  watch.watched.set(pid, entry);
  send(watch, `watch ${pid} ${entry.limitBytes}`);
}

function send(watch: Running, line: string): void {
  watch.input.write(encoder.encode(line + "\n")).catch(() => {});
}

function start(): Running {
  const source = `(${watcher.toString()})(${MEMORY_CHECK_MS});\n`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-config",
      "--no-lock",
      "--no-remote",
      "--no-npm",
      "--allow-all", // only to read /proc/<pid>/status (see module doc)
      `data:application/javascript;base64,${btoa(source)}`,
    ],
    clearEnv: true,
    env: {
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const startedAt = performance.now();
  const watch: Running = { input: child.stdin.getWriter(), watched: new Map() };
  running = watch;
  readLines(child.stdout, (line) => {
    const [verb, pid, rss] = line.split(" ");
    if (verb === "over") watch.watched.get(Number(pid))?.onOver(Number(rss));
  }).catch(() => {});
  void child.status.then(() => {
    // Ended while sandboxes were still watched (killed from outside): the next watch
    // starts a new watcher, and those still running are handed to it.
    if (running !== watch) return;
    running = undefined;
    if (!watch.watched.size) return;
    if (performance.now() - startedAt < 1_000) {
      // Not a stray kill but a watcher that cannot run: its sandboxes cannot be held to
      // their limit, so they are stopped rather than left unwatched.
      for (const entry of watch.watched.values()) entry.onLost();
      return;
    }
    const next = start();
    for (const [pid, entry] of watch.watched) add(next, pid, entry);
  });
  return watch;
}
