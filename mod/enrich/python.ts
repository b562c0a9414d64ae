/**
 * Python integrations of the SecureChange Request Add-on, run unchanged: each in its own
 * `python -I` process (no environment, no user site, no stdin once the ticket is read), with
 * an address-space limit set by a small bootstrap before the module is imported from its own
 * path (so `__file__`-relative paths, `../../lib` and `integration_config.txt` work as they did).
 * The bootstrap calls `get_data(ticket_info, logger)` and writes the result to the original
 * stdout, which it keeps for itself: the integration's `print`s go to stderr, so nothing it
 * prints can pass for the result. Its logger's records come back as log lines.
 *
 * Python is not sandboxed like JavaScript plugins (no network or file narrowing): it runs with
 * the agent's user's rights. The README says how to limit it.
 */
import { dirname } from "node:path";
import type { Logger } from "../log/log.ts";
import { readLines } from "../text/lines.ts";
import type { TicketInfo } from "./plugin.ts";

/** Marks the bootstrap's log records on stderr (a record separator, then "LOG "). */
const LOG_MARK = "\u001eLOG ";

/** The bootstrap: argv = [module path, name, memory MB]; the ticket as JSON on stdin. */
const BOOTSTRAP = String.raw`
import importlib.util, json, logging, os, resource, sys, traceback
path, name, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
result = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr
if memory_mb > 0:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
class Relay(logging.Handler):
    def emit(self, record):
        try:
            line = json.dumps({"level": record.levelname, "message": self.format(record)})
            sys.stderr.write("\x1eLOG " + line + "\n")
            sys.stderr.flush()
        except Exception:
            pass
logger = logging.getLogger("integration." + name)
logger.setLevel(logging.DEBUG)
logger.propagate = False
logger.addHandler(Relay())
def answer(value):
    result.write(json.dumps(value) + "\n")
    result.flush()
def failure(error):
    where = traceback.extract_tb(error.__traceback__)
    at = (" (%s:%d)" % (os.path.basename(where[-1].filename), where[-1].lineno)) if where else ""
    return {"ok": False, "error": "%s: %s%s" % (type(error).__name__, error, at)}
# The module is imported while the agent fetches the ticket; the ticket comes on stdin.
get_data, failed = None, None
try:
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get_data = getattr(module, "get_data", None)
    if get_data is None:
        failed = {"ok": False, "error": "the module has no get_data(ticket_info, logger)"}
except MemoryError:
    failed = {"ok": False, "error": "ran out of memory (max_memory_mb %d)" % memory_mb}
except BaseException as error:
    failed = failure(error)
ticket = json.loads(sys.stdin.buffer.read().decode("utf-8"))
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
if failed:
    answer(failed)
else:
    try:
        text = get_data(ticket, logger)
        if text is None or text == "":
            answer({"ok": True, "text": None})
        elif isinstance(text, str):
            answer({"ok": True, "text": text})
        else:
            answer({"ok": False, "error": "get_data returned %s; expected a string or None" % type(text).__name__})
    except MemoryError:
        answer({"ok": False, "error": "ran out of memory (max_memory_mb %d)" % memory_mb})
    except BaseException as error:
        answer(failure(error))
`;

/** A Python integration started ahead: its module imported while the ticket is fetched. */
export interface StartedPython {
  /** Hands it the ticket; resolves to its text, or throws its error. */
  answer(ticketInfo: TicketInfo, signal: AbortSignal): Promise<string | null>;
  kill(): void;
}

/** Starts one Python integration (see module doc); the ticket follows with `answer`. */
export function startPython(
  job: { name: string; path: string; python: string; maxMemoryMb?: number | undefined },
  logger: Logger,
): StartedPython {
  const child = new Deno.Command(job.python, {
    // -B: no __pycache__ written into the add-on's folders.
    args: ["-I", "-B", "-c", BOOTSTRAP, job.path, job.name, String(job.maxMemoryMb ?? 0)],
    cwd: dirname(job.path),
    clearEnv: true,
    env: { LANG: "C.UTF-8", PYTHONIOENCODING: "utf-8" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone already */ }
  };
  const output = Promise.all([
    new Response(child.stdout).text(),
    relayStderr(child.stderr, logger),
    child.status,
  ]);
  output.catch(() => {});
  return {
    kill,
    async answer(ticketInfo, signal) {
      signal.addEventListener("abort", kill, { once: true });
      try {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(JSON.stringify(ticketInfo))).catch(() => {});
        await writer.close().catch(() => {});
        const [out, , status] = await output;
        signal.throwIfAborted();
        const line = out.split("\n").find((l) => l.trim() !== "");
        if (!line) {
          throw new Error(
            status.signal
              ? `the Python process was killed (${status.signal}) before it answered`
              : `the Python process exited (code ${status.code}) without an answer`,
          );
        }
        const answer = JSON.parse(line) as { ok: boolean; text?: string | null; error?: string };
        if (!answer.ok) throw new Error(answer.error ?? "failed");
        return answer.text ?? null;
      } finally {
        signal.removeEventListener("abort", kill);
        kill();
      }
    },
  };
}

/** The child's stderr: its logger's records at their level, anything else printed at info. */
async function relayStderr(stream: ReadableStream<Uint8Array>, logger: Logger): Promise<void> {
  let lines = 0;
  const emit = (line: string) => {
    if (!line.trim() || ++lines > 10_000) return;
    if (line.startsWith(LOG_MARK)) {
      try {
        const record = JSON.parse(line.slice(LOG_MARK.length)) as {
          level: string;
          message: string;
        };
        const level = record.level === "ERROR" || record.level === "CRITICAL"
          ? "error"
          : record.level === "WARNING"
          ? "warn"
          : record.level === "DEBUG"
          ? "debug"
          : "info";
        logger[level]("{message}", { message: record.message.slice(0, 4000) });
        return;
      } catch { /* printed text that looks like a record: logged as text below */ }
    }
    logger.info("printed: {text}", { text: line.slice(0, 4000) });
  };
  await readLines(stream, emit, 64 * 1024);
}
