/**
 * The in-memory Resilient REST API (like resilient-circuits' ResilientMock) lives in the
 * processor SDK, where processor authors' tests use it; `agent replay`, the demo and the
 * agent's own tests use it from here.
 */
export { type MockCall, type MockFixtures, ResilientMock } from "../sdk/sdk.ts";
