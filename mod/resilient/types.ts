/** The Resilient REST API as the rest of the agent sees it (real client and test fakes). */

/** Options for one request. */
export interface RequestOptions {
  signal?: AbortSignal | undefined;
  /** Extra headers. */
  headers?: Record<string, string> | undefined;
}

/** REST access to one org. Paths not starting with "/rest/" are under /rest/orgs/{org_id}. */
export interface ResilientApi {
  readonly orgId: number;
  get<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
  post<T = unknown>(path: string, body: unknown, options?: RequestOptions): Promise<T>;
  put<T = unknown>(path: string, body: unknown, options?: RequestOptions): Promise<T>;
  delete<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
  /** GET, apply `change`, PUT; on 409 Conflict re-read and re-apply (bounded). */
  getPut<T extends object>(
    path: string,
    change: (current: T) => T | void,
    options?: RequestOptions,
  ): Promise<T>;
  /** The same API, sending `X-Co3ContextToken` (so the platform does not re-fire rules). */
  withContext(contextToken: string | undefined): ResilientApi;
  /** Rule (action) display name for an action_id, from /rest/orgs/{org}/actions, cached. */
  ruleName(actionId: number, options?: RequestOptions): Promise<string | undefined>;
}

/** A user (GET /rest/orgs/{org}/users/{id}). */
export interface UserDTO {
  id: number;
  email?: string | null;
  fname?: string | null;
  lname?: string | null;
  display_name?: string | null;
  enabled?: boolean;
}

/** A group (GET /rest/orgs/{org}/groups/{id}). */
export interface GroupDTO {
  id: number;
  name: string;
}

/** An HTTP error from the platform, naming the request. */
export class RestError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${method} ${path} failed: HTTP ${status}${detail ? ` ${detail}` : ""}`, options);
    this.name = "RestError";
  }
}
