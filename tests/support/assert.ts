/**
 * Assertions for tests. `@std/assert` is JSR-only (unreachable here); node's strict assert
 * is built in, so these are thin, typed wrappers in the std style.
 */
import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message as string);
}

export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message as string);
}

export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message as string);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(actual, pattern, message as string);
}

export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  if (!actual.includes(expected)) {
    nodeAssert.fail(
      message ?? `expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
    );
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

/** Asserts that `fn` throws an instance of `ErrorClass` whose message includes `includes`. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
): E {
  try {
    fn();
  } catch (error) {
    checkError(error, ErrorClass, includes);
    return error as E;
  }
  nodeAssert.fail("expected the function to throw");
}

/** Async form of {@linkcode assertThrows}. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  ErrorClass?: ErrorClass<E>,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    checkError(error, ErrorClass, includes);
    return error as E;
  }
  nodeAssert.fail("expected the promise to reject");
}

function checkError(error: unknown, ErrorClass?: ErrorClass<Error>, includes?: string): void {
  if (ErrorClass && !(error instanceof ErrorClass)) {
    nodeAssert.fail(
      `expected ${ErrorClass.name}, got ${
        error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }`,
    );
  }
  if (includes && !(error instanceof Error && error.message.includes(includes))) {
    nodeAssert.fail(
      `expected an error including ${JSON.stringify(includes)}, got ${String(error)}`,
    );
  }
}
