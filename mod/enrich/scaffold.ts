/**
 * `agent enrich new NAME`: a plugin for `agent enrich`, its test and a sample ticket in the
 * integrations folder; `agent enrich list`: every integration the config would run, and
 * whether it loads.
 */
import { join } from "node:path";
import { type PluginJob, startSandbox } from "./plugin_runner.ts";
import type { TicketInfo } from "./plugin.ts";

export async function scaffoldPlugin(name: string, dir: string): Promise<string[]> {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) {
    throw new Error(
      `"${name}" cannot name an integration: use lower-case letters, digits and "_" (it is ` +
        "also its INI section and its heading in the comment)",
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const files = {
    [`${name}.ts`]: pluginTemplate(name),
    [`${name}_test.ts`]: testTemplate(name),
    [`${name}_ticket.json`]: JSON.stringify(SAMPLE_TICKET, null, 2) + "\n",
  };
  for (const file of Object.keys(files)) {
    const path = join(dir, file);
    if (await Deno.lstat(path).then(() => true, () => false)) {
      throw new Error(`${path} already exists; not overwriting it`);
    }
  }
  for (const [file, text] of Object.entries(files)) {
    await Deno.writeTextFile(join(dir, file), text, { createNew: true });
  }
  return Object.keys(files).map((f) => join(dir, f));
}

/** A ticket as plugins get it (the add-on's ticket_info shape). */
const SAMPLE_TICKET: TicketInfo = {
  Id: 42,
  Subject: "Access for the build servers",
  WorkflowName: "Access Request",
  Requester: "ann",
  RequesterId: 7,
  Status: "In Progress",
  Comments: "",
  Requests: [{
    Order: "AR1",
    Sources: [
      { Ip: "10.20.0.5", Mask: "255.255.255.255", Cidr: "32", Private: true },
      { Ip: "0.0.0.0", Mask: "0.0.0.0", Cidr: "0", Private: false, Type: "ANY" },
    ],
    Destinations: [{ Ip: "203.0.113.10", Mask: "255.255.255.255", Cidr: "32", Private: false }],
    Services: [{ Protocol: "TCP", Min: "443", Max: "443" }],
  }],
};

function pluginTemplate(name: string): string {
  return `/**
 * ${name}: an integration for "agent enrich" (the SecureChange trigger). It gets the ticket
 * in the Request Add-on's ticket_info shape, a logger and its [${name}] settings, and returns
 * its section of the ticket comment (or null for nothing). It runs in a sandbox: add the
 * hosts it calls to allow_net in [${name}].
 * Test it with: deno test ${name}_test.ts
 */
interface Address {
  Ip: string;
  Cidr: string;
  Private: boolean;
  Type?: string;
}
interface Ticket {
  Id: number;
  Subject: string;
  Requests: { Order?: string; Sources: Address[]; Destinations: Address[] }[];
}
interface Logger {
  info(message: string): void;
}

export function getData(
  ticket: Ticket,
  logger: Logger,
  config: Record<string, string>,
): string | null {
  const wide = ticket.Requests.flatMap((r) =>
    r.Sources.filter((s) => Number(s.Cidr) < Number(config.max_prefix ?? "24"))
      .map((s) => \`\${r.Order ?? "AR"} source \${s.Ip}/\${s.Cidr}\${s.Type === "ANY" ? " (ANY)" : ""}\`)
  );
  logger.info(\`\${wide.length} wide source(s) in ticket \${ticket.Id}\`);
  return wide.length ? \`Wide sources:\\n\${wide.join("\\n")}\` : null;
}
`;
}

function testTemplate(name: string): string {
  return `import { getData } from "./${name}.ts";

const ticket = JSON.parse(await Deno.readTextFile(new URL("./${name}_ticket.json", import.meta.url)));
const logger = { info: (_message: string) => {} };

function expectEqual(actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(\`expected \${JSON.stringify(expected)}, got \${JSON.stringify(actual)}\`);
  }
}

Deno.test("${name} names the wide sources of the sample ticket", () => {
  expectEqual(getData(ticket, logger, {}), "Wide sources:\\nAR1 source 0.0.0.0/0 (ANY)");
});

Deno.test("${name} adds nothing when no source is wider than max_prefix", () => {
  expectEqual(getData(ticket, logger, { max_prefix: "0" }), null);
});
`;
}

/** How one integration fares when loaded (without running it). */
export interface IntegrationStatus {
  name: string;
  kind: "built-in" | "javascript" | "python";
  file?: string | undefined;
  ok: boolean;
  problem?: string | undefined;
}

/** Loads each integration the way a run would, and says whether it could run. */
export async function listIntegrations(jobs: PluginJob[]): Promise<IntegrationStatus[]> {
  return await Promise.all(jobs.map(async (job): Promise<IntegrationStatus> => {
    if (job.source.kind === "function") return { name: job.name, kind: "built-in", ok: true };
    if (job.source.kind === "python") {
      const out = await new Deno.Command(job.source.interpreter, {
        args: ["-I", "-B", "-c", PY_CHECK, job.source.path],
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const problem = new TextDecoder().decode(out.stdout).trim() ||
        new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
      return {
        name: job.name,
        kind: "python",
        file: job.source.path,
        ok: out.success && !problem,
        ...(out.success && !problem ? {} : { problem: problem || `exit ${out.code}` }),
      };
    }
    const file = job.source.kind === "file" ? job.source.path : undefined;
    try {
      (await startSandbox({ ...job, source: job.source })).terminate("listed");
      return { name: job.name, kind: "javascript", file, ok: true };
    } catch (error) {
      return {
        name: job.name,
        kind: "javascript",
        file,
        ok: false,
        problem: (error as Error).message,
      };
    }
  }));
}

/** Parses a Python integration without running it: syntax, and a get_data at the top. */
const PY_CHECK = String.raw`
import ast, sys
try:
    tree = ast.parse(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1])
except SyntaxError as error:
    print("SyntaxError: %s (line %s)" % (error.msg, error.lineno)); sys.exit(0)
names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
if "get_data" not in names:
    print("no get_data(ticket_info, logger) at the module's top level")
`;
