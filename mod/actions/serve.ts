/**
 * Runs action processors as a service until SIGINT/SIGTERM (exit 0) or a fatal error
 * (TLS trust, login: thrown). Shared by `agent calendar`, `agent actions` and later `agent run`.
 */
import type { Config } from "../config/config.ts";
import { ConfigError } from "../config/config.ts";
import { log } from "../log/log.ts";
import { Store } from "../store/store.ts";
import type { BuiltProcessor } from "./factory.ts";
import { startActionService } from "./service.ts";

export async function serveProcessors(
  config: Config,
  build: (config: Config) => Promise<BuiltProcessor[]>,
  options: { signal: AbortSignal; recordDir?: string | undefined },
): Promise<number> {
  if (!config.resilient) {
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
    const service = await startActionService(config.resilient, built.map((b) => b.processor), {
      store,
      signal: options.signal,
      recordDir: options.recordDir,
      healthIntervalMs: config.agent.healthIntervalMinutes * 60_000,
    });
    await service.done;
    log("actions").info("Stopped cleanly: {stats}", { stats: service.listener.stats() });
    return 0;
  } finally {
    for (const b of built) b.close();
    store?.close();
  }
}
