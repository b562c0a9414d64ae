/**
 * The action core at the wire, measured as issue 19 asks, every consumer in its own
 * process on real ActiveMQ over STOMP+SSL:
 * - the baseline: a bare @stomp/stompjs consumer that only ACKs and replies, configured like
 *   the no-op agent's subscription (TCP_NODELAY, client-individual ACKs, its default prefetch);
 * - the agent started through its CLI (`agent actions` with a no-op processor in its
 *   sandbox; `agent calendar` writing .eml invites after its REST owner lookups);
 * - after a warm-up burst each, bursts of BURST task actions (distinct task ids) published
 *   while the consumer runs, median of ROUNDS rounds, the consumers taking turns within a
 *   round, each round starting with the next one;
 * - one at a time (each action sent when the last one's reply came), in turns of
 *   SINGLES_TURN actions per consumer: p50/p99;
 * - resident memory at rest, right after MEMORY_MESSAGES actions and IDLE_MS later.
 * The platform's side (publishing, collecting replies) is its own process as well.
 * BENCH_ROUNDS / BENCH_MEMORY_MESSAGES shorten a run. To compare a change with what it
 * changes, BENCH_ALT_MAIN=<another checkout>/main.ts runs that checkout's two agents beside
 * these, in the same rounds (figures `alt_*`); BENCH_ALT_V8 gives them other `--v8-flags=...`.
 * Two separate runs of this machine differ by more than most changes do.
 */
import { join } from "node:path";
import process from "node:process";
import { type BenchResult, percentile, round } from "./_report.ts";
import { type Broker, freePort, startBroker } from "../tests/support/activemq.ts";
import { testPki } from "../tests/support/ca.ts";
import { FakeResilient, resilientSection } from "../tests/support/fake_resilient.ts";
import { SELF_RUN_FLAGS } from "../mod/cli/permissions.ts";
import { sdkFileText } from "../mod/actions/scaffold.ts";
import { SDK_FILE } from "../mod/actions/load.ts";
import { SANDBOXED_PREFETCH_PER_WORKER } from "../mod/action_module/listener.ts";

const ORG = 201;
const BURST = 3000;
/**
 * Six: with the three consumers each starting two rounds, every one follows each of the
 * others equally often (four gave one consumer two starts of four); and the median of six
 * strays less on this machine, whose rounds spread by a quarter either way.
 */
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 6);
const SINGLES = 300;
const SINGLES_TURN = 30;
const MEMORY_MESSAGES = Number(Deno.env.get("BENCH_MEMORY_MESSAGES") ?? 10_000);
const IDLE_MS = 15_000;
/** The agent's default: num_workers = 10; the no-op processor's prefetch (a sandboxed one's). */
const WORKERS = 10;
const PREFETCH = SANDBOXED_PREFETCH_PER_WORKER * WORKERS;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
/**
 * Each consumer's first burst, not measured: as long as a measured one, because a shorter
 * warm-up left the first round's figures 10-40% low for whichever consumers went first (the
 * JIT of the agent and of the broker still at work), which moved the medians.
 */
const WARM_UP = BURST;

/** A line-oriented child process: writes a command, reads its one-line answer. */
class LineChild {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  get pid(): number {
    return this.#child.pid;
  }

  async ask(command: string): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
    return await this.line();
  }

  async line(): Promise<string> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error("a benchmark process ended early");
      this.#buffer += value;
    }
    const at = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + 1);
    return line;
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already ended
    }
    await this.#lines.cancel().catch(() => {});
    await this.#child.status;
  }
}

/** One of this folder's helper scripts in a process of its own. */
function benchScript(name: string, ...args: string[]): LineChild {
  return new LineChild(["run", "-A", new URL(`./${name}`, import.meta.url).pathname, ...args]);
}

/** A consumer under test: its process, and what it serves. */
interface Consumer {
  name: string;
  queue: string;
  pid: number;
  stop(): Promise<void>;
}

