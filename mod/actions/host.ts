/**
 * Hosts one custom action processor: its module runs in a sandbox (mod/sandbox) with the
 * permissions its INI section grants; the agent sees it as an ordinary Processor. REST
 * calls go through the host's client (with the message's context token; credentials never
 * enter the sandbox), effects through the store's ledger. A sandbox that got stuck is
 * replaced for the next action.
 */
import type { ActionContext, ActionHandler, Processor, Reply } from "../action_module/types.ts";
import { ActionError } from "../action_module/types.ts";
import { objectKey } from "../action_module/message.ts";
import { effectsOf } from "../action_module/run_processor.ts";
import { log } from "../log/log.ts";
import type { ResilientApi } from "../resilient/types.ts";
import { Sandbox } from "../sandbox/sandbox.ts";
import type { SandboxSection } from "../sandbox/section.ts";
import {
  type ActionData,
  type ProcessorDescription,
  requestVia,
  type SelftestResult,
  selftestResult,
} from "../sdk/sdk.ts";

const DEFAULT_TIMEOUT_SECONDS = 300;

/** Where a processor comes from and what its section grants. */
export interface CustomProcessorSpec {
  name: string;
  /** The module file. */
  path: string;
  /** The processors folder: readable by every processor (its own code and the SDK). */
  dir: string;
  section: SandboxSection;
  /** Workers when neither the section nor the definition says (`[resilient] num_workers`). */
  defaultWorkers: number;
}

/** A started custom processor. */
export interface CustomProcessor {
  processor: Processor;
  description: ProcessorDescription;
  /**
   * Runs the processor's selftest (resilient-circuits' selftest_function) in its sandbox:
   * REST with the agent's own credentials, no effects, the section's timeout.
   */
  selftest(rest: ResilientApi | undefined, signal?: AbortSignal): Promise<SelftestResult>;
  close(): void;
}

/** Loads the module in its sandbox and describes it; throws naming what is wrong. */
export async function startCustomProcessor(spec: CustomProcessorSpec): Promise<CustomProcessor> {
  const logger = log("actions", spec.name);
  const start = async () => {
    const { sandbox, description } = await Sandbox.start({
      name: spec.name,
      source: { kind: "file", path: spec.path },
      kind: "processor",
      allowNet: spec.section.allowNet,
      allowRead: [spec.dir, ...spec.section.allowRead],
      maxMemoryMb: spec.section.maxMemoryMb,
      logger,
    });
    return { sandbox, description: description as ProcessorDescription };
  };
  const first = await start();
  let sandbox = first.sandbox;
  const description = first.description;
  let restarting: Promise<Sandbox> | undefined;
  /** The sandbox to use: after an abort, once it proved responsive, else a new one. */
  const current = async (): Promise<Sandbox> => {
    await sandbox.checked();
    if (sandbox.alive) return sandbox;
    const why = sandbox.endReason ?? "stopped";
    restarting ??= start().then((started) => {
      logger.warn("Started a new sandbox for {name} (the last one: {reason})", {
        name: spec.name,
        reason: why,
      });
      sandbox = started.sandbox;
      return sandbox;
    }).finally(() => (restarting = undefined));
    return await restarting;
  };

  const invoke = (rule: string | null): ActionHandler => async (action, ctx) => {
    const reply = await (await current()).call({
      rule,
      action,
      ruleName: ctx.ruleName ?? null,
      config: spec.section.settings,
      message: {
        messageId: ctx.message.messageId,
        correlationId: ctx.message.correlationId,
        queue: ctx.message.queue,
        headers: ctx.message.headers,
      },
    }, {
      signal: ctx.signal,
      onStatus: ctx.status,
      logger: ctx.log,
      rpc: (method, args) => answer(ctx, method, args),
    });
    return reply as Reply;
  };
  const rules = Object.fromEntries(description.rules.map((rule) => [rule, invoke(rule)]));
  const values = spec.section.values;
  const queue = values["queue"] || description.queue;
  const timeoutSeconds = spec.section.timeoutSeconds ?? description.timeoutSeconds ??
    DEFAULT_TIMEOUT_SECONDS;
  const workers = values["workers"] ? Number(values["workers"]) : description.workers;
  const processor: Processor = {
    name: spec.name,
    queue,
    rules,
    handle: description.catchAll ? invoke(null) : (_action, ctx) => {
      throw new ActionError(
        `${spec.name} has no handler for rule ${
          ctx.ruleName === undefined ? "(unknown)" : `"${ctx.ruleName}"`
        } (it handles: ${description.rules.join(", ")})`,
      );
    },
    timeoutMs: timeoutSeconds * 1000,
    workers: workers ?? spec.defaultWorkers,
    sandboxed: true,
    verify: (rest, signal) => verifyFields(spec.name, description, rest, signal),
  };
  if (description.defer) processor.deferMs = description.defer * 1000;
  if (description.debounce) {
    const path = description.debounce.key;
    processor.debounce = {
      ms: description.debounce.seconds * 1000,
      discard: description.debounce.discard,
      key: path ? (action) => valueAt(action, path) : objectKey,
    };
  }
  const selftest = async (rest: ResilientApi | undefined, outer?: AbortSignal) => {
    if (!description.selftest) return { state: "unimplemented" } as const;
    const timeout = AbortSignal.timeout(timeoutSeconds * 1000);
    const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
    try {
      return selftestResult(
        await (await current()).call({
          selftest: true,
          config: spec.section.settings,
          message: { messageId: "selftest", queue, headers: {} },
        }, {
          signal,
          logger,
          rpc: async (method, args) => {
            if (method === "effectGet") return { found: false };
            if (method === "effectSet") return null;
            if (method !== "request") throw new Error(`unknown host request ${method}`);
            return await hostRequest(rest, args, signal);
          },
        }),
      );
    } catch (error) {
      if (timeout.aborted) {
        return { state: "failure", reason: `no answer within ${timeoutSeconds} s` } as const;
      }
      return selftestResult(undefined, error);
    }
  };
  return {
    processor,
    description,
    selftest,
    close: () => sandbox.terminate(`${spec.name} was stopped`),
  };
}

