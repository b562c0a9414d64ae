/**
 * Atlassian's published ADF JSON schema (tests/fixtures/adf), which Jira Cloud enforces:
 * for the property tests and for the fake Jira Cloud, which refuses what Jira refuses.
 */
import Ajv from "ajv-draft-04";
import schema from "../fixtures/adf/full.json" with { type: "json" };

// deno-lint-ignore no-explicit-any
const ajv = new (Ajv as any)({ allErrors: false, strict: false });
const validate = ajv.compile(schema) as ((doc: unknown) => boolean) & {
  errors?: { instancePath: string; message?: string }[] | null;
};

/** Why `doc` is not valid ADF (the first problem), or undefined when it is. */
export function adfProblem(doc: unknown): string | undefined {
  if (validate(doc)) return undefined;
  // anyOf reports every branch; the deepest path is the useful one.
  const errors = [...(validate.errors ?? [])].sort((a, b) =>
    b.instancePath.length - a.instancePath.length
  );
  const first = errors[0];
  return first ? `${first.instancePath || "/"} ${first.message}` : "invalid";
}
