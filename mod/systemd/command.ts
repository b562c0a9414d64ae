/**
 * `agent service install|uninstall`: a systemd unit for `agent run`, with the agent's narrow
 * Deno permissions, a dedicated user and systemd's hardening. The agent runs without
 * --allow-run, so it writes the unit and prints the systemctl commands instead of running
 * them.
 */
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import {
  type Command,
  COMMON_HELP,
  COMMON_OPTIONS,
  parseOrShowHelp,
  UsageError,
} from "../cli/command.ts";
import { loadCommandConfig } from "../config/setup.ts";
import { type Config, ConfigError, loadConfig } from "../config/config.ts";
import { agentRunFlags } from "../cli/permissions.ts";

const HELP =
  `Usage: agent service install [--config FILE] [--user NAME] [--allow-root] [--unit-dir DIR]
                             [--name NAME]
       agent service uninstall [--unit-dir DIR] [--name NAME]

install writes a systemd unit that runs "agent run" with this config: restarted always,
as a dedicated user (default: agent), with the agent's own narrow Deno permissions and
systemd hardening (ProtectSystem=strict, NoNewPrivileges, ...), writable only where the
config says the agent writes (store, logs, outbox). Then run the printed systemctl
commands. uninstall removes the unit.

Options:
      --user NAME       The user the service runs as (default: agent)
      --allow-root      Accept --user root (refused otherwise: the agent runs user code)
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
        "allow-root": { type: "boolean" },
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
      const removed = await Deno.remove(unitPath).then(() => true, (error) => {
        if (error instanceof Deno.errors.NotFound) return false;
        throw error;
      });
      deps.stdout(
        removed
          ? `removed ${unitPath}\nThen: systemctl disable --now ${name} && systemctl daemon-reload\n`
          : `nothing to remove: there is no ${unitPath}\n`,
      );
      return 0;
    }
    if (positionals[0] !== "install") {
      throw new UsageError(`unknown subcommand "${positionals[0]}"`, "service");
    }
    const user = values.user ?? "agent";
    if (!/^[a-z_][a-z0-9_-]*$/.test(user)) {
      throw new UsageError(`"${user}" is not a user name`, "service");
    }
    if (user === "root" && !values["allow-root"]) {
      throw new UsageError(
        "the service would run as root: give it a user of its own (--user agent), or say " +
          "--allow-root if you must",
        "service",
      );
    }
    const found = await loadCommandConfig(values, deps);
    // The paths as the service will see them: systemd gives it /var/lib/NAME and /var/log/NAME.
    const dirs = { state: `/var/lib/${name}`, logs: `/var/log/${name}` };
    const config = await loadConfig(found.file, {
      env: (key) =>
        key === "STATE_DIRECTORY"
          ? dirs.state
          : key === "LOGS_DIRECTORY"
          ? dirs.logs
          : deps.env(key),
    });
    const writable = writablePaths(config);
    refuseConfigFolder(config, writable, `/etc/${name}`);
    const extra = writable.filter((w) =>
      !isWithin(w.path, dirs.state) && !isWithin(w.path, dirs.logs)
    );
    await Deno.writeTextFile(
      unitPath,
      systemdUnit(config, { user, name, extra: extra.map((w) => w.path) }),
    );
    const configFile = resolve(config.file);
    deps.stdout(
      `wrote ${unitPath}\nThen, as root:\n` +
        `  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin ${user}  # once\n` +
        `  chown root:${user} ${configFile} && chmod 640 ${configFile}  # read-only to the agent\n` +
        `  install -d -m 755 /etc/${name} && install -m 600 /dev/null /etc/${name}/environment  # secrets, root only\n` +
        (extra.length ? `  chown ${user} ${extra.map((w) => w.path).join(" ")}\n` : "") +
        `  systemctl daemon-reload && systemctl enable --now ${name}\n` +
        `  systemd-analyze security ${name}  # the exposure score of the unit\n` +
        `State goes to ${dirs.state}, logs to ${dirs.logs} (systemd makes both).\n`,
    );
    return 0;
  },
};

