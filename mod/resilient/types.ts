/** The Resilient REST API as the rest of the agent sees it (real client and test fakes). */

export type { RequestOptions, ResilientApi } from "../sdk/sdk.ts";

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

export { RestError } from "../sdk/sdk.ts";
