/** Tufin SecureChange as the enrich command sees it (real client and test fakes). */

/** The SecureChange REST calls the agent makes. */
export interface SecureChangeApi {
  /** GET tickets/{id} -> the `ticket` object. */
  getTicket(id: number, options?: { signal?: AbortSignal }): Promise<RawTicket>;
  /** POST tickets/{id}/steps/{stepId}/tasks/{taskId}/comments. */
  addComment(
    ticket: { id: number; stepId: number; taskId: number },
    content: string,
    options?: { signal?: AbortSignal },
  ): Promise<void>;
}

/**
 * A ticket as GET tickets/{id} returns it. The JSON has quirks: a list with one element
 * comes back as a bare object, and an empty object (comments, current_step) as "".
 */
export interface RawTicket {
  id: number;
  subject?: string;
  requester?: string;
  requester_id?: number;
  priority?: string;
  status?: string;
  domain_name?: string;
  workflow?: { id?: number; name?: string } | "";
  current_step?: { id: number; name?: string } | "";
  steps?: { step?: OneOrMany<RawStep> } | "";
  comments?: { comment?: OneOrMany<RawComment> } | "";
  [field: string]: unknown;
}

export type OneOrMany<T> = T | T[] | "" | null | undefined;

export interface RawStep {
  id: number;
  name?: string;
  tasks?: { task?: OneOrMany<RawTask> } | "";
}

export interface RawTask {
  id: number;
  status?: string;
  fields?: { field?: OneOrMany<RawField> } | "";
}

export interface RawField {
  "@xsi.type"?: string;
  id?: number;
  name?: string;
  access_request?: OneOrMany<Record<string, unknown>>;
  server_decommission_request?: OneOrMany<Record<string, unknown>>;
  [key: string]: unknown;
}

export interface RawComment {
  content?: string;
  created?: string;
  task_name?: string;
  type?: string;
  user?: string;
}

/** A list from the API's one-or-many JSON. */
export function asList<T>(value: OneOrMany<T>): T[] {
  if (value === undefined || value === null || value === "") return [];
  return Array.isArray(value) ? value : [value];
}

/** An HTTP error from SecureChange, naming the request. */
export class SecureChangeError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    detail: string,
  ) {
    super(`SecureChange ${method} ${path} failed: HTTP ${status}${detail ? ` ${detail}` : ""}`);
    this.name = "SecureChangeError";
  }
}
