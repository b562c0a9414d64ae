/**
 * Microsoft Graph tokens with MSAL's client-credentials flow. MSAL's token cache is kept in
 * the agent's store (never in a plain file, never in logs), so `agent authorize` and a
 * restarted bridge reuse a valid token instead of asking Entra ID again.
 */
import { httpClientFor } from "../net/http.ts";
import {
  ConfidentialClientApplication,
  type Configuration,
  type ICachePlugin,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
  PublicClientApplication,
} from "@azure/msal-node";
import type { GraphConfig } from "../config/config.ts";
import { caCertsFor } from "../tls/trust.ts";
import { secrets } from "../log/redact.ts";
import type { Store } from "../store/store.ts";
import { SIGN_IN_COMMAND } from "./types.ts";

export const GRAPH_SCOPE = "https://graph.microsoft.com/.default";
/** An access token is used until this long before it expires. */
const HOLD_MARGIN_MS = 5 * 60_000;

/** Hands out bearer tokens for Graph. */
export interface TokenSource {
  /** A valid access token; `force` asks Entra ID for a new one (after a 401). */
  token(options?: { force?: boolean }): Promise<string>;
}

/** Entra ID refused or could not be reached; the message says which and why. */
export class TokenError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TokenError";
  }
}

/** Where the delegated sign-in keeps who signed in and when it last refreshed. */
const signInKey = (config: GraphConfig) => ["graph", "sign_in", config.tenantId, config.clientId];

/** What the store knows of the delegated sign-in (never a token: MSAL's cache has those). */
export interface SignIn {
  username: string;
  homeAccountId: string;
  signedInAt: string;
  /** The last time a token was had with the refresh token (it expires after 90 idle days). */
  refreshedAt: string;
}

export { REFRESH_TOKEN_IDLE_DAYS, SIGN_IN_COMMAND } from "./types.ts";

export class MsalTokenSource implements TokenSource {
  readonly #app: ConfidentialClientApplication | PublicClientApplication;
  readonly #config: GraphConfig;
  readonly #store: Store | undefined;
  #held: { token: string; until: number } | undefined;

  private constructor(
    app: ConfidentialClientApplication | PublicClientApplication,
    config: GraphConfig,
    store: Store | undefined,
  ) {
    this.#app = app;
    this.#config = config;
    this.#store = store;
  }

  static async fromConfig(
    config: GraphConfig,
    options: { store?: Store | undefined; fetch?: typeof fetch } = {},
  ): Promise<MsalTokenSource> {
    const caCerts = await caCertsFor(config.tls, "[graph] cafile");
    const client = httpClientFor(config.authorityHost, { caCerts, proxy: config.proxy });
    const doFetch = options.fetch ??
      ((input: string, init: RequestInit) => fetch(input, client ? { ...init, client } : init));
    const authority = `${config.authorityHost}/${config.tenantId}`;
    const credential = config.credential?.kind === "secret"
      ? { clientSecret: config.credential.secret }
      : config.credential?.kind === "certificate"
      ? {
        clientCertificate: {
          thumbprintSha256: config.credential.thumbprint,
          privateKey: await Deno.readTextFile(config.credential.privateKeyFile),
        },
      }
      : {};
    const msal: Configuration = {
      auth: {
        clientId: config.clientId,
        authority,
        ...credential,
        // Entra ID's endpoints follow one layout in every cloud: given here, MSAL does no
        // discovery round trip (and works against a national cloud or a test fake alike).
        knownAuthorities: [new URL(config.authorityHost).host],
        authorityMetadata: JSON.stringify(authorityMetadata(authority)),
        cloudDiscoveryMetadata: JSON.stringify(discoveryMetadata(config.authorityHost)),
      },
      system: { networkClient: networkClient(doFetch, config.timeoutSeconds * 1000) },
    };
    if (options.store) {
      msal.cache = {
        cachePlugin: storeCache(options.store, [
          "graph",
          "msal_cache",
          config.tenantId,
          config.clientId,
        ]),
      };
    }
    const app = config.auth === "delegated"
      ? new PublicClientApplication(msal)
      : new ConfidentialClientApplication(msal);
    return new MsalTokenSource(app, config, options.store);
  }

