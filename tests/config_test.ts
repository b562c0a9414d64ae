import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import { parseIni } from "../mod/config/ini.ts";
import { ConfigError, loadConfig, parseConfig } from "../mod/config/config.ts";
import { CONFIG_TEMPLATE } from "../mod/config/template.ts";
import { substituteEnv } from "../mod/config/reader.ts";

const fixture = new URL("./fixtures/app.config", import.meta.url).pathname;
const env = (vars: Record<string, string>) => (name: string) => vars[name];
const fixtureEnv = env({
  SOAR_HOST: "soar.dundermifflin.com",
  SOAR_API_SECRET: "s3cr3t-key",
  SN_PART: "mid",
});

Deno.test("config reads a real resilient-circuits app.config with configparser semantics", async () => {
  const config = await loadConfig(fixture, { env: fixtureEnv });
  const sn = config.other["fn_service_now"]!;
  // A # inside a value is part of the value, not a comment.
  assertEquals(sn["sn_host"], "https://dunder.service-now.com/#incidents");
  // Indented lines continue a value; a blank line inside it is kept, a ; comment is not.
  assertEquals(sn["sn_query"], "active=true^ORDERBYDESCsys_created_on\n^priority=1\n\n^state!=7");
  // Keys are case-insensitive (lower-cased) and ':' works as a delimiter.
  assertEquals(sn["mixed case key"], "colon separated");
  // ${VAR} is substituted inside a longer value; $VAR as the whole value.
  assertEquals(config.resilient?.host, "soar.dundermifflin.com");
  assertEquals(config.resilient?.auth, { kind: "api_key", id: "4f6a-key", secret: "s3cr3t-key" });
  assertEquals(config.resilient?.stompHost, "soar.dundermifflin.com");
  assertEquals(config.resilient?.tls, { kind: "insecure" });
  assertEquals(config.resilient?.numWorkers, 25);
  assertEquals(config.taskcalendar?.useStartTls, true);
  assertEquals(config.taskcalendar?.useSsl, false);
  assertEquals(config.taskcalendar?.smtpport, 587);
});

Deno.test("ini parser matches configparser on delimiters, DEFAULT and duplicates", async (t) => {
  await t.step("the first = or : is the delimiter", () => {
    const doc = parseIni("[s]\nurl = https://a:b@h/x=y\na:b = c\n");
    assertEquals(doc.sections.get("s")?.get("url")?.value, "https://a:b@h/x=y");
    assertEquals(doc.sections.get("s")?.get("a")?.value, "b = c");
  });
  await t.step("[DEFAULT] is inherited", () => {
    const doc = parseIni("[DEFAULT]\nport = 1\n[s]\nhost = h\n[t]\nport = 2\n");
    assertEquals(doc.sections.get("s")?.get("port")?.value, "1");
    assertEquals(doc.sections.get("t")?.get("port")?.value, "2");
    assert(!doc.sections.has("DEFAULT"));
  });
  await t.step("inline ; and # are kept", () => {
    const doc = parseIni("[s]\nk = a ; b # c\n");
    assertEquals(doc.sections.get("s")?.get("k")?.value, "a ; b # c");
  });
  await t.step("duplicates and keys before a section are errors with a line", () => {
    assertThrows(
      () => parseIni("[s]\nk=1\nk=2\n", "f.ini"),
      Error,
      'f.ini:3: key "k" appears twice',
    );
    assertThrows(
      () => parseIni("[s]\n[s]\n", "f.ini"),
      Error,
      "f.ini:2: section [s] appears twice",
    );
    assertThrows(() => parseIni("k = 1\n", "f.ini"), Error, "f.ini:1:");
  });
  await t.step("CRLF files and a BOM", () => {
    const doc = parseIni("\uFEFF[s]\r\nk = v\r\n  more\r\n");
    assertEquals(doc.sections.get("s")?.get("k")?.value, "v\nmore");
  });
});

Deno.test("config errors name file, line, section and key", async (t) => {
  const base = "[resilient]\nhost = h\norg = o\napi_key_id = i\napi_key_secret = s\n";
  const cases: [string, string, RegExp][] = [
    ["bad port", base + "port = 99999\n", /^c\.ini:6 resilient\.port: 99999 is out of range/],
    [
      "not a number",
      base + "stomp_port = ssl\n",
      /^c\.ini:6 resilient\.stomp_port: "ssl" is not a whole number/,
    ],
    [
      "missing key",
      "[resilient]\nhost = h\napi_key_id = i\napi_key_secret = s\n",
      /^c\.ini:1 resilient\.org: missing/,
    ],
    [
      "unset variable",
      base.replace("= s\n", "= ${NOPE}\n"),
      /^c\.ini:5 resilient\.api_key_secret: environment variable \$NOPE is not set/,
    ],
    [
      "keyring",
      base.replace("= s\n", "= ^soar\n"),
      /^c\.ini:5 resilient\.api_key_secret: .*keyring/,
    ],
    [
      "half credentials",
      "[resilient]\nhost = h\norg = o\napi_key_id = i\n",
      /^c\.ini:1 resilient\.api_key_secret: missing; api_key_id and api_key_secret go together/,
    ],
    [
      "bad boolean",
      "[taskcalendar]\nsmtpfrom = a@b\nuse_ssl = maybe\n",
      /^c\.ini:3 taskcalendar\.use_ssl: "maybe" is not a boolean/,
    ],
    [
      "bad time zone",
      "[taskcalendar]\nsmtpfrom = a@b\ntimezone = Mars/Base\n",
      /^c\.ini:3 taskcalendar\.timezone/,
    ],
  ];
  for (const [name, text, pattern] of cases) {
    await t.step(name, () => {
      const error = assertThrows(
        () => parseConfig(text, { file: "c.ini", env: env({}) }),
        ConfigError,
      );
      assertMatch(error.message, pattern);
    });
  }
});