async function startBare(broker: Broker, caFile: string, queue: string): Promise<Consumer> {
  const child = benchScript(
    "_bare_consumer.ts",
    String(broker.sslPort),
    broker.user,
    broker.password,
    String(ORG),
    caFile,
    String(PREFETCH),
    queue,
  );
  if ((await child.line()) !== "ready") throw new Error("the bare consumer did not start");
  return { name: "bare", queue, pid: child.pid, stop: () => child.close() };
}

/** `agent <command> --config FILE` with its own permission flags; ready once it listens. */
async function startAgent(
  name: string,
  queue: string,
  args: string[],
  env: Record<string, string>,
  main = MAIN,
  v8Flags?: string,
): Promise<Consumer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...SELF_RUN_FLAGS.map((flag) => v8Flags && flag.startsWith("--v8-flags=") ? v8Flags : flag),
      // BENCH_AGENT_FLAGS: extra Deno flags for the agents (e.g. --inspect to profile).
      ...(Deno.env.get("BENCH_AGENT_FLAGS")?.split(" ").filter(Boolean) ?? []),
      main,
      ...args,
      "--log-level",
      "info",
    ],
    env: { ...env, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("Listening for actions")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`agent ${args[0]} ended before listening:\n${seen}`);
    seen = (seen + value).slice(-20_000);
  }
  const inspector = /Debugger listening on (\S+)/.exec(seen)?.[1];
  if (inspector) console.error(`agent ${name}: inspector at ${inspector}`);
  // Drained from now on, so that the agent never blocks on a full pipe.
  const drained = (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })().catch(() => {});
  return {
    name,
    queue,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drained;
    },
  };
}

/** A process's descendants (a sandbox, a Python integration), read from /proc. */
async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid) parents.set(Number(entry.name), ppid);
  }
  const isBelow = (p: number): boolean => {
    for (let up = parents.get(p); up; up = parents.get(up)) if (up === pid) return true;
    return false;
  };
  return [...parents.keys()].filter(isBelow);
}

/**
 * A figure of a process and, separately, of its sandboxes and of its sandboxes' memory
 * watcher (mod/sandbox/memory_watch.ts, the one child run with all permissions).
 */
interface Split {
  own: number;
  children: number;
  watcher: number;
}

async function perProcess(pid: number, read: (pid: number) => Promise<number>): Promise<Split> {
  let children = 0;
  let watcher = 0;
  for (const p of await descendants(pid)) {
    const command = await Deno.readTextFile(`/proc/${p}/cmdline`).catch(() => "");
    if (command.split("\0").includes("--allow-all")) watcher += await read(p);
    else children += await read(p);
  }
  return { own: await read(pid), children, watcher };
}

/** Resident memory, MB. */
async function memoryMb(pid: number): Promise<Split> {
  const { own, children, watcher } = await perProcess(pid, async (p) => {
    const status = await Deno.readTextFile(`/proc/${p}/status`).catch(() => "");
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
  });
  return { own: round(own), children: round(children), watcher: round(watcher) };
}

/** CPU time used so far (user + system), ms. */
function cpuMs(pid: number): Promise<Split> {
  return perProcess(pid, async (p) => {
    const stat = await Deno.readTextFile(`/proc/${p}/stat`).catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10; // clock ticks of 10 ms
  });
}

/** Files each {@linkcode fileCreateCpuUs} probe writes. */
const FILE_PROBES = 500;

/**
 * CPU time to create one small file next to the calendar's outbox, microseconds. On ext4
 * without a journal (this machine's disk) the inode allocator steps over every inode freed
 * in the last 1 to 6 minutes, so after a mass deletion (a test run, an earlier bench's
 * clean-up) a new file costs 10-20 times what it costs otherwise. The calendar writes one
 * .eml file per invite: this figure is the state of the disk its rate was measured on.
 */
