import { Buffer } from "node:buffer";
/** The work behind `agent replay` (see replay_command.ts). */
import { actionQueue } from "./message.ts";
import type { Config } from "../config/config.ts";
import { ResilientMock } from "../resilient/mock.ts";
import { RestClient } from "../resilient/rest.ts";
import type { ResilientApi } from "../resilient/types.ts";
import { Store } from "../store/store.ts";
import type { ProcessorFactory } from "./factory.ts";
import { DEAD_LETTER_PREFIX, type DeadLetter, deadLetterBody } from "./listener.ts";
import { parseDelivery } from "./message.ts";
import { errorReply, runProcessor } from "./run_processor.ts";

interface RecordedMessage {
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Reads a recorded message file: {"headers", "body"[, "bodyBase64"]} or a bare ActionDataDTO. */
export async function readRecorded(path: string): Promise<RecordedMessage> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(`Cannot read message file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const isWrapper = json !== null && typeof json === "object" && "headers" in json &&
    ("body" in json || "bodyBase64" in json);
  if (!isWrapper) return { headers: {}, body: new TextEncoder().encode(JSON.stringify(json)) };
  const headers = Object.fromEntries(
    Object.entries(json.headers as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
  );
  const body = typeof json.bodyBase64 === "string"
    ? Uint8Array.from(atob(json.bodyBase64), (c) => c.charCodeAt(0))
    : new TextEncoder().encode(String(json.body ?? ""));
  return { headers, body };
}

export async function replayFiles(
  config: Config,
  factory: ProcessorFactory,
  files: string[],
  options: {
    restFixtures?: string | undefined;
    stdout: (text: string) => void;
    stderr: (text: string) => void;
    signal: AbortSignal;
  },
): Promise<number> {
  const built = await factory(config);
  const store = await Store.open(config.agent.store);
  try {
    const rest = await replayRest(config, options);
    const counts = { info: 0, error: 0 };
    for (const file of files) {
      const recorded = await readRecorded(file);
      // Each replay is a new run: a fresh message id keeps earlier runs' records out of it.
      const headers: Record<string, string> = {
        ...recorded.headers,
        "message-id": `replay-${crypto.randomUUID()}`,
      };
      headers["destination"] ??= `/queue/${actionQueue(rest.orgId, built.processor.queue)}`;
      const parsed = parseDelivery(headers, recorded.body);
      const correlationId = recorded.headers["correlation-id"] ?? null;
      const reply = parsed.ok
        ? await runProcessor(built.processor, parsed.message, {
          rest,
          store,
          signal: options.signal,
        }).then(async (outcome) => {
          if (outcome.writes?.length) await store.commit({ set: outcome.writes });
          return outcome.reply;
        })
        : errorReply(`Cannot process this action: ${parsed.problem}`);
      counts[reply.message_type === 1 ? "error" : "info"]++;
      options.stdout(JSON.stringify({ correlation_id: correlationId, file, reply }) + "\n");
    }
    // An error reply is the processor's answer, a result like any other: exit 0.
    options.stderr(
      `replayed ${files.length} message(s) through ${built.processor.name}: ${counts.info} ` +
        `info, ${counts.error} error repl${counts.error === 1 ? "y" : "ies"}\n`,
    );
    return 0;
  } finally {
    built.close();
    store.close();
  }
}

async function replayRest(
  config: Config,
  options: { restFixtures?: string | undefined; signal: AbortSignal },
): Promise<ResilientApi> {
  if (options.restFixtures) {
    const text = await Deno.readTextFile(options.restFixtures).catch((error) => {
      throw new Error(`Cannot read --rest-fixtures ${options.restFixtures}: ${error.message}`, {
        cause: error,
      });
    });
    return new ResilientMock({ fixtures: JSON.parse(text) });
  }
  if (config.resilient) {
    return await RestClient.fromConfig(config.resilient, { signal: options.signal });
  }
  return new ResilientMock();
}

export async function listDeadLetters(
  config: Config,
  out: { stdout: (text: string) => void; stderr: (text: string) => void },
): Promise<number> {
  const { stdout } = out;
  const store = await Store.open(config.agent.store);
  let n = 0;
  try {
    for await (const { key, value } of store.list<DeadLetter>(DEAD_LETTER_PREFIX)) {
      n++;
      stdout(
        JSON.stringify({
          message_id: key.at(-1),
          queue: value.queue,
          at: new Date(value.at).toISOString(),
          problem: value.problem,
          correlation_id: value.headers["correlation-id"] ?? null,
          headers: value.headers,
          body_base64: Buffer.from(await deadLetterBody(store, String(key.at(-1)), value))
            .toString("base64"),
          ...(value.truncated ? { body_size: value.bodySize, body_truncated: true } : {}),
        }) + "\n",
      );
    }
    out.stderr(`${n} dead letter(s) in ${config.agent.store}\n`);
    return 0;
  } finally {
    store.close();
  }
}