/** Answers a sandbox's requests for the REST API and the effect ledger. */
async function answer(ctx: ActionContext, method: string, args: unknown[]): Promise<unknown> {
  switch (method) {
    case "request":
      return await hostRequest(ctx.rest, args, ctx.signal);
    case "effectGet":
      return await effectsOf(ctx).lookup(String(args[0]));
    case "effectSet":
      // Answered at once: the record is stored behind, before the run's reply (effects.ts).
      effectsOf(ctx).record(String(args[0]), args[1]);
      return null;
    default:
      throw new Error(`unknown host request ${method}`);
  }
}

/** A sandbox's REST call, made by the host with its client (`args`: method, path, body). */
async function hostRequest(
  rest: ResilientApi | undefined,
  args: unknown[],
  signal: AbortSignal,
): Promise<unknown> {
  const [verb, path, body] = args as [string, unknown, unknown];
  if (!rest) throw new Error("no REST API in this run ([resilient] is not configured)");
  if (typeof path !== "string") throw new Error("a REST path must be a string");
  return await requestVia(rest, verb, path, body, { signal });
}

interface FieldDTO {
  name: string;
  input_type?: string;
}

/** resilient-circuits' @required_field / @required_action_field, checked at start-up. */
async function verifyFields(
  name: string,
  description: ProcessorDescription,
  rest: ResilientApi,
  signal: AbortSignal,
): Promise<void> {
  const checks = [
    { kind: "incident", type: "incident", wanted: description.requiredFields },
    { kind: "action", type: "actioninvocation", wanted: description.requiredActionFields },
  ] as const;
  const problems: string[] = [];
  for (const check of checks) {
    if (!check.wanted.length) continue;
    const fields = await rest.get<FieldDTO[]>(`/types/${check.type}/fields`, { signal });
    const byName = new Map(fields.map((f) => [f.name, f]));
    for (const want of check.wanted) {
      const field = byName.get(want.name);
      if (!field) {
        problems.push(`the platform has no ${check.kind} field "${want.name}"`);
      } else if (want.type && field.input_type !== want.type) {
        problems.push(
          `${check.kind} field "${want.name}" is of type "${field.input_type}", not "${want.type}"`,
        );
      }
    }
  }
  if (problems.length) {
    throw new Error(`${name} requires fields the platform lacks: ${problems.join("; ")}`);
  }
}

function valueAt(action: ActionData, path: string): string | undefined {
  let value: unknown = action;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value === undefined || value === null ? undefined : String(value);
}
