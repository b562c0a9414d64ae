/**
 * The SecureChange trigger: read the ticket, run every integration in its sandbox at once,
 * and add what they found to the ticket as one comment. SecureChange retries a trigger up
 * to five times, so each (ticket, step, event) gets one comment: a claim in the store before
 * running, and the comment's marker line checked on the ticket (a run that crashed after
 * posting is recognised).
 */
import { basename, extname, join } from "node:path";
import { type Config, ConfigError, type EnrichConfig } from "../config/config.ts";
import { parseIni } from "../config/ini.ts";
import { log } from "../log/log.ts";
import { secrets } from "../log/redact.ts";
import { asList, type RawTicket, type SecureChangeApi } from "../securechange/types.ts";
import type { TriggerInfo } from "../securechange/trigger.ts";
import type { Store } from "../store/store.ts";
import { BUILTINS } from "./builtins.ts";
import { readSandboxSection, refuseSecretsIn } from "../sandbox/section.ts";
import {
  type PluginJob,
  type PluginOutcome,
  type StartedPlugins,
  startPlugins,
} from "./plugin_runner.ts";
import { buildTicketInfo } from "./ticket_info.ts";

const logger = log("enrich");
const DEFAULT_BUILTINS = ["address_classification", "risky_services"];
const PLUGIN_EXTENSIONS = [".js", ".mjs", ".ts"];
const TITLES: Record<string, string> = {
  address_classification: "Address classification",
  risky_services: "Risky services",
  http_lookup: "HTTP lookup",
};

/** What one trigger run did, for the exit code and the test suite. */
export type EnrichResult =
  | { kind: "skipped"; reason: string }
  | { kind: "posted" | "printed"; comment: string; outcomes: PluginOutcome[] }
  | { kind: "nothing-to-post"; outcomes: PluginOutcome[] };

export interface EnrichDeps {
  /** Absent with --ticket-file (the comment is printed instead). */
  api: SecureChangeApi | undefined;
  store: Store | undefined;
  env: (name: string) => string | undefined;
  signal?: AbortSignal;
}

/** Runs one trigger. */
export async function runEnrichment(
  trigger: { info: TriggerInfo; event: string; ticket?: RawTicket | undefined },
  config: Config,
  deps: EnrichDeps,
): Promise<EnrichResult> {
  const settings = config.enrich ?? defaultEnrichConfig();
  const event = trigger.event.toUpperCase();
  if (!trigger.ticket && !settings.events.includes(event)) {
    return {
      kind: "skipped",
      reason: `event ${event} is not in [enrich] events (${settings.events.join(", ")})`,
    };
  }
  const ticketId = trigger.info.ticketId ?? trigger.ticket?.id;
  if (ticketId === undefined) return { kind: "skipped", reason: "no ticket id" };
  // The plugins' config is checked before anything is fetched, and they start loading
  // while the ticket is fetched.
  const jobs = await pluginJobs(config, settings, deps.env);
  const plugins = startPlugins(jobs);
  let ran = false;
  try {
    const result = await enrichWith(
      plugins,
      jobs,
      trigger,
      ticketId,
      event,
      settings,
      config,
      deps,
    );
    ran = result.kind !== "skipped";
    return result;
  } finally {
    if (!ran) plugins.close();
  }
}

