/**
 * `deno task bench [name...]`: runs the benchmarks, writes bench/results.json and prints a
 * summary table. Figures are measured here, on this machine, in this run; ratios compare
 * against baselines measured in the same run.
 */
import type { BenchResult } from "./_report.ts";
import { benchStartup } from "./startup.ts";
import { benchListener } from "./listener.ts";
import { benchCalendar } from "./calendar.ts";
import { benchEnrich } from "./enrich.ts";
import { benchMailBridge } from "./mail_bridge.ts";
import { benchRunMemory } from "./run_memory.ts";
import { benchTicketApi } from "./ticket_api.ts";
import { benchReplies } from "./replies.ts";
import { benchStompFrames } from "./stomp_frames.ts";

const BENCHES: Record<string, () => Promise<BenchResult>> = {
  startup: () => benchStartup(),
  listener: () => benchListener(),
  calendar: () => benchCalendar(),
  enrich: () => benchEnrich(),
  mail_bridge: () => benchMailBridge(),
  run_memory: () => benchRunMemory(),
  ticket_api: () => benchTicketApi(),
  replies: () => benchReplies(),
  stomp_frames: () => benchStompFrames(),
};

const wanted = Deno.args.length ? Deno.args : Object.keys(BENCHES);
const results: BenchResult[] = [];
for (const name of wanted) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(", ")}`);
    Deno.exit(2);
  }
  console.error(`running ${name} ...`);
  results.push(await bench());
}

// Running some benchmarks replaces their entries and keeps the others' last figures.
const file = new URL("./results.json", import.meta.url);
const previous: (BenchResult & { at?: string })[] = await Deno.readTextFile(file)
  .then((text) => JSON.parse(text).results)
  .catch(() => []);
const at = new Date().toISOString();
const merged = [
  ...previous.filter((p) => !results.some((r) => r.name === p.name)),
  ...results.map((r) => ({ ...r, at })),
].sort((a, b) => Object.keys(BENCHES).indexOf(a.name) - Object.keys(BENCHES).indexOf(b.name));
const report = {
  at,
  machine: {
    os: Deno.build.os,
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
  },
  results: merged,
};
await Deno.writeTextFile(file, JSON.stringify(report, null, 2) + "\n");

for (const r of results) {
  console.log(`\n${r.name}`);
  for (const [k, v] of Object.entries(r.figures)) console.log(`  ${k.padEnd(34)} ${v}`);
  for (const [k, t] of Object.entries(r.targets ?? {})) {
    console.log(`  target ${k}: ${t.target} -> ${t.met ? "met" : "NOT met"}`);
  }
  for (const note of r.notes ?? []) console.log(`  note: ${note}`);
}
console.log(`\nwrote ${file.pathname}`);