function fileCreateCpuUs(dir: string): number {
  const probe = join(dir, `probe-${crypto.randomUUID()}`);
  Deno.mkdirSync(probe);
  const bytes = new Uint8Array(2500);
  const before = process.cpuUsage();
  for (let i = 0; i < FILE_PROBES; i++) Deno.writeFileSync(join(probe, `${i}.eml`), bytes);
  const used = process.cpuUsage(before);
  return round((used.user + used.system) / FILE_PROBES, 1);
}

/** A file costs about this much CPU to create when the disk is not stepping over freed inodes. */
const QUIET_FILE_US = 80;
/** How long {@linkcode quietDisk} waits at most: ext4 stops skipping an inode 6 minutes after it was freed. */
const QUIET_WAIT_MS = 6.5 * 60_000;

/**
 * Waits (up to QUIET_WAIT_MS) until creating a file on the outbox's disk costs what it does
 * normally, so that the calendar's rate is not that of a disk still paying for an earlier run's
 * clean-up (see fileCreateCpuUs); returns the last probe's figure.
 */
async function quietDisk(dir: string): Promise<number> {
  const deadline = Date.now() + QUIET_WAIT_MS;
  let cost = fileCreateCpuUs(dir);
  while (cost > QUIET_FILE_US && Date.now() < deadline) {
    console.error(
      `listener: a new file costs ${cost} us of CPU on this disk (inodes freed in the last ` +
        `minutes are being stepped over); waiting for it to settle before the bursts`,
    );
    await new Promise((r) => setTimeout(r, 30_000));
    cost = fileCreateCpuUs(dir);
  }
  return cost;
}

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