/** A folder the agent writes to, and the key that puts it there. */
interface Writable {
  path: string;
  key: string;
}

/** The folders the agent writes to, by the config (as the service sees it). */
function writablePaths(config: Config): Writable[] {
  const paths: Writable[] = [];
  if (!/^https?:|^:memory:$/.test(config.agent.store)) {
    paths.push({ path: dirname(resolve(config.agent.store)), key: "[agent] store" });
  }
  if (config.resilient?.logdir) {
    paths.push({ path: resolve(config.resilient.logdir), key: "[resilient] logdir" });
  }
  if (config.taskcalendar && !config.taskcalendar.smtpserver) {
    paths.push({ path: resolve(config.taskcalendar.outboxDir), key: "[taskcalendar] outbox_dir" });
  }
  // The mail bridge's embedded tracker writes issues (and acknowledgements) there.
  if (config.mailBridge && !config.jira) {
    paths.push({ path: resolve(config.mailBridge.issuesDir), key: "[mail_bridge] issues_dir" });
  }
  return paths.filter((p, i) => paths.findIndex((q) => q.path === p.path) === i);
}

/**
 * The agent may not write where its config or its secrets are: it could rewrite what it is
 * told to do. A writable folder that holds (or is) the config's folder is refused.
 */
function refuseConfigFolder(config: Config, writable: Writable[], secretsDir: string): void {
  const configDir = dirname(resolve(config.file));
  for (const w of writable) {
    for (const guarded of [configDir, secretsDir]) {
      if (isWithin(guarded, w.path)) {
        throw new ConfigError(
          { file: config.file, section: w.key.slice(1, w.key.indexOf("]")) },
          `${w.key} makes the agent write to ${w.path}, which holds ${
            guarded === configDir ? "its config" : "its secrets"
          } (${guarded}): the agent could rewrite them. Leave it unset (the service keeps its ` +
            `state in /var/lib and /var/log) or point it elsewhere`,
        );
      }
    }
  }
}

/** Whether `path` is `dir` or inside it. */
function isWithin(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** The unit text. */
export function systemdUnit(
  config: Config,
  options: { user: string; name: string; extra?: string[] },
): string {
  const exec = Deno.execPath();
  const compiled = !/^deno(\.exe)?$/.test(basename(exec));
  const main = new URL(Deno.mainModule);
  const command = compiled
    ? [exec]
    : [exec, "run", ...agentRunFlags(exec), main.protocol === "file:" ? main.pathname : main.href];
  const quote = (arg: string) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/["\\$]/g, "\\$&")}"`;
  const configFile = resolve(config.file);
  const name = options.name;
  // Paths the config names outside systemd's own folders; "-": not an error if missing yet.
  const readWrite = (options.extra ?? []).map((p) => `-${quote(p)}`).join(" ");
  return `# Written by "agent service install" for ${configFile}.
# Check it with: systemd-analyze security ${name}
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
# State, logs and Deno's cache in folders systemd makes for this user; never beside the config.
StateDirectory=${name}
LogsDirectory=${name}
CacheDirectory=${name}
Environment=NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 DENO_DIR=%C/${name}/deno
# Secrets referenced as $NAME in the config: put them in this root-only file.
EnvironmentFile=-/etc/${name}/environment
Restart=always
RestartSec=5
TimeoutStopSec=30
KillSignal=SIGTERM
${
    readWrite
      ? `ReadWritePaths=${readWrite}
`
      : ""
  }
# Hardening: read-only system, no home, no other processes, the system calls of a service.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=true
PrivateDevices=true
PrivateMounts=true
NoNewPrivileges=true
CapabilityBoundingSet=
AmbientCapabilities=
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
RemoveIPC=yes
LockPersonality=true
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @obsolete @debug @mount @reboot @swap @module @raw-io @cpu-emulation @clock
SystemCallErrorNumber=EPERM
UMask=0077
# Not MemoryDenyWriteExecute: V8's JIT needs writable+executable memory.

[Install]
WantedBy=multi-user.target
`;
}
