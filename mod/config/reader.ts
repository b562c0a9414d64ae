/**
 * Typed access to one INI section: environment substitution, value checks with errors that
 * name file, line, section and key, defaults, and a record of every effective value (for
 * `agent config check`, which masks the secret ones).
 */
import { dirname, isAbsolute, join } from "node:path";
import { secrets } from "../log/redact.ts";
import { ConfigError } from "./errors.ts";
import type { IniDocument, IniEntry } from "./ini.ts";

/** One effective setting, as `agent config check` shows it. */
export interface EffectiveValue {
  value: string;
  secret: boolean;
  fromDefault: boolean;
  /** Written in the file as is (no $NAME): a secret that is, sits in the file. */
  literal: boolean;
}

export type Env = (name: string) => string | undefined;

/**
 * `$$` (a literal dollar), `${NAME}` anywhere, and `$NAME` before a space, a slash or the
 * end ("Bearer $TOKEN", "$HOME/.resilient").
 */
const VARIABLE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)(?=[\s/]|$)/g;

/**
 * Environment substitution in a config value, the same rule in every section: `$NAME`
 * (the whole value, or before a space or a slash), `${NAME}` anywhere, `$$` for a dollar
 * sign. `lookup` returns the variable's value or throws naming what is missing.
 */
export function substituteEnv(raw: string, lookup: (name: string) => string): string {
  return raw.replace(
    VARIABLE,
    (match, braced?: string, bare?: string) => match === "$$" ? "$" : lookup((braced ?? bare)!),
  );
}
const TRUE = new Set(["1", "yes", "true", "on"]);
const FALSE = new Set(["0", "no", "false", "off"]);

interface Common {
  secret?: boolean;
}

/** Reads the keys of one section of a parsed file. */
export class SectionReader {
  readonly #doc: IniDocument;
  readonly #env: Env;
  readonly #entries: Map<string, IniEntry>;
  readonly #effective: Map<string, EffectiveValue>;
  readonly #used = new Set<string>();

  readonly #problems: ConfigError[] | undefined;

  constructor(
    doc: IniDocument,
    readonly section: string,
    options: {
      env: Env;
      effective: Map<string, EffectiveValue>;
      /** Collect problems here (and go on with a default) instead of throwing the first. */
      problems?: ConfigError[];
    },
  ) {
    this.#doc = doc;
    this.#env = options.env;
    this.#entries = doc.sections.get(section) ?? new Map();
    this.#effective = options.effective;
    this.#problems = options.problems;
  }

