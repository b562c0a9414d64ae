import { ResilientMock, RestError, testAction } from "./agent_sdk.ts";
import processor from "./add_note.ts";

function expectEqual(actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

function platform(): ResilientMock {
  return new ResilientMock()
    .on("GET", "/actions", { entities: [{ id: 31, name: "Add note" }] })
    .on("POST", "/incidents/:id/comments", (call) => ({ id: 7, text: call.body }))
    .on("POST", "/incidents/:id/artifacts", (call) => [{ id: 9, ...(call.body as object) }]);
}

Deno.test("add_note adds the note with the configured prefix, acting for the message", async () => {
  const mock = platform();
  const result = await testAction(processor, {
    action_id: 31,
    object_type: 0,
    incident: { id: 2095 },
    properties: { note_text: "  Called the user back  " },
  }, { mock, config: { prefix: "[SOC]" } });
  expectEqual(result.reply, {
    message_type: 0,
    message: "Note 7 added to incident 2095",
    complete: true,
  });
  expectEqual(mock.calls.map((c) => [c.method, c.path, c.body, c.contextToken]), [
    ["GET", "/actions", undefined, "test-context-token"],
    ["POST", "/incidents/2095/comments", {
      text: { format: "text", content: "[SOC] Called the user back" },
    }, "test-context-token"],
  ]);
});

Deno.test("add_note adds the artifact too when the dialog named one", async () => {
  const mock = platform();
  const result = await testAction(processor, {
    action_id: 31,
    object_type: 0,
    incident: { id: 2095 },
    properties: {
      note_text: "Blocked",
      artifact_type: "IP Address",
      artifact_value: "203.0.113.9",
    },
  }, { mock });
  expectEqual(
    result.reply.message,
    "Note 7 and IP Address artifact 203.0.113.9 added to incident 2095",
  );
  expectEqual(result.statuses, ["Note 7 added; adding the artifact"]);
  expectEqual(mock.seen(/POST .*artifacts/).map((c) => c.body), [
    { type: "IP Address", value: "203.0.113.9", description: "Added with note 7" },
  ]);
});

Deno.test("add_note fails the action, naming why, on an empty note or a platform error", async () => {
  const empty = await testAction(processor, {
    action_id: 31,
    object_type: 0,
    incident: { id: 1 },
    properties: { note_text: " " },
  }, { mock: platform() });
  expectEqual(empty.reply, {
    message_type: 1,
    message: "The note is empty: nothing was added",
    complete: true,
  });
  const mock = platform().on("POST", "/incidents/:id/comments", (call) => {
    throw new RestError("POST", call.path, 403, "no permission to add notes");
  });
  const denied = await testAction(processor, {
    action_id: 31,
    object_type: 0,
    incident: { id: 1 },
    properties: { note_text: "x" },
  }, { mock });
  expectEqual(
    denied.reply.message,
    "POST /incidents/1/comments failed: HTTP 403 no permission to add notes",
  );
});
