/**
 * Runs action processors as a service until SIGINT/SIGTERM (exit 0), for `agent calendar`
 * and `agent actions`. Like `agent run`, it keeps trying to reach the platform while it
 * cannot (at start-up, or after the link was lost for good), with the same backoff, logging
 * why; a refusal retrying cannot fix (an untrusted certificate, a login refused) ends it
 * with the reason (exit 1).
 */
import { platformLine } from "../ops/startup.ts";
import type { Config } from "../config/config.ts";
import { ConfigError } from "../config/config.ts";
import { log } from "../log/log.ts";
import { SERVICE_BACKOFF_MS, supervise } from "../async/supervise.ts";
import { classify, describeError } from "../errors/classify.ts";
import { Store } from "../store/store.ts";
import type { BuiltProcessor } from "./factory.ts";
import { type ActionService, startActionService } from "./core.ts";

const logger = log("actions");

export async function serveProcessors(
  config: Config,
  build: (config: Config) => Promise<BuiltProcessor[]>,
  options: { signal: AbortSignal; recordDir?: string | undefined },
): Promise<number> {
  const resilient = config.resilient;
  if (!resilient) {
    throw new ConfigError(
      { file: config.file, section: "resilient" },
      "missing; listening for actions needs the platform's [resilient] section",
    );
  }
  if (options.recordDir) await Deno.mkdir(options.recordDir, { recursive: true });
  const built = await build(config);
  let store: Store | undefined;
  try {
    store = await Store.open(config.agent.store);
    const opened = store;
    logger.info(platformLine(resilient));
    await supervise({
      signal: options.signal,
      delaysMs: SERVICE_BACKOFF_MS,
      async run(started) {
        let service: ActionService | undefined;
        try {
          service = await startActionService(resilient, built.map((b) => b.processor), {
            store: opened,
            signal: options.signal,
            recordDir: options.recordDir,
            healthIntervalMs: config.agent.healthIntervalMinutes * 60_000,
          });
          started();
          await service.done;
          logger.info("Stopped cleanly: {stats}", { stats: service.listener.stats() });
        } catch (error) {
          await service?.stop(1_000).catch(() => {});
          // Refused (a certificate not trusted, a login refused) is the config's to fix:
          // say so and end; unreachable is waited out.
          const verdict = classify(error);
          if (!verdict.transient || verdict.credentials) throw new Fatal(error);
          throw error;
        }
      },
      stop: (error) => error instanceof Fatal,
      onFailure(error, waitMs) {
        logger.error("Actions service cannot run: {error}; trying again in {seconds} s", {
          error: describeError(error),
          seconds: waitMs / 1000,
        });
      },
    });
    return 0;
  } catch (error) {
    throw error instanceof Fatal ? error.cause : error;
  } finally {
    for (const b of built) b.close();
    store?.close();
  }
}

/** A failure retrying cannot fix: ends the service. */
class Fatal extends Error {
  constructor(cause: unknown) {
    super(describeError(cause), { cause });
  }
}
