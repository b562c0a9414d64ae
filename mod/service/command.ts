/**
 * `agent service install|uninstall`: a systemd unit for `agent run`, with the agent's narrow
 * Deno permissions, a dedicated user and systemd's hardening. The agent runs without
 * --allow-run, so it writes the unit and prints the systemctl commands instead of running
 * them.
 */
import { basename, dirname, resolve } from "node:path";
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig } from "../cli/setup.ts";
import type { Config } from "../config/config.ts";
import { agentRunFlags } from "../cli/permissions.ts";

const HELP =
  `Usage: agent service install [--config FILE] [--user NAME] [--unit-dir DIR] [--name NAME]
       agent service uninstall [--unit-dir DIR] [--name NAME]

install writes a systemd unit that runs "agent run" with this config: restarted always,
as a dedicated user (default: agent), with the agent's own narrow Deno permissions and
systemd hardening (ProtectSystem=strict, NoNewPrivileges, ...), writable only where the
config says the agent writes (store, logs, outbox). Then run the printed systemctl
commands. uninstall removes the unit.

Options:
      --user NAME       The user the service runs as (default: agent)
      --unit-dir DIR    Where the unit goes (default: /etc/systemd/system)
      --name NAME       The unit's name (default: agent)
${COMMON_HELP}`;

export const serviceCommand: Command = {
  name: "service",
  summary: "Install or remove a hardened systemd unit for agent run",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp(
      { name: "service", help: HELP },
      args,
      {
        ...COMMON_OPTIONS,
        user: { type: "string" },
        "unit-dir": { type: "string" },
        name: { type: "string" },
      },
      deps,
      { allowPositionals: true },
    );
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const name = values.name ?? "agent";
    if (!/^[A-Za-z0-9_.@-]+$/.test(name)) {
      throw new UsageError(`"${name}" is not a unit name`, "service");
    }
    const unitPath = resolve(values["unit-dir"] ?? "/etc/systemd/system", `${name}.service`);
    if (positionals.length !== 1) throw new UsageError("say install or uninstall", "service");
    if (positionals[0] === "uninstall") {
      await Deno.remove(unitPath).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      deps.stdout(
        `removed ${unitPath}\nThen: systemctl disable --now ${name} && ` +
          `systemctl daemon-reload\n`,
      );
      return 0;
    }
    if (positionals[0] !== "install") {
      throw new UsageError(`unknown subcommand "${positionals[0]}"`, "service");
    }
    const config = await loadCommandConfig(values, deps);
    const user = values.user ?? "agent";
    if (!/^[a-z_][a-z0-9_-]*$/.test(user)) {
      throw new UsageError(`"${user}" is not a user name`, "service");
    }
    await Deno.writeTextFile(unitPath, systemdUnit(config, { user, name }));
    deps.stdout(
      `wrote ${unitPath}\nThen, as root:\n` +
        `  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin ${user}  # once\n` +
        `  chown ${user} ${writablePaths(config).join(" ")}\n` +
        `  chmod 640 ${config.file} && chgrp ${user} ${config.file}\n` +
        `  systemctl daemon-reload && systemctl enable --now ${name}\n`,
    );
    return 0;
  },
};

/** The folders the agent writes to, by the config. */
function writablePaths(config: Config): string[] {
  const paths = new Set<string>([dirname(resolve(config.agent.store))]);
  if (config.resilient?.logdir) paths.add(resolve(config.resilient.logdir));
  if (config.taskcalendar && !config.taskcalendar.smtpserver) {
    paths.add(resolve(config.taskcalendar.outboxDir));
  }
  // The mail bridge's embedded tracker writes issues (and acknowledgements) there.
  if (config.mailBridge && !config.jira) paths.add(resolve(config.mailBridge.issuesDir));
  return [...paths];
}

/** The unit text. */
export function systemdUnit(config: Config, options: { user: string; name: string }): string {
  const exec = Deno.execPath();
  const compiled = !/^deno(\.exe)?$/.test(basename(exec));
  const main = new URL(Deno.mainModule);
  const command = compiled
    ? [exec]
    : [exec, "run", ...agentRunFlags(exec), main.protocol === "file:" ? main.pathname : main.href];
  const quote = (arg: string) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/["\\$]/g, "\\$&")}"`;
  const configFile = resolve(config.file);
  return `# Written by "agent service install" for ${configFile}.
[Unit]
Description=agent: SOAR action processors, calendar invites and more (agent run)
Documentation=file://${dirname(configFile)}
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User=${options.user}
Group=${options.user}
ExecStart=${[...command, "run", "--config", configFile].map(quote).join(" ")}
Environment=NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
# Secrets referenced as $NAME in the config: put them in this root-only file.
EnvironmentFile=-/etc/${options.name}/environment
Restart=always
RestartSec=5
TimeoutStopSec=30
KillSignal=SIGTERM

# Hardening: read-only system, writable only where the agent keeps its state.
ReadWritePaths=${writablePaths(config).map(quote).join(" ")}
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=true
PrivateDevices=true
NoNewPrivileges=true
CapabilityBoundingSet=
AmbientCapabilities=
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
UMask=0077
# Not MemoryDenyWriteExecute: V8's JIT needs writable+executable memory.

[Install]
WantedBy=multi-user.target
`;
}
