/**
 * `agent selftest`: resilient-circuits' `selftest` for the agent. The doctor's checks (each
 * system's connectivity and credentials), then each custom processor's own `selftest(ctx)`,
 * run in its sandbox with the agent's REST client. One table (or JSON); exit 0 only when
 * nothing failed. Nothing is changed by the agent's own checks; a processor's selftest does
 * what its author wrote.
 */
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";
import type { Config } from "../config/config.ts";
import { describeError } from "../errors/classify.ts";
import type { ResilientApi } from "../resilient/types.ts";
import { type Finding, tableHeader, tableRow, verdict } from "../probe/report.ts";

const HELP =
  `Usage: agent selftest [NAME...] [-l NAME]... [--json] [--timeout SECONDS] [--config FILE]

What resilient-circuits' selftest does, for the agent: the checks of "agent doctor"
(connectivity, TLS and credentials of every configured system), then the selftest of
each custom processor in the processors folder that defines one (selftest(ctx) in
defineProcessor), run in its sandbox with the agent's REST login. Give processor names
(or -l NAME, as resilient-circuits spells it) to test only those.

Prints one row per check; a processor without a selftest is "skip". Exit code 0 when
nothing failed, 1 otherwise.

Options:
  -l, --list NAME       A processor to test (repeatable; default: all)
      --json            One JSON object: {"ok": bool, "findings": [...]}
      --timeout S       Time limit per network step of the agent's checks, seconds
                        (default 10); a processor's selftest has its own timeout
${COMMON_HELP}`;

export const selftestCommand: Command = {
  name: "selftest",
  summary: "The doctor's checks plus each custom processor's selftest",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "selftest", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        list: { type: "string", short: "l", multiple: true },
        json: { type: "boolean" },
        timeout: { type: "string" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const seconds = Number(values.timeout ?? 10);
    if (!(seconds > 0 && seconds <= 300)) {
      throw new UsageError(
        `--timeout must be a number of seconds (0 to 300), not "${values.timeout}"`,
        "selftest",
      );
    }
    const names = [...positionals, ...(values.list ?? []).flatMap((l) => l.split(","))]
      .map((n) => n.trim()).filter(Boolean);
    const config = await loadCommandConfig(values, deps);
    setupCommandLogging({ ...values, "log-level": values["log-level"] ?? "error" }, config, {
      logFile: false,
    });
    const show = values.json ? undefined : (f: Finding) => deps.stdout(tableRow(f));
    if (!values.json) deps.stdout(tableHeader());
    const { runDoctor } = await import("./doctor.ts");
    const findings = await runDoctor(config, {
      signal: deps.signal,
      timeoutMs: seconds * 1000,
      ...(show ? { onFinding: show } : {}),
    });
    for (const f of await processorSelftests(config, deps.env, names, deps.signal)) {
      findings.push(f);
      show?.(f);
    }
    const { ok, line } = verdict(findings);
    deps.stdout(
      values.json ? JSON.stringify({ ok, verdict: line, findings }, null, 2) + "\n" : `\n${line}\n`,
    );
    return ok ? 0 : 1;
  },
};

/** Loads the processors (only `names`, when given) and runs each one's selftest. */
export async function processorSelftests(
  config: Config,
  env: (name: string) => string | undefined,
  names: string[],
  signal?: AbortSignal,
): Promise<Finding[]> {
  const { loadProcessors, processorsDir } = await import("../actions/load.ts");
  if (!processorsDir(config)) {
    return names.length
      ? [{
        system: "processors",
        check: "load",
        status: "fail",
        detail: `no processors folder is configured, so ${names.join(", ")} cannot be tested`,
        hint: "set [agent] processors_dir (or [resilient] componentsdir)",
      }]
      : [];
  }
  const { started, refused } = await loadProcessors(config, env, names.length ? names : undefined);
  const findings: Finding[] = refused.map((r) => ({
    system: `[${r.name}] processor`,
    check: "load",
    status: "fail",
    detail: r.reason,
    hint: `"agent actions list" shows what loads; fix the module or its [${r.name}] section`,
  }));
  try {
    let rest: ResilientApi | undefined;
    let restProblem: string | undefined;
    if (started.some((p) => p.description.selftest) && config.resilient) {
      try {
        const { RestClient } = await import("../resilient/rest.ts");
        rest = await RestClient.fromConfig(config.resilient, signal ? { signal } : {});
      } catch (error) {
        restProblem = describeError(error);
      }
    }
    for (const p of started) {
      const system = `[${p.processor.name}] processor`;
      if (!p.description.selftest) {
        findings.push({
          system,
          check: "selftest",
          status: "skip",
          detail: "it defines no selftest",
        });
        continue;
      }
      const result = await p.selftest(rest, signal);
      const detail = result.reason ?? (result.state === "success" ? "success" : "failure");
      findings.push({
        system,
        check: "selftest",
        status: result.state === "success" ? "pass" : "fail",
        detail: restProblem && result.state !== "success"
          ? `${detail} (the agent's REST login failed: ${restProblem})`
          : detail,
        ...(result.state === "success" ? {} : {
          hint: `the processor's own selftest failed; see its [${p.processor.name}] section`,
        }),
      });
    }
  } finally {
    for (const p of started) p.close();
  }
  return findings;
}
