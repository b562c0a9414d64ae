/** The work behind `agent enrich` (see command.ts): wiring, then runEnrichment. */
import type { Deps } from "../cli/command.ts";
import { type Config, ConfigError } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { SecureChangeClient } from "../securechange/client.ts";
import type { TriggerInfo } from "../securechange/trigger.ts";
import type { RawTicket } from "../securechange/types.ts";
import { Store } from "../store/store.ts";
import { runEnrichment } from "./enrich.ts";

export async function runEnrichFromCommand(
  config: Config,
  trigger: { info: TriggerInfo; event: string; ticketFile?: string | undefined },
  deps: Deps,
): Promise<number> {
  if (trigger.ticketFile) {
    const ticket = await readTicketFile(trigger.ticketFile);
    const result = await runEnrichment(
      { info: trigger.info, event: trigger.event, ticket },
      config,
      {
        api: undefined,
        store: undefined,
        env: deps.env,
        signal: deps.signal,
      },
    );
    if (result.kind === "printed") deps.stdout(result.comment + "\n");
    else deps.stdout(`(no integration had anything to add to ticket ${ticket.id})\n`);
    return 0;
  }
  const sc = config.securechange;
  if (!sc) {
    throw new ConfigError(
      { file: config.file, section: "securechange" },
      "missing; enrich needs the SecureChange API",
    );
  }
  const caCerts = await caCertsFor(sc.tls);
  const api = new SecureChangeClient({
    url: sc.url,
    username: sc.username,
    password: sc.password,
    caCerts,
    proxy: sc.proxy,
    timeoutMs: sc.timeoutSeconds * 1000,
  });
  const store = await Store.open(config.agent.store);
  try {
    const result = await runEnrichment({ info: trigger.info, event: trigger.event }, config, {
      api,
      store,
      env: deps.env,
      signal: deps.signal,
    });
    if (result.kind === "skipped") deps.stdout(`agent enrich: ${result.reason}\n`);
    else if (result.kind === "nothing-to-post") {
      deps.stdout("agent enrich: no integration had anything to add\n");
    } else {deps.stdout(
        `agent enrich: added the enrichment comment to ticket ${trigger.info.ticketId}\n`,
      );}
    return 0;
  } finally {
    store.close();
  }
}

async function readTicketFile(path: string): Promise<RawTicket> {
  let json: { ticket?: RawTicket };
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(`Cannot read ticket file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!json.ticket || typeof json.ticket !== "object") {
    throw new Error(`${path} has no "ticket" object (expected what GET tickets/{id} returns)`);
  }
  return json.ticket;
}