async function enrichWith(
  plugins: StartedPlugins,
  jobs: PluginJob[],
  trigger: { info: TriggerInfo; event: string; ticket?: RawTicket | undefined },
  ticketId: number,
  event: string,
  settings: EnrichConfig,
  config: Config,
  deps: EnrichDeps,
): Promise<EnrichResult> {
  const ticket = trigger.ticket ??
    await deps.api!.getTicket(ticketId, deps.signal ? { signal: deps.signal } : {});
  const target = commentTarget(ticket, trigger.info);
  if (target.stale) {
    return { kind: "skipped", reason: target.stale };
  }
  const marker = `[agent-enrich ${ticket.id}/${target.stepId ?? "-"}/${event}]`;
  const claimKey = ["enrich", ticket.id, target.stepId ?? 0, event];

  if (deps.api && deps.store) {
    // Only the agent's own comment counts, by its last line: a requester who writes the
    // marker (or ticket text that carries one) suppresses nothing.
    const own = (config.securechange?.username ?? "").toLowerCase();
    const posted = commentsOf(ticket).some((c) =>
      c.user.toLowerCase() === own && c.content.trimEnd().split("\n").at(-1)?.trim() === marker
    );
    if (posted) {
      await deps.store.set(claimKey, { state: "done", at: Date.now() });
      return {
        kind: "skipped",
        reason: `ticket ${ticket.id} already has the enrichment comment ${marker}`,
      };
    }
    const ttlMs = Math.max(...jobs.map((j) => j.timeoutMs), 1_000) + 120_000;
    if (!(await deps.store.claim(claimKey, { state: "running", at: Date.now() }, { ttlMs }))) {
      const state = await deps.store.get<{ state: string }>(claimKey);
      return {
        kind: "skipped",
        reason: state?.state === "done"
          ? `ticket ${ticket.id} step ${target.stepId} was already enriched for ${event}`
          : `another run is enriching ticket ${ticket.id} step ${target.stepId} for ${event}`,
      };
    }
  }

  const ticketInfo = buildTicketInfo(ticket);
  const outcomes = await plugins.run(ticketInfo, { maxMemoryMb: settings.maxMemoryMb });
  for (const o of outcomes) {
    if (o.ok) logger.info("{plugin} finished in {ms} ms", { plugin: o.name, ms: o.ms });
    else {logger.error("{plugin} failed after {ms} ms: {error}", {
        plugin: o.name,
        ms: o.ms,
        error: o.error,
      });}
  }
  const comment = composeComment(outcomes, { ticket, stage: target.stepName, marker, settings });
  if (!comment) {
    if (deps.store && deps.api) await deps.store.set(claimKey, { state: "done", at: Date.now() });
    return { kind: "nothing-to-post", outcomes };
  }
  if (!deps.api) return { kind: "printed", comment, outcomes };
  if (target.stepId === undefined || target.taskId === undefined) {
    throw new Error(`ticket ${ticket.id} has no current step and task to comment on`);
  }
  try {
    await deps.api.addComment(
      { id: ticket.id, stepId: target.stepId, taskId: target.taskId },
      comment,
      deps.signal ? { signal: deps.signal } : {},
    );
  } catch (error) {
    // Free the claim so SecureChange's retry can post.
    await deps.store?.delete(claimKey);
    throw error;
  }
  await deps.store?.set(claimKey, { state: "done", at: Date.now() });
  return { kind: "posted", comment, outcomes };
}

export function defaultEnrichConfig(): EnrichConfig {
  return {
    integrations: [],
    events: ["CREATE"],
    timeoutSeconds: 30,
    maxCommentChars: 10_000,
    postErrors: false,
    maxMemoryMb: 1024,
  };
}

function commentTarget(
  ticket: RawTicket,
  info: TriggerInfo,
): { stepId?: number; taskId?: number; stepName?: string; stale?: string } {
  const current = ticket.current_step || undefined;
  const steps = asList(ticket.steps ? ticket.steps.step : undefined);
  if (current && info.stage && info.stage.id !== current.id) {
    return {
      stale: `ticket_info says stage ${info.stage.id} but the ticket is at step ${current.id} ` +
        `(SecureChange's race on CREATE/ADVANCE); leaving it to the trigger for the current step`,
    };
  }
  const stepId = current?.id ?? info.stage?.id ?? steps.at(-1)?.id;
  const step = steps.find((s) => s.id === stepId);
  const task = asList(step?.tasks ? step.tasks.task : undefined)[0];
  return {
    ...(stepId !== undefined ? { stepId } : {}),
    ...((task?.id ?? info.stage?.taskId) !== undefined
      ? { taskId: (task?.id ?? info.stage?.taskId)! }
      : {}),
    ...((current?.name ?? step?.name) ? { stepName: (current?.name ?? step?.name)! } : {}),
  };
}

function commentsOf(ticket: RawTicket): { content: string; user: string }[] {
  return asList(ticket.comments ? ticket.comments.comment : undefined).map((c) => ({
    content: String(c.content ?? ""),
    user: String(c.user ?? ""),
  }));
}

