/**
 * A real ActiveMQ Classic (Debian's package) for tests: its own base folder, free ports on
 * 127.0.0.1, STOMP and STOMP+SSL connectors (keystore from the test CA), a user/password,
 * KahaDB persistence (messages survive a restart). Started with `startBroker()`, stopped with `broker.stop()`.
 */
import { join } from "node:path";
import { type LeafName, testPki } from "./ca.ts";

const ACTIVEMQ_HOME = "/usr/share/activemq";

/** A running broker. */
export interface Broker {
  stompPort: number;
  sslPort: number;
  user: string;
  password: string;
  baseDir: string;
  /** SIGTERM and wait (messages are kept for a restart). */
  stop(): Promise<void>;
  /** Starts again on the same ports and data. */
  restart(): Promise<void>;
  /** Stops and deletes the data. */
  dispose(): Promise<void>;
  running: boolean;
  /** The broker's process id while it runs (benchmarks read its CPU time). */
  readonly pid: number | undefined;
}

export interface BrokerOptions {
  /** Which leaf the SSL connector presents. */
  keystore?: LeafName;
  /** The login the broker accepts (the platform's API key id and secret). */
  user?: string;
  password?: string;
}

const live = new Set<{ kill(): void }>();
globalThis.addEventListener("unload", () => {
  for (const broker of live) broker.kill();
});

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const pki = await testPki();
  const baseDir = await Deno.makeTempDir({ prefix: "agent-activemq-" });
  const conf = join(baseDir, "conf");
  const data = join(baseDir, "data");
  await Deno.mkdir(conf, { recursive: true });
  await Deno.mkdir(data, { recursive: true });
  const stompPort = freePort();
  const sslPort = freePort();
  const user = options.user ?? "agent";
  const password = options.password ?? "broker-pass-" + crypto.randomUUID().slice(0, 8);
  const keystore = pki.keystores[options.keystore ?? "server"];
  await Deno.writeTextFile(
    join(conf, "activemq.xml"),
    brokerXml({ stompPort, sslPort, user, password, keystore, data }),
  );
  await Deno.writeTextFile(
    join(conf, "log4j.properties"),
    log4jProperties(join(data, "activemq.log")),
  );

  let child: Deno.ChildProcess | undefined;
  const launch = async () => {
    child = new Deno.Command("java", {
      args: [
        "-Xms64m",
        "-Xmx384m",
        `-Dactivemq.home=${ACTIVEMQ_HOME}`,
        `-Dactivemq.base=${baseDir}`,
        `-Dactivemq.conf=${conf}`,
        `-Dactivemq.data=${data}`,
        `-Dactivemq.classpath=${conf}`,
        `-Djava.io.tmpdir=${data}`,
        `-Dlog4j.configuration=file:${join(conf, "log4j.properties")}`,
        "-jar",
        `${ACTIVEMQ_HOME}/bin/activemq.jar`,
        "start",
        `xbean:file:${join(conf, "activemq.xml")}`,
      ],
      stdout: Deno.env.get("ACTIVEMQ_DEBUG") ? "inherit" : "null",
      stderr: Deno.env.get("ACTIVEMQ_DEBUG") ? "inherit" : "null",
      stdin: "null",
    }).spawn();
    const proc = child;
    const entry = {
      kill: () => {
        try {
          proc.kill("SIGKILL");
        } catch { /* gone */ }
      },
    };
    live.add(entry);
    proc.status.then(() => live.delete(entry));
    await waitForPort(sslPort, child);
    await waitForPort(stompPort, child);
    broker.running = true;
  };
  const stop = async () => {
    if (!child) return;
    const proc = child;
    child = undefined;
    broker.running = false;
    try {
      proc.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        proc.kill("SIGKILL");
      } catch { /* gone */ }
    }, 15_000);
    await proc.status;
    clearTimeout(timer);
  };
  const broker: Broker = {
    stompPort,
    sslPort,
    user,
    password,
    baseDir,
    running: false,
    get pid() {
      return child?.pid;
    },
    stop,
    restart: launch,
    async dispose() {
      await stop();
      await Deno.remove(baseDir, { recursive: true }).catch(() => {});
    },
  };
  await launch();
  return broker;
}

async function waitForPort(
  port: number,
  child: Deno.ChildProcess,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.status.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error("ActiveMQ exited during start-up");
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`ActiveMQ did not open port ${port} within ${timeoutMs} ms`);
}

function brokerXml(
  o: {
    stompPort: number;
    sslPort: number;
    user: string;
    password: string;
    keystore: string;
    data: string;
  },
) {
  return `<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="agent-test" useJmx="false"
          persistent="true" dataDirectory="${o.data}" schedulerSupport="false" advisorySupport="false">
    <destinationPolicy>
      <policyMap><policyEntries>
        <policyEntry queue=">" prioritizedMessages="false"/>
      </policyEntries></policyMap>
    </destinationPolicy>
    <plugins>
      <simpleAuthenticationPlugin>
        <users>
          <authenticationUser username="${o.user}" password="${o.password}" groups="users,admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <persistenceAdapter><kahaDB directory="${o.data}/kahadb" journalMaxFileLength="8mb"/></persistenceAdapter>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="128 mb"/></memoryUsage>
      <storeUsage><storeUsage limit="1 gb"/></storeUsage>
      <tempUsage><tempUsage limit="256 mb"/></tempUsage>
    </systemUsage></systemUsage>
    <sslContext>
      <sslContext keyStore="file:${o.keystore}" keyStorePassword="changeit" keyStoreType="PKCS12"/>
    </sslContext>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:${o.stompPort}?transport.closeAsync=false"/>
      <transportConnector name="stomp+ssl" uri="stomp+ssl://127.0.0.1:${o.sslPort}?transport.closeAsync=false"/>
    </transportConnectors>
  </broker>
</beans>
`;
}

/** This ActiveMQ build logs through log4j 1.x. */
function log4jProperties(file: string): string {
  return `log4j.rootLogger=WARN, logfile
log4j.appender.logfile=org.apache.log4j.FileAppender
log4j.appender.logfile.file=${file}
log4j.appender.logfile.layout=org.apache.log4j.PatternLayout
log4j.appender.logfile.layout.ConversionPattern=%d | %-5p | %m | %c%n
`;
}