Deno.test("use_ssl=False means no SSL (the old example turned SSL on)", () => {
  const config = parseConfig("[taskcalendar]\nsmtpfrom = a@b\nuse_ssl = False\n", {
    file: "c.ini",
    env: env({}),
  });
  assertEquals(config.taskcalendar?.useSsl, false);
  assertEquals(config.taskcalendar?.smtpport, 25);
});

Deno.test("unknown keys in the agent's sections are warnings with their line; [DEFAULT] keys are not", () => {
  const config = parseConfig(
    "[DEFAULT]\nshared = x\n[taskcalendar]\nsmtpfrom = a@b\nsmtpsever = typo\n[agent]\n",
    { file: "c.ini", env: env({}) },
  );
  assertEquals(config.warnings, ["c.ini:5 taskcalendar.smtpsever: unknown key, ignored"]);
});

Deno.test("every problem of a config is named at once, one per key", () => {
  let message = "";
  try {
    parseConfig(
      "[resilient]\nhost = h\norg = o\nport = 70000\napi_key_id = i\napi_key_secret = ${NOPE}\n" +
        "num_workers = many\n[taskcalendar]\nuse_ssl = maybe\n[jira]\nurl = https://j\n",
      { file: "c.ini", env: env({}) },
    );
  } catch (error) {
    assert(error instanceof ConfigError);
    message = error.message;
  }
  const lines = message.split("\n");
  assertEquals(lines[0], "c.ini: 6 problems:");
  for (
    const expected of [
      "c.ini:4 resilient.port: 70000 is out of range (1..65535)",
      "c.ini:6 resilient.api_key_secret: environment variable $NOPE is not set",
      'c.ini:7 resilient.num_workers: "many" is not a whole number',
      'c.ini:9 taskcalendar.use_ssl: "maybe" is not a boolean',
      "c.ini:8 taskcalendar.smtpfrom: missing",
    ]
  ) {
    assert(lines.some((l) => l.trim().startsWith(expected)), `${expected} in\n${message}`);
  }
  assert(lines.some((l) => /\[jira\]: no credentials/.test(l)), message);
});

Deno.test("config.example.ini is the template that `agent config init` writes, and it is valid", async () => {
  const example = await Deno.readTextFile(new URL("../config.example.ini", import.meta.url));
  assertEquals(example, CONFIG_TEMPLATE);
  const config = parseConfig(example, { file: "config.example.ini", env: env({}) });
  assertEquals(config.resilient?.org, "Example Org");
  assertEquals(config.taskcalendar?.queue, "taskcalendar");
});

Deno.test("environment substitution, the same in every section: $NAME (whole, before a space or a slash), ${NAME} anywhere, $$ for a dollar; ~ and $HOME in paths", () => {
  const vars: Record<string, string> = { A: "1", TOKEN: "t0k", HOME: "/home/soc" };
  const lookup = (name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`$${name} is not set`);
    return value;
  };
  assertEquals(substituteEnv("$A", lookup), "1");
  assertEquals(substituteEnv("x-${A}-y", lookup), "x-1-y");
  assertEquals(substituteEnv("Bearer $TOKEN", lookup), "Bearer t0k");
  assertEquals(substituteEnv("$HOME/.resilient", lookup), "/home/soc/.resilient");
  assertEquals(substituteEnv("price$5", lookup), "price$5");
  assertEquals(substituteEnv("pa$$word", lookup), "pa$word");
  assertEquals(substituteEnv("a$$TOKEN", lookup), "a$TOKEN");
  assertThrows(() => substituteEnv("${NOPE}", lookup), Error, "$NOPE is not set");
  const config = parseConfig(
    "[resilient]\nhost = h\norg = o\napi_key_id = i\napi_key_secret = s\nlogdir=~/.resilient/logs/\n" +
      "componentsdir = $HOME/components\n[agent]\nstore = ~/agent.kv\n",
    { file: "/etc/agent/app.config", env: (name) => vars[name] },
  );
  assertEquals(config.resilient?.logdir, "/home/soc/.resilient/logs/");
  assertEquals(config.resilient?.componentsdir, "/home/soc/components");
  assertEquals(config.agent.store, "/home/soc/agent.kv");
});
