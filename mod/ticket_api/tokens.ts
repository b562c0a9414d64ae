/**
 * The ticket service's bearer tokens: made by `agent ticket-api token create NAME`, shown
 * once, kept in the store only as their SHA-256 (a token is 32 random bytes, so a plain hash
 * is enough: nothing to guess from it). A request's token is hashed and looked up, the
 * hashes compared in constant time. A token is `read` (GET) or `write` (everything).
 */
import { sameSecret, sha256Hex as sha256 } from "../text/hash.ts";
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
/**
 * A valid token is remembered this long: a revocation (made by another process, the CLI)
 * holds within it. Invalid tokens are never remembered, so a new token works at once.
 */
export const TOKEN_CACHE_MS = 1000;

export class Tokens {
  readonly #store: Store;
  readonly #valid = new Map<string, { record: TokenRecord; until: number }>();

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
      hash: sha256(token),
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
    this.#valid.clear();
    return true;
  }

  /**
   * The token's record, or undefined for a token that is not (or no longer) valid. The
   * store is read at most once a second per token (see TOKEN_CACHE_MS).
   */
  async verify(token: string): Promise<TokenRecord | undefined> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
    const hash = sha256(token);
    const now = Date.now();
    const known = this.#valid.get(hash);
    if (known && known.until > now) return known.record;
    const record = await this.#store.get<TokenRecord>([...BY_HASH, hash]);
    if (!record) {
      this.#valid.delete(hash);
      return undefined;
    }
    if (!sameSecret(record.hash, hash)) return undefined;
    if (this.#valid.size > 10_000) this.#valid.clear();
    this.#valid.set(hash, { record, until: now + TOKEN_CACHE_MS });
    return record;
  }
}