export async function benchListener(): Promise<BenchResult> {
  const pki = await testPki();
  const fake = await new FakeResilient({ orgId: ORG }).start();
  fake.users.set(4, { id: 4, email: "ann@example.com", fname: "Ann", lname: "Example" });
  fake.rules.set(11, "taskcalendar");
  const broker = await startBroker({ user: fake.apiKeyId, password: fake.apiKeySecret });
  const dir = await Deno.makeTempDir({ prefix: "agent-bench-listener-" });
  const resilient = resilientSection(fake, { sslPort: broker.sslPort, caCertFile: pki.caCertFile })
    .replace("num_workers = 4", `num_workers = ${WORKERS}`);
  const configFor = async (name: string, rest: string) => {
    const file = join(dir, `${name}.config`);
    await Deno.writeTextFile(
      file,
      `[agent]\nstore = ${dir}/${name}.kv\nhttp_listen = 127.0.0.1:${freePort()}\n` +
        `${rest}\n${resilient}`,
    );
    return file;
  };
  const env = { SOAR_SECRET: fake.apiKeySecret };
  /** A checkout's no-op and calendar agents, on queues of their own (`noop<suffix>`...). */
  const startAgents = async (suffix: string, main = MAIN, v8Flags?: string) => {
    const noop = `noop${suffix}`;
    const calendar = `calendar${suffix}`;
    const processors = join(dir, `${noop}-processors`);
    await Deno.mkdir(processors);
    await Deno.writeTextFile(join(processors, SDK_FILE), sdkFileText());
    await Deno.writeTextFile(
      join(processors, "noop.ts"),
      `import { defineProcessor } from "./${SDK_FILE}";\n` +
        `export default defineProcessor({ queue: "${noop}", handle: () => "ok" });\n`,
    );
    const noopConfig = await configFor(noop, `processors_dir = ${processors}`);
    const calendarConfig = await configFor(
      calendar,
      `\n[taskcalendar]\nqueue = ${calendar}\noutbox_dir = ${dir}/${calendar}-outbox\n` +
        `smtpfrom = soar@example.com\ndebounce_seconds = 0\n`,
    );
    return [
      await startAgent(noop, noop, ["actions", "--config", noopConfig], env, main, v8Flags),
      await startAgent(
        calendar,
        calendar,
        ["calendar", "--config", calendarConfig],
        env,
        main,
        v8Flags,
      ),
    ];
  };
  const altMain = Deno.env.get("BENCH_ALT_MAIN");
  const platform = benchScript(
    "_platform_child.ts",
    String(broker.stompPort),
    broker.user,
    broker.password,
    String(ORG),
  );
  const consumers: Consumer[] = [];
  try {
    consumers.push(await startBare(broker, pki.caCertFile, "bare"));
    consumers.push(...await startAgents(""));
    if (altMain) {
      consumers.push(...await startAgents("_alt", altMain, Deno.env.get("BENCH_ALT_V8")));
    }
    const [bare, noop, calendar, altNoop, altCalendar] = consumers as [
      Consumer,
      Consumer,
      Consumer,
      Consumer?,
      Consumer?,
    ];
    let base = 100_000;
    const burst = async (c: Consumer, n: number) => {
      const ms = Number(await platform.ask(`burst ${c.queue} ${n} ${base}`));
      base += n;
      return n / (ms / 1000);
    };
    // Warm-up (JIT, the sandbox, the REST session), then rest.
    for (const c of consumers) await burst(c, WARM_UP);
    await new Promise((r) => setTimeout(r, 3_000));
    const atRest = new Map<string, Split>();
    for (const c of consumers) atRest.set(c.name, await memoryMb(c.pid));
    const rates = new Map<string, number[]>(consumers.map((c) => [c.name, []]));
    const cpu = new Map<string, Split>(
      consumers.map((c) => [c.name, { own: 0, children: 0, watcher: 0 }]),
    );
    /** The rest of the machine during each consumer's bursts: the broker and the platform. */
    const others = new Map<string, number>(consumers.map((c) => [c.name, 0]));
    const othersMs = async () => (await cpuMs(broker.pid!)).own + (await cpuMs(platform.pid)).own;
    const fileCreateBefore = await quietDisk(dir);
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts with the next consumer, so that none always follows the same one
      // (a burst leaves the broker busy with its journal for a while after it).
      const turns = consumers.map((_, i) => consumers[(i + round) % consumers.length]!);
      for (const c of turns) {
        const before = await cpuMs(c.pid);
        const othersBefore = await othersMs();
        rates.get(c.name)!.push(await burst(c, BURST));
        const after = await cpuMs(c.pid);
        const sum = cpu.get(c.name)!;
        sum.own += after.own - before.own;
        sum.children += after.children - before.children;
        sum.watcher += after.watcher - before.watcher;
        others.set(c.name, others.get(c.name)! + (await othersMs()) - othersBefore);
      }
    }
    const fileCreateAfter = fileCreateCpuUs(dir);
    const othersPerMessage = (c: Consumer) => round(others.get(c.name)! / (ROUNDS * BURST), 3);
    const cpuPerMessage = (c: Consumer, part: keyof Split) =>
      round(cpu.get(c.name)![part] / (ROUNDS * BURST), 3);
    const rate = (c: Consumer) => median(rates.get(c.name)!);

    // One at a time, in turns of SINGLES_TURN actions each (the first consumer rotating like
    // the bursts' rounds), so that what the machine does after the last burst (the broker's
    // journal, a collection) falls on every consumer alike.
    const single = new Map<string, number[]>(consumers.map((c) => [c.name, []]));
    for (let turn = 0; turn < SINGLES / SINGLES_TURN; turn++) {
      for (let i = 0; i < consumers.length; i++) {
        const c = consumers[(i + turn) % consumers.length]!;
        const times: number[] = JSON.parse(
          await platform.ask(`single ${c.queue} ${SINGLES_TURN} ${base}`),
        );
        base += SINGLES_TURN;
        single.get(c.name)!.push(...times);
      }
    }
    for (const times of single.values()) times.sort((a, b) => a - b);
    const p = (c: Consumer, q: number) => round(percentile(single.get(c.name)!, q), 2);

    const afterMessages = new Map<string, Split>();
    const idle = new Map<string, Split>();
    for (const c of consumers) {
      await burst(c, MEMORY_MESSAGES);
      afterMessages.set(c.name, await memoryMb(c.pid));
    }
    await new Promise((r) => setTimeout(r, IDLE_MS));
    for (const c of consumers) idle.set(c.name, await memoryMb(c.pid));
    const mem = (c: Consumer, at: Map<string, Split>) => at.get(c.name)!.own;

    const roundRatios = (a: Consumer, b: Consumer) =>
      rates.get(a.name)!.map((r, i) => r / rates.get(b.name)![i]!);
    const noopRounds = roundRatios(noop, bare);
    const calendarRounds = roundRatios(calendar, noop);
    const noopRatio = rate(noop) / rate(bare);
    const p50Ratio = p(noop, 50) / p(bare, 50);
    const rssRatio = Math.max(
      mem(noop, afterMessages) / mem(bare, afterMessages),
      mem(noop, idle) / mem(bare, idle),
    );
    const calendarRatio = rate(calendar) / rate(noop);
    return {
      name: "listener",
      figures: {
        burst_messages: BURST,
        rounds: ROUNDS,
        bare_msgs_per_s: round(rate(bare)),
        agent_noop_msgs_per_s: round(rate(noop)),
        agent_noop_vs_bare_ratio: round(noopRatio, 3),
        agent_calendar_msgs_per_s: round(rate(calendar)),
        agent_calendar_vs_noop_ratio: round(calendarRatio, 3),
        bare_cpu_ms_per_msg: cpuPerMessage(bare, "own"),
        agent_noop_cpu_ms_per_msg: cpuPerMessage(noop, "own"),
        agent_noop_sandbox_cpu_ms_per_msg: cpuPerMessage(noop, "children"),
        agent_noop_memory_watcher_cpu_ms_per_msg: cpuPerMessage(noop, "watcher"),
        agent_calendar_cpu_ms_per_msg: cpuPerMessage(calendar, "own"),
        file_create_cpu_us_before_bursts: fileCreateBefore,
        file_create_cpu_us_after_bursts: fileCreateAfter,
        broker_and_platform_cpu_ms_per_msg_bare: othersPerMessage(bare),
        broker_and_platform_cpu_ms_per_msg_agent_noop: othersPerMessage(noop),
        broker_and_platform_cpu_ms_per_msg_agent_calendar: othersPerMessage(calendar),
        bare_single_p50_ms: p(bare, 50),
        bare_single_p99_ms: p(bare, 99),
        agent_noop_single_p50_ms: p(noop, 50),
        agent_noop_single_p99_ms: p(noop, 99),
        agent_calendar_single_p50_ms: p(calendar, 50),
        agent_calendar_single_p99_ms: p(calendar, 99),
        agent_noop_vs_bare_p50_ratio: round(p50Ratio, 2),
        memory_messages: MEMORY_MESSAGES,
        bare_rss_at_rest_mb: mem(bare, atRest),
        bare_rss_after_messages_mb: mem(bare, afterMessages),
        bare_rss_idle_mb: mem(bare, idle),
        agent_noop_rss_at_rest_mb: mem(noop, atRest),
        agent_noop_rss_after_messages_mb: mem(noop, afterMessages),
        agent_noop_rss_idle_mb: mem(noop, idle),
        agent_noop_sandbox_rss_idle_mb: idle.get("noop")!.children,
        agent_noop_memory_watcher_rss_idle_mb: idle.get("noop")!.watcher,
        agent_calendar_rss_at_rest_mb: mem(calendar, atRest),
        agent_calendar_rss_after_messages_mb: mem(calendar, afterMessages),
        agent_calendar_rss_idle_mb: mem(calendar, idle),
        agent_noop_vs_bare_rss_ratio: round(rssRatio, 2),
        // How far single rounds stray: the ratios within each round, lowest and highest.
        agent_noop_vs_bare_ratio_round_min: round(Math.min(...noopRounds), 3),
        agent_noop_vs_bare_ratio_round_max: round(Math.max(...noopRounds), 3),
        agent_calendar_vs_noop_ratio_round_min: round(Math.min(...calendarRounds), 3),
        agent_calendar_vs_noop_ratio_round_max: round(Math.max(...calendarRounds), 3),
        ...(altNoop && altCalendar
          ? {
            alt_noop_msgs_per_s: round(rate(altNoop)),
            alt_noop_vs_bare_ratio: round(rate(altNoop) / rate(bare), 3),
            alt_calendar_msgs_per_s: round(rate(altCalendar)),
            alt_calendar_vs_noop_ratio: round(rate(altCalendar) / rate(altNoop), 3),
            alt_noop_cpu_ms_per_msg: cpuPerMessage(altNoop, "own"),
            alt_noop_sandbox_cpu_ms_per_msg: cpuPerMessage(altNoop, "children"),
            alt_calendar_cpu_ms_per_msg: cpuPerMessage(altCalendar, "own"),
            alt_noop_single_p50_ms: p(altNoop, 50),
            alt_calendar_single_p50_ms: p(altCalendar, 50),
            alt_noop_single_p99_ms: p(altNoop, 99),
            alt_calendar_single_p99_ms: p(altCalendar, 99),
            alt_noop_rss_after_messages_mb: mem(altNoop, afterMessages),
            alt_noop_rss_idle_mb: mem(altNoop, idle),
          }
          : {}),
      },
      targets: {
        agent_noop_vs_bare_ratio: { target: ">= 0.8 (aim 0.9)", met: noopRatio >= 0.8 },
        agent_noop_vs_bare_p50_ratio: { target: "<= 2", met: p50Ratio <= 2 },
        agent_noop_vs_bare_rss_ratio: {
          target: "<= 1.5 after the messages and idle afterwards",
          met: rssRatio <= 1.5,
        },
        agent_calendar_vs_noop_ratio: { target: ">= 0.5", met: calendarRatio >= 0.5 },
      },
      notes: [
        "ActiveMQ (Debian, stock settings) over STOMP+SSL on loopback; the platform side, the bare consumer and each agent are processes of their own, all on this machine",
        `bursts: ${BURST} task actions with distinct task ids published while the consumer runs; median of ${ROUNDS} rounds after a warm-up burst of ${WARM_UP} each, consumers taking turns, each round starting with the next one`,
        'agent noop: `agent actions` (its CLI and permission flags) with a processor `handle: () => "ok"` in its sandbox process; calendar: `agent calendar`, REST owner lookup and an .eml invite per action, debounce_seconds = 0',
        `file_create_cpu_us: CPU to create one 2.5 KB file on the outbox's disk, before the first burst and after the last; ext4 without a journal (this machine) steps over every inode freed in the last 1-6 minutes, so after a mass deletion (an earlier run's clean-up) it reads 200-600 instead of 15-40, and the calendar writes one file per invite: the bench waits (up to ${
          QUIET_WAIT_MS / 60_000
        } minutes) for it to read under ${QUIET_FILE_US} before the bursts`,
        "CPU: user + system time per message during the bursts, of the consumer's process (its sandbox apart), and of the broker and the platform's side together; with 2 cores, a consumer that adds CPU per message lowers the rate the whole machine can carry",
        `memory: VmRSS of the consumer's own process at rest, after ${MEMORY_MESSAGES} more actions and ${
          IDLE_MS / 1000
        } s later; the noop processor's sandbox process is listed apart (agent_noop_sandbox_rss_idle_mb): it holds the user's code, which the bare consumer has none of; so is the one memory watcher process that serves all of an agent's sandboxes (agent_noop_memory_watcher_rss_idle_mb, mostly the Deno binary's own pages)`,
      ],
    };
  } finally {
    for (const c of consumers) await c.stop().catch(() => {});
    await platform.close();
    await fake.stop();
    await broker.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}
