/**
 * Logging: LogTape with synchronous sinks (nothing is lost when the process exits or is
 * killed), human-readable lines on a TTY, JSON lines otherwise, an optional JSON-lines
 * log file, and redaction in front of every sink.
 */
import {
  configureSync,
  getLogger,
  jsonLinesFormatter,
  type LogLevel,
  type LogRecord,
  resetSync,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import { redactRecord } from "./redact.ts";

export type { Logger } from "@logtape/logtape";
export type LogFormat = "text" | "json";

export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
export type AgentLogLevel = typeof LOG_LEVELS[number];

/** Options for {@linkcode setupLogging}. */
export interface LogOptions {
  /** Defaults to text on a TTY and JSON lines otherwise. */
  format?: LogFormat | undefined;
  level?: AgentLogLevel | undefined;
  /** Also append JSON lines to this file. */
  file?: string | undefined;
  /** Where console lines go (tests capture them); defaults to stderr. */
  write?: ((line: string) => void) | undefined;
}

const encoder = new TextEncoder();

/** Configures the process's logging. Safe to call again (tests, reconfiguration). */
export function setupLogging(options: LogOptions = {}): void {
  const format = options.format ?? (Deno.stderr.isTerminal() ? "text" : "json");
  const write = options.write ?? ((line: string) => writeAll(Deno.stderr, line));
  const formatter = format === "json" ? jsonLinesFormatter : textFormatter;
  const sinks: Record<string, Sink> = { console: redacting((r) => write(formatter(r))) };
  if (options.file) {
    const file = Deno.openSync(options.file, { append: true, create: true, mode: 0o640 });
    sinks.file = redacting((r) => writeAll(file, jsonLinesFormatter(r)));
  }
  resetSync();
  configureSync({
    reset: true,
    sinks,
    loggers: [
      { category: ["agent"], sinks: Object.keys(sinks), lowestLevel: options.level ?? "info" },
      { category: ["logtape", "meta"], sinks: ["console"], lowestLevel: "warning" },
    ],
  });
}

/** The logger for one part of the agent, e.g. `log("stomp")`. */
export function log(...category: string[]) {
  return getLogger(["agent", ...category]);
}

function redacting(sink: Sink): Sink {
  return (record: LogRecord) => sink(redactRecord(record));
}

function writeAll(target: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.byteLength > 0) bytes = bytes.subarray(target.writeSync(bytes));
}

const LEVEL_LABEL: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

const textFormatter: TextFormatter = (record) => {
  const time = new Date(record.timestamp).toISOString().slice(11, 23);
  const message = record.message
    .map((part, i) => i % 2 === 0 ? String(part) : inspectValue(part))
    .join("");
  // Properties already shown through a {placeholder} are not repeated.
  const template = typeof record.rawMessage === "string"
    ? record.rawMessage
    : record.rawMessage.join("");
  const extra = Object.entries(record.properties).filter(([k]) => !template.includes(`{${k}}`));
  const props = extra.length ? " " + inspectValue(Object.fromEntries(extra)) : "";
  return `${time} ${LEVEL_LABEL[record.level]} ${
    record.category.slice(1).join(".")
  }: ${message}${props}\n`;
};

function inspectValue(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