  async token(options: { force?: boolean } = {}): Promise<string> {
    // Every Graph request asks; MSAL's cache would read and parse the store's copy each time.
    const held = this.#held;
    if (!options.force && held && held.until > Date.now()) return held.token;
    try {
      const result = this.#app instanceof ConfidentialClientApplication
        ? await this.#app.acquireTokenByClientCredential({
          scopes: [GRAPH_SCOPE],
          skipCache: options.force ?? false,
        })
        : await this.#delegated(options.force ?? false);
      if (!result?.accessToken) throw new Error("no access token in the answer");
      secrets.add(result.accessToken);
      // Kept until five minutes before it expires (a 401 asks again with force).
      const expires = result.expiresOn?.getTime() ?? Date.now();
      this.#held = { token: result.accessToken, until: expires - HOLD_MARGIN_MS };
      return result.accessToken;
    } catch (error) {
      if (error instanceof TokenError) throw error;
      const detail = (error as { errorMessage?: string }).errorMessage || (error as Error).message;
      if (this.#config.auth === "delegated") {
        throw new TokenError(
          `The Graph sign-in of client ${this.#config.clientId} no longer works ` +
            `(${firstLine(detail)}): run "${SIGN_IN_COMMAND}" to sign in again`,
          { cause: error },
        );
      }
      throw new TokenError(
        `Cannot get a Graph token for client ${this.#config.clientId} in tenant ` +
          `${this.#config.tenantId} from ${this.#config.authorityHost}: ${firstLine(detail)}`,
        { cause: error },
      );
    }
  }

  /** The signed-in user's token, from MSAL's cache or with the refresh token. */
  async #delegated(force: boolean) {
    const app = this.#app as PublicClientApplication;
    const accounts = await app.getTokenCache().getAllAccounts();
    const signIn = await this.#store?.get<SignIn>(signInKey(this.#config));
    const account = accounts.find((a) => a.homeAccountId === signIn?.homeAccountId) ?? accounts[0];
    if (!account) {
      throw new TokenError(
        `Nobody has signed in for the Graph client ${this.#config.clientId} yet: run ` +
          `"${SIGN_IN_COMMAND}"`,
      );
    }
    const result = await app.acquireTokenSilent({
      account,
      scopes: this.#config.scopes,
      forceRefresh: force,
    });
    if (this.#store && result && (force || result.fromCache === false)) {
      const now = new Date().toISOString();
      await this.#store.set(
        signInKey(this.#config),
        {
          username: account.username,
          homeAccountId: account.homeAccountId,
          signedInAt: signIn?.signedInAt ?? now,
          refreshedAt: now,
        } satisfies SignIn,
      );
    }
    return result;
  }

  /**
   * The device code flow (`agent authorize --device-code`): `show` gets Entra ID's message
   * (the URL and the code for the user); resolves when the user has signed in, with who.
   */
  async signIn(show: (message: string) => void, signal?: AbortSignal): Promise<SignIn> {
    if (!(this.#app instanceof PublicClientApplication)) {
      throw new TokenError(
        "[graph] auth is app: the device code flow is for auth = delegated (no client secret)",
      );
    }
    const request = {
      scopes: this.#config.scopes,
      deviceCodeCallback: (response: { message: string }) => show(response.message),
    };
    const aborted = new Promise<never>((_, reject) =>
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true })
    );
    let result;
    try {
      result = await Promise.race([this.#app.acquireTokenByDeviceCode(request), aborted]);
    } catch (error) {
      if (signal?.aborted) {
        (request as { cancel?: boolean }).cancel = true;
        throw error;
      }
      const detail = (error as { errorMessage?: string }).errorMessage || (error as Error).message;
      throw new TokenError(`The sign-in did not complete: ${firstLine(detail)}`, { cause: error });
    }
    if (!result?.account) throw new TokenError("Entra ID answered without an account");
    secrets.add(result.accessToken);
    const now = new Date().toISOString();
    const signIn: SignIn = {
      username: result.account.username,
      homeAccountId: result.account.homeAccountId,
      signedInAt: now,
      refreshedAt: now,
    };
    await this.#store?.set(signInKey(this.#config), signIn);
    return signIn;
  }
}

/** The delegated sign-in as the store knows it (doctor, health). */
export async function signInOf(store: Store, config: GraphConfig): Promise<SignIn | undefined> {
  return await store.get<SignIn>(signInKey(config));
}

function authorityMetadata(authority: string) {
  return {
    token_endpoint: `${authority}/oauth2/v2.0/token`,
    authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
    end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
    issuer: `${authority}/v2.0`,
    jwks_uri: `${authority}/discovery/v2.0/keys`,
  };
}

function discoveryMetadata(authorityHost: string) {
  const host = new URL(authorityHost).host;
  return {
    tenant_discovery_endpoint: `${authorityHost}/common/v2.0/.well-known/openid-configuration`,
    "api-version": "1.1",
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  };
}

/** MSAL's HTTP calls through Deno's fetch, with the configured CA and a timeout. */
function networkClient(
  doFetch: (input: string, init: RequestInit) => Promise<Response>,
  timeoutMs: number,
): INetworkModule {
  const send = async <T>(
    method: string,
    url: string,
    options: NetworkRequestOptions = {},
  ): Promise<NetworkResponse<T>> => {
    const response = await doFetch(url, {
      method,
      headers: options.headers ?? {},
      ...(options.body !== undefined ? { body: options.body } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: "invalid_response", error_description: `not JSON: ${text.slice(0, 120)}` };
    }
    return {
      status: response.status,
      headers: Object.fromEntries(response.headers),
      body: body as T,
    };
  };
  return {
    sendGetRequestAsync: (url, options) => send("GET", url, options),
    sendPostRequestAsync: (url, options) => send("POST", url, options),
  };
}

function storeCache(store: Store, key: Deno.KvKey): ICachePlugin {
  return {
    async beforeCacheAccess(context) {
      const saved = await store.get<string>(key);
      if (saved) context.tokenCache.deserialize(saved);
    },
    async afterCacheAccess(context) {
      if (context.cacheHasChanged) await store.set(key, context.tokenCache.serialize());
    },
  };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/)[0]!.replace(/^[a-z_]+:\s*/i, "").trim();
}
