/**
 * `agent actions new NAME`: writes a processor, its test and the SDK copy into the
 * processors folder, and its INI section into the config (or prints it).
 */
import { join } from "node:path";
import { VERSION } from "../cli/version.ts";
import { SDK_SOURCE } from "../sdk/embedded.ts";
import { SDK_FILE } from "./load.ts";

/** The SDK file as written next to processors. */
export function sdkFileText(source: string = SDK_SOURCE): string {
  return `// ${SDK_FILE}: the agent's processor SDK, written by agent ${VERSION} ` +
    `("agent actions new").\n// Do not edit: it is rewritten on upgrade.\n${source}`;
}

/** What `new` wrote, for the command's report. */
export interface Scaffolded {
  files: string[];
  /** Whether the SDK copy was (re)written. */
  sdk: "written" | "updated" | "current";
  section: string;
}

export async function scaffoldProcessor(name: string, dir: string): Promise<Scaffolded> {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) {
    throw new Error(
      `"${name}" cannot name a processor: use lower-case letters, digits and "_" (it is also ` +
        `the queue name and the INI section)`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const module = join(dir, `${name}.ts`);
  const test = join(dir, `${name}_test.ts`);
  for (const path of [module, test]) {
    if (await exists(path)) throw new Error(`${path} already exists; not overwriting it`);
  }
  const sdkPath = join(dir, SDK_FILE);
  const sdkText = sdkFileText();
  const previous = await Deno.readTextFile(sdkPath).catch(() => undefined);
  if (previous !== sdkText) await Deno.writeTextFile(sdkPath, sdkText);
  await Deno.writeTextFile(module, processorTemplate(name));
  await Deno.writeTextFile(test, testTemplate(name));
  return {
    files: [module, test, ...(previous !== sdkText ? [sdkPath] : [])],
    sdk: previous === undefined ? "written" : previous === sdkText ? "current" : "updated",
    section: sectionTemplate(name),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function processorTemplate(name: string): string {
  return `/**
 * ${name}: an action processor hosted by the agent ("agent actions").
 *
 * On the platform: a message destination "${name}" (a queue, expect acknowledgement: yes)
 * and a rule that sends to it, e.g. a menu-item rule on incidents named "${name} example".
 * Rule handlers are keyed by the rule's normalised name ("${name} example" -> ${name}_example).
 * Test it with: deno test ${name}_test.ts
 */
import { defineProcessor } from "./agent_sdk.ts";

export default defineProcessor({
  queue: "${name}",
  rules: {
    ${name}_example: async (action, ctx) => {
      ctx.status("Looking at the incident");
      const incident = await ctx.incidents.get(action.incident.id);
      const greeting = ctx.config.greeting ?? "Hello";
      ctx.log.info(\`\${greeting} from ${name} for incident \${incident.id}\`);
      return \`\${greeting}: incident \${incident.id} (\${incident.name}) seen by ${name}\`;
    },
  },
  // "agent selftest" runs this: check what the processor needs, changing nothing. Return
  // {state: "failure", reason} (or throw) when something is missing.
  selftest: (ctx) => {
    if (!ctx.config.greeting) {
      return { state: "failure", reason: "[${name}] greeting is not set" };
    }
    return { state: "success" };
  },
});
`;
}

function testTemplate(name: string): string {
  return `import { ResilientMock, testAction, testSelftest } from "./agent_sdk.ts";
import processor from "./${name}.ts";

function expectEqual(actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(\`expected \${JSON.stringify(expected)}, got \${JSON.stringify(actual)}\`);
  }
}

Deno.test("${name}_example replies with the incident it looked at", async () => {
  const mock = new ResilientMock()
    .on("GET", "/incidents/:id", (_call, params) => ({ id: Number(params.id), name: "Phishing" }));
  const result = await testAction(
    processor,
    { action_id: 12, object_type: 0, incident: { id: 2095 } },
    { mock, rule: "${name} example", config: { greeting: "Hi" } },
  );
  expectEqual(result.reply, {
    message_type: 0,
    message: "Hi: incident 2095 (Phishing) seen by ${name}",
    complete: true,
  });
  expectEqual(result.statuses, ["Looking at the incident"]);
  // Every REST call carries the message's context token (no rule loops on the platform).
  expectEqual(
    result.calls.map((c) => \`\${c.method} \${c.path} \${c.contextToken}\`),
    ["GET /incidents/2095 test-context-token"],
  );
});

Deno.test("${name}_example fails the action with the platform's error", async () => {
  const result = await testAction(
    processor,
    { action_id: 12, object_type: 0, incident: { id: 404 } },
    { rule: "${name} example" },
  );
  expectEqual(result.reply.message_type, 1);
  expectEqual(result.reply.message, "GET /incidents/404 failed: HTTP 404 no mock answer registered");
});

Deno.test("the selftest wants a greeting", async () => {
  expectEqual((await testSelftest(processor, { config: { greeting: "Hi" } })).state, "success");
  const missing = await testSelftest(processor, { config: {} });
  expectEqual([missing.state, missing.reason], ["failure", "[${name}] greeting is not set"]);
});
`;
}

export function sectionTemplate(name: string): string {
  return `
[${name}]
# Settings for the ${name} processor (ctx.config), and its sandbox: the hosts it may
# reach and files it may read (nothing by default), its time limit and concurrency.
greeting = Hello
#allow_net = api.example.com
#allow_read = /etc/agent/${name}
#timeout_seconds = 300
#workers = 10
`;
}
