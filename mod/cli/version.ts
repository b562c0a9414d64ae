/** The agent's version, shown by `agent version`. Keep in step with deno.json. */
export const VERSION = "0.1.0";
