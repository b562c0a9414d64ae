/**
 * An INI reader with Python configparser semantics (the parser that wrote and reads every
 * resilient-circuits app.config), so that real files work unchanged.
 *
 * Hand-written because no npm INI package matches configparser: `ini` cuts `#` inside
 * values (URLs), converts booleans and has no continuation lines.
 *
 * Matches `configparser.ConfigParser(interpolation=None)` with default options:
 * whole-line `#`/`;` comments only, `=` or `:` as delimiter (the first one wins),
 * keys lower-cased, indented continuation lines joined with "\n", blank lines kept inside
 * a multi-line value, a `[DEFAULT]` section inherited by every other section, duplicate
 * sections and keys rejected (strict mode). `%` is not interpolated.
 */

/** One key's raw value and where it was written. */
export interface IniEntry {
  value: string;
  /** 1-based line of the key. */
  line: number;
  /** Inherited from [DEFAULT], not written in this section. */
  inherited?: boolean;
}

/** A parsed file: section name (case-sensitive, as configparser) -> lower-cased key -> entry. */
export interface IniDocument {
  file: string;
  sections: Map<string, Map<string, IniEntry>>;
  /** Line of each section header, for error messages about missing keys. */
  sectionLines: Map<string, number>;
}

/** A syntax error, naming the file and line. */
export class IniSyntaxError extends SyntaxError {
  constructor(readonly file: string, readonly line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = "IniSyntaxError";
  }
}

const SECTION = /^\[(.+)\]/;
const OPTION = /^(.*?)\s*([=:])\s*(.*)$/;
const DEFAULT_SECTION = "DEFAULT";

interface Pending {
  entry: IniEntry;
  parts: string[];
}

/** Parses INI text the way Python's configparser does. */
export function parseIni(text: string, file = "<string>"): IniDocument {
  const sections = new Map<string, Map<string, IniEntry>>();
  const sectionLines = new Map<string, number>();
  const defaults = new Map<string, IniEntry>();
  let current: Map<string, IniEntry> | undefined;
  let currentName = "";
  let pending: Pending | undefined;
  let indentLevel = 0;

  const finish = () => {
    if (pending) pending.entry.value = pending.parts.join("\n").trimEnd();
    pending = undefined;
  };

  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const stripped = raw.trim();
    const isComment = stripped.startsWith("#") || stripped.startsWith(";");
    if (isComment) return;
    if (stripped === "") {
      // configparser keeps blank lines inside a multi-line value (trailing ones are trimmed).
      pending?.parts.push("");
      return;
    }
    const indent = raw.length - raw.trimStart().length;
    if (pending && indent > indentLevel) {
      pending.parts.push(stripped);
      return;
    }
    indentLevel = indent;
    finish();
    const header = SECTION.exec(stripped);
    if (header) {
      const name = header[1]!;
      if (name === DEFAULT_SECTION) {
        current = defaults;
      } else {
        if (sections.has(name)) {
          throw new IniSyntaxError(file, lineNo, `section [${name}] appears twice`);
        }
        current = new Map();
        sections.set(name, current);
        sectionLines.set(name, lineNo);
      }
      currentName = name;
      return;
    }
    if (!current) {
      throw new IniSyntaxError(file, lineNo, `"${stripped}" comes before any [section] header`);
    }
    const option = OPTION.exec(stripped);
    if (!option || option[1] === "") {
      throw new IniSyntaxError(
        file,
        lineNo,
        `cannot read "${stripped}": expected "key = value" in [${currentName}]`,
      );
    }
    const key = option[1]!.trimEnd().toLowerCase();
    if (current.has(key)) {
      throw new IniSyntaxError(file, lineNo, `key "${key}" appears twice in [${currentName}]`);
    }
    const entry: IniEntry = { value: "", line: lineNo };
    current.set(key, entry);
    pending = { entry, parts: [option[3]!.trim()] };
  });
  finish();

  for (const section of sections.values()) {
    for (const [key, entry] of defaults) {
      if (!section.has(key)) section.set(key, { ...entry, inherited: true });
    }
  }
  return { file, sections, sectionLines };
}
