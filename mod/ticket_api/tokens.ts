/**
 * The ticket service's bearer tokens: made by `agent ticket-api token create NAME`, shown
 * once, kept in the store only as their SHA-256 (a token is 32 random bytes, so a plain hash
 * is enough: nothing to guess from it). A request's token is hashed and looked up, the
 * hashes compared in constant time. A token is `read` (GET) or `write` (everything).
 */
import { timingSafeEqual } from "node:crypto";
import type { Store } from "../store/store.ts";

export type Scope = "read" | "write";

export interface TokenRecord {
  name: string;
  scope: Scope;
  /** Hex SHA-256 of the token. */
  hash: string;
  created: string;
}

const BY_NAME = ["ticket_api", "token"];
const BY_HASH = ["ticket_api", "token_hash"];
/** Tokens start with this, so that a secret scanner can tell them. */
export const TOKEN_PREFIX = "agtk_";

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class Tokens {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Makes a token; the only time its text exists. */
  async create(name: string, scope: Scope): Promise<string> {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
      throw new Error(`"${name}" cannot name a token: use letters, digits, ".", "_" or "-"`);
    }
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const token = TOKEN_PREFIX +
      btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
        /=+$/,
        "",
      );
    const record: TokenRecord = {
      name,
      scope,
      hash: await sha256(token),
      created: new Date().toISOString(),
    };
    if (!(await this.#store.claim([...BY_NAME, name], record))) {
      throw new Error(`a token named "${name}" exists; revoke it first`);
    }
    await this.#store.set([...BY_HASH, record.hash], record);
    return token;
  }

  async list(): Promise<Omit<TokenRecord, "hash">[]> {
    const out: Omit<TokenRecord, "hash">[] = [];
    for await (const { value } of this.#store.list<TokenRecord>(BY_NAME)) {
      out.push({ name: value.name, scope: value.scope, created: value.created });
    }
    return out;
  }

  async count(): Promise<number> {
    return await this.#store.count(BY_NAME);
  }

  /** False when there was no such token. */
  async revoke(name: string): Promise<boolean> {
    const record = await this.#store.get<TokenRecord>([...BY_NAME, name]);
    if (!record) return false;
    await this.#store.commit({ delete: [[...BY_NAME, name], [...BY_HASH, record.hash]] });
    return true;
  }

  /**
   * The token's record, or undefined for a token that is not (or no longer) valid: one
   * store read per request, so a revocation holds at once, in every process on the store.
   */
  async verify(token: string): Promise<TokenRecord | undefined> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
    const hash = await sha256(token);
    const record = await this.#store.get<TokenRecord>([...BY_HASH, hash]);
    if (!record) return undefined;
    const a = new TextEncoder().encode(record.hash);
    const b = new TextEncoder().encode(hash);
    return a.length === b.length && timingSafeEqual(a, b) ? record : undefined;
  }
}