  /**
   * A problem with `key`: collected (the read goes on with `fallback`, so that one run names
   * every problem) or, when not collecting, thrown.
   */
  problem<T>(key: string | undefined, reason: string, fallback: T): T {
    const error = this.error(key, reason);
    if (!this.#problems) throw error;
    if (!this.#problems.some((p) => sameKey(p, error))) this.#problems.push(error);
    return fallback;
  }

  get present(): boolean {
    return this.#doc.sections.has(this.section);
  }

  has(key: string): boolean {
    return this.#entries.has(key) && this.#entries.get(key)!.value !== "";
  }

  /** An error about `key` of this section, at its line (or the section's line). */
  error(key: string | undefined, reason: string): ConfigError {
    const line = (key && this.#entries.get(key)?.line) ?? this.#doc.sectionLines.get(this.section);
    return new ConfigError(
      {
        file: this.#doc.file,
        section: this.section,
        ...(line ? { line } : {}),
        ...(key ? { key } : {}),
      },
      reason,
    );
  }

  /** Keys written in this section that no reader asked for (likely typos), with their lines. */
  unusedKeys(): { key: string; line: number }[] {
    return [...this.#entries].filter(([k, e]) => !this.#used.has(k) && !e.inherited)
      .map(([key, e]) => ({ key, line: e.line }));
  }

  /** The value as written (no substitution), or undefined; for checks before reading. */
  raw(key: string): string | undefined {
    return this.#entries.get(key)?.value;
  }

  /** The value, or undefined when the key is absent or empty. */
  optional(key: string, options: Common = {}): string | undefined {
    this.#used.add(key);
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.value === "") return undefined;
    const value = this.#substitute(key, entry.value);
    if (options.secret) secrets.add(value);
    this.#record(key, value, options, false, value === entry.value);
    return value;
  }

  /** The value; a ConfigError when it is absent or empty. */
  required(key: string, options: Common = {}): string {
    const value = this.optional(key, options);
    if (value === undefined) return this.problem(key, `missing; "${key}" is required`, "");
    return value;
  }

  /** The value, or `fallback` (recorded as a default) when absent. */
  withDefault(key: string, fallback: string, options: Common = {}): string {
    const value = this.optional(key, options);
    if (value !== undefined) return value;
    this.#record(key, fallback, options, true);
    return fallback;
  }

  int(key: string, options: { default: number; min?: number; max?: number }): number;
  int(
    key: string,
    options: { default?: undefined; min?: number; max?: number; required?: boolean },
  ): number | undefined;
  int(
    key: string,
    options: { default?: number | undefined; min?: number; max?: number; required?: boolean },
  ): number | undefined {
    const text = options.required ? this.required(key) : this.optional(key);
    if (text === undefined) {
      if (options.default !== undefined) this.#record(key, String(options.default), {}, true);
      return options.default;
    }
    if (!/^[+-]?\d+$/.test(text)) {
      return this.problem(key, `"${text}" is not a whole number`, options.default);
    }
    const value = Number(text);
    const { min = -Infinity, max = Infinity } = options;
    if (value < min || value > max) {
      return this.problem(key, `${value} is out of range (${min}..${max})`, options.default);
    }
    return value;
  }

  /** A decimal number (e.g. seconds: "0.5"). */
  decimal(key: string, options: { default: number; min?: number; max?: number }): number {
    const text = this.optional(key);
    if (text === undefined) {
      this.#record(key, String(options.default), {}, true);
      return options.default;
    }
    if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(text)) {
      return this.problem(key, `"${text}" is not a number`, options.default);
    }
    const value = Number(text);
    const { min = -Infinity, max = Infinity } = options;
    if (value < min || value > max) {
      return this.problem(key, `${value} is out of range (${min}..${max})`, options.default);
    }
    return value;
  }

  port(key: string, fallback: number): number;
  port(key: string): number | undefined;
  port(key: string, fallback?: number): number | undefined {
    return fallback === undefined
      ? this.int(key, { min: 1, max: 65535 })
      : this.int(key, { default: fallback, min: 1, max: 65535 });
  }

  /** configparser's getboolean: 1/yes/true/on and 0/no/false/off, any case. */
  bool(key: string, fallback: boolean): boolean {
    const text = this.optional(key);
    if (text === undefined) {
      this.#record(key, String(fallback), {}, true);
      return fallback;
    }
    const lower = text.toLowerCase();
    if (TRUE.has(lower)) return true;
    if (FALSE.has(lower)) return false;
    return this.problem(
      key,
      `"${text}" is not a boolean (use true/false, yes/no, on/off, 1/0)`,
      fallback,
    );
  }

  /** A path; relative paths are taken from the config file's folder. */
  path(key: string): string | undefined {
    const text = this.optional(key);
    return text === undefined ? undefined : this.#resolved(key, text);
  }

  /** A path with a default (itself relative to the config file's folder). */
  pathWithDefault(key: string, fallback: string): string {
    return this.#resolved(key, this.withDefault(key, fallback));
  }

  /** The path resolved, and shown so by `config check`. */
  #resolved(key: string, text: string): string {
    const path = this.resolvePath(text);
    const shown = this.#effective.get(key);
    if (shown) shown.value = path;
    return path;
  }

  /** `~/...` is the home folder (resilient-circuits' own `logdir=~/.resilient/logs/`). */
  resolvePath(path: string): string {
    if (path === "~" || path.startsWith("~/")) {
      const home = this.#env("HOME");
      if (!home) throw this.error(undefined, `"${path}" starts with ~ but $HOME is not set`);
      return join(home, path.slice(1));
    }
    return isAbsolute(path) ? path : join(dirname(this.#doc.file), path);
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const text = this.withDefault(key, fallback);
    const match = choices.find((c) => c.toLowerCase() === text.toLowerCase());
    if (!match) return this.problem(key, `"${text}" is not one of ${choices.join(", ")}`, fallback);
    return match;
  }

  /** A comma- or newline-separated list. */
  list(key: string, fallback: string[] = []): string[] {
    const text = this.optional(key);
    if (text === undefined) return fallback;
    return text.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== "");
  }

  #substitute(key: string, raw: string): string {
    if (raw.startsWith("^")) {
      throw this.error(
        key,
        `"${raw}" asks for the OS keyring, which the agent does not read; ` +
          `put the value in an environment variable and write $NAME`,
      );
    }
    return substituteEnv(raw, (name) => {
      const value = this.#env(name);
      if (value === undefined) {
        return this.problem(key, `environment variable $${name} is not set`, "");
      }
      return value;
    });
  }

  #record(
    key: string,
    value: string,
    options: Common,
    fromDefault: boolean,
    literal = false,
  ): void {
    this.#effective.set(key, { value, secret: options.secret ?? false, fromDefault, literal });
  }
}

/** The first problem with a key is the one to fix; what follows from it is noise. */
export function sameKey(a: ConfigError, b: ConfigError): boolean {
  return a.message === b.message ||
    (a.where.key !== undefined && a.where.section === b.where.section &&
      a.where.key === b.where.key);
}