/** Builds the sandbox jobs for the configured integrations. */
export async function pluginJobs(
  config: Config,
  settings: EnrichConfig,
  env: (name: string) => string | undefined,
): Promise<PluginJob[]> {
  if (settings.integrationsDir) {
    refuseSecretsIn(config, settings.integrationsDir, {
      section: "enrich",
      key: "integrations_dir",
    });
  }
  if (settings.python) assertMayRun(config, settings.python);
  const files = settings.integrationsDir
    ? await pluginFiles(settings.integrationsDir, settings.python !== undefined)
    : new Map<string, string>();
  const legacy = settings.integrationsDir ? await legacySections(settings.integrationsDir) : {};
  const names = settings.integrations.length
    ? settings.integrations
    : [...DEFAULT_BUILTINS, ...[...files.keys()].sort()];
  return await Promise.all(names.map(async (name) => {
    const section = await readSandboxSection(
      config,
      name,
      config.other[name] ?? legacy[name] ?? {},
      env,
    );
    const base = {
      name,
      config: section.settings,
      allowNet: section.allowNet,
      allowRead: section.allowRead,
      timeoutMs: (section.timeoutSeconds ?? settings.timeoutSeconds) * 1000,
      maxMemoryMb: section.maxMemoryMb ?? settings.maxMemoryMb,
    };
    const file = files.get(name);
    if (file?.endsWith(".py")) {
      return {
        ...base,
        source: { kind: "python" as const, path: file, interpreter: settings.python! },
      };
    }
    if (file) return { ...base, source: { kind: "file" as const, path: file } };
    const builtin = BUILTINS[name];
    if (builtin) return { ...base, source: { kind: "function" as const, fn: builtin } };
    throw new ConfigError(
      { file: config.file, section: "enrich", key: "integrations" },
      `no integration "${name}": not a built-in (${
        Object.keys(BUILTINS).join(", ")
      }) and no ${name}.js/.ts/.mjs in ${settings.integrationsDir ?? "integrations_dir (not set)"}`,
    );
  }));
}

async function pluginFiles(dir: string, python: boolean): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const extensions = python ? [...PLUGIN_EXTENSIONS, ".py"] : PLUGIN_EXTENSIONS;
  try {
    for await (const entry of Deno.readDir(dir)) {
      const ext = extname(entry.name);
      if (
        !entry.isFile || !extensions.includes(ext) || entry.name.endsWith(".d.ts") ||
        entry.name.startsWith("_") || /[._]test$/.test(basename(entry.name, ext))
      ) continue;
      const name = basename(entry.name, ext);
      // A JavaScript plugin and a Python one of the same name: the JavaScript one (it is
      // the rewrite) runs.
      if (ext === ".py" && files.has(name)) continue;
      files.set(name, join(dir, entry.name));
    }
  } catch (error) {
    throw new Error(`Cannot read integrations_dir "${dir}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  return files;
}

/** The agent's own permissions must let it run the interpreter: named in the error if not. */
function assertMayRun(config: Config, python: string): void {
  const state = Deno.permissions.querySync({ name: "run", command: python }).state;
  if (state === "granted") return;
  throw new ConfigError(
    { file: config.file, section: "enrich", key: "python" },
    `the agent may not run ${python}: its Deno flags allow --allow-run=deno,/usr/bin/python3 ` +
      "(see the README's Permissions); point python at /usr/bin/python3, or start the agent " +
      `with --allow-run=deno,${python}`,
  );
}

/** The old add-on's integration_config.txt (INI, a section per integration), if present. */
async function legacySections(dir: string): Promise<Record<string, Record<string, string>>> {
  const path = join(dir, "integration_config.txt");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return {};
  }
  const doc = parseIni(text, path);
  return Object.fromEntries(
    [...doc.sections].map((
      [name, entries],
    ) => [name, Object.fromEntries([...entries].map(([k, e]) => [k, e.value]))]),
  );
}

/** The one comment: a header per integration in configured order, length-capped, marked. */
export function composeComment(
  outcomes: PluginOutcome[],
  context: { ticket: RawTicket; stage: string | undefined; marker: string; settings: EnrichConfig },
): string | undefined {
  const sections: string[] = [];
  for (const o of outcomes) {
    const title = TITLES[o.name] ?? o.name;
    // Posted as the logs are written: no secret the agent knows, no credential-shaped text.
    if (o.ok && o.text) sections.push(`== ${title} ==\n${secrets.scrub(o.text.trim())}`);
    else if (!o.ok && context.settings.postErrors) {
      sections.push(`== ${title} ==\n(failed: ${secrets.scrub(o.error)})`);
    }
  }
  if (!sections.length) return undefined;
  const head = `Enrichment of ticket ${context.ticket.id}${
    context.stage ? ` (${context.stage})` : ""
  }`;
  let body = sections.join("\n\n");
  const budget = context.settings.maxCommentChars - head.length - context.marker.length - 80;
  if (body.length > budget) {
    const cut = body.length - budget;
    body = `${body.slice(0, budget).trimEnd()}\n… (truncated: ${cut} more characters)`;
    logger.warn("Comment truncated by {chars} characters (max_comment_chars)", { chars: cut });
  }
  return `${head}\n\n${body}\n\n${context.marker}`;
}
