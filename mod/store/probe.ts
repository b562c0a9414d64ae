/** `agent doctor`'s check of the store, and reading it without writing it. */
import { dirname } from "node:path";
import type { Config } from "../config/config.ts";
import { findingsOf, message, writableFolder } from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";
import { Store } from "./store.ts";

/**
 * The store, without changing it: a copy of the file is opened and written (it is a store
 * Deno KV can use), the file itself only opened for writing; a store not made yet is looked
 * for a place. A remote store is read.
 */
export async function checkStore(config: Config): Promise<Finding[]> {
  const { list, add } = findingsOf("[agent] store");
  const path = config.agent.store;
  const hint = "check [agent] store: the folder must exist and be writable by the agent's user";
  try {
    if (/^https?:\/\//.test(path)) {
      const store = await Store.open(path);
      try {
        await store.get(["doctor", "probe"]);
      } finally {
        store.close();
      }
      add("readable", "pass", `remote KV ${path} answers`);
      return list;
    }
    const exists = await Deno.stat(path).then(() => true, () => false);
    if (!exists) {
      const where = await writableFolder(dirname(path));
      add("writable", "pass", `${path} does not exist yet; it will be made in ${where}`);
      return list;
    }
    (await Deno.open(path, { read: true, write: true })).close();
    await withStoreCopy(path, async (store) => {
      const key = ["doctor", crypto.randomUUID()];
      await store.set(key, Date.now());
      await store.delete(key);
    });
    const size = await fileSize(path);
    add(
      "writable",
      "pass",
      `${path} writable` + (size === undefined ? "" : `, ${(size / 1024 / 1024).toFixed(1)} MB`),
    );
  } catch (error) {
    add("writable", "fail", `${path}: ${message(error)}`, hint);
  }
  return list;
}

/**
 * Runs `fn` on the store to read it: a copy of a local file (the store itself is never
 * written), a remote store as it is; undefined when the local file does not exist yet.
 */
export async function readStore<T>(
  path: string,
  fn: (store: Store) => Promise<T>,
): Promise<T | undefined> {
  if (/^https?:\/\//.test(path)) {
    const store = await Store.open(path);
    try {
      return await fn(store);
    } finally {
      store.close();
    }
  }
  if (!(await Deno.stat(path).then(() => true, () => false))) return undefined;
  return await withStoreCopy(path, fn);
}

/** Runs `fn` on a copy of the store file (the store itself is never written). */
async function withStoreCopy<T>(path: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const copy = await Deno.makeTempDir({ prefix: "agent-doctor-" });
  try {
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.copyFile(`${path}${suffix}`, `${copy}/store${suffix}`).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
    const store = await Store.open(`${copy}/store`);
    try {
      return await fn(store);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(copy, { recursive: true }).catch(() => {});
  }
}

async function fileSize(path: string): Promise<number | undefined> {
  let total = 0;
  // SQLite keeps recent writes in the -wal file beside the store.
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      total += (await Deno.stat(file)).size;
    } catch { /* absent */ }
  }
  return total || undefined;
}
