/**
 * A test certificate authority made with openssl, once per test process: a CA that signs
 * leaf certificates for 127.0.0.1/localhost, a leaf for the wrong host name, a leaf from
 * an untrusted CA, an expired leaf, and PKCS12 keystores of them for ActiveMQ.
 */
import { join } from "node:path";

/** The leaf certificates a test server can present. */
export type LeafName = "server" | "wrongHost" | "untrusted" | "expired";

/** Paths and PEM texts of the test PKI. */
export interface TestPki {
  dir: string;
  caCertFile: string;
  caCert: string;
  /** Leaf for 127.0.0.1 and localhost, signed by the CA. */
  server: { certFile: string; keyFile: string; cert: string; key: string };
  /** Leaf for wrong.example (not 127.0.0.1), signed by the CA. */
  wrongHost: { certFile: string; keyFile: string; cert: string; key: string };
  /** Leaf for 127.0.0.1 signed by a CA nobody trusts. */
  untrusted: { certFile: string; keyFile: string; cert: string; key: string };
  /** Leaf for 127.0.0.1 and localhost, signed by the CA, that expired yesterday. */
  expired: { certFile: string; keyFile: string; cert: string; key: string };
  /** PKCS12 keystores (password "changeit") for ActiveMQ. */
  keystores: Record<LeafName, string>;
  keystorePassword: string;
}

let pki: Promise<TestPki> | undefined;

/** The test PKI, made on first use and removed when the process exits. */
export function testPki(): Promise<TestPki> {
  pki ??= makePki();
  return pki;
}

/** Runs `openssl` with a command line (split on spaces; no argument here contains one). */
async function openssl(dir: string, commandLine: string): Promise<void> {
  const args = commandLine.trim().split(/\s+/);
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A random serial: leaves are signed at once, so a shared serial file would race. */
function serial(): string {
  return [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    dir,
    `req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${name}.key
     -out ${name}.pem -days 30 -subj /CN=${name} -addext basicConstraints=critical,CA:TRUE
     -addext keyUsage=critical,keyCertSign,cRLSign`,
  );
}

async function makeLeaf(
  dir: string,
  name: string,
  ca: string,
  san: string,
  days = 30,
): Promise<void> {
  await openssl(
    dir,
    `req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${name}.key -out ${name}.csr
     -subj /CN=${name}`,
  );
  await Deno.writeTextFile(
    join(dir, `${name}.ext`),
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${san}`,
    ].join("\n"),
  );
  await openssl(
    dir,
    `x509 -req -in ${name}.csr -CA ${ca}.pem -CAkey ${ca}.key -set_serial 0x${serial()} -out ${name}.pem
     -days ${days} -extfile ${name}.ext`,
  );
  await openssl(
    dir,
    `pkcs12 -export -in ${name}.pem -inkey ${name}.key -certfile ${ca}.pem -name broker
     -out ${name}.p12 -passout pass:changeit`,
  );
}

async function makePki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "agent-pki-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  await Promise.all([makeCa(dir, "test-ca"), makeCa(dir, "rogue-ca")]);
  await Promise.all([
    makeLeaf(dir, "server", "test-ca", "IP:127.0.0.1,DNS:localhost"),
    makeLeaf(dir, "wrong-host", "test-ca", "DNS:wrong.example"),
    makeLeaf(dir, "untrusted", "rogue-ca", "IP:127.0.0.1,DNS:localhost"),
    // -days -1: not after = a day before not before, so expired from the start.
    makeLeaf(dir, "expired", "test-ca", "IP:127.0.0.1,DNS:localhost", -1),
  ]);
  const read = (f: string) => Deno.readTextFile(join(dir, f));
  const leaf = async (name: string) => ({
    certFile: join(dir, `${name}.pem`),
    keyFile: join(dir, `${name}.key`),
    cert: await read(`${name}.pem`),
    key: await read(`${name}.key`),
  });
  return {
    dir,
    caCertFile: join(dir, "test-ca.pem"),
    caCert: await read("test-ca.pem"),
    server: await leaf("server"),
    wrongHost: await leaf("wrong-host"),
    untrusted: await leaf("untrusted"),
    expired: await leaf("expired"),
    keystores: {
      server: join(dir, "server.p12"),
      wrongHost: join(dir, "wrong-host.p12"),
      untrusted: join(dir, "untrusted.p12"),
      expired: join(dir, "expired.p12"),
    },
    keystorePassword: "changeit",
  };
}
