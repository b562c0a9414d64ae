/**
 * add_note: the sample processor ("agent actions"). A menu-item rule on incidents, "Add
 * note", opens a dialog with the activity fields `note_text` (required) and, optionally,
 * `artifact_type` + `artifact_value`; this processor adds the note, and the artifact when
 * one was given, to the incident.
 *
 * On the platform: a message destination `add_note` (a queue, expect acknowledgement:
 * yes), the activity fields above, and the menu-item rule "Add note" sending to it.
 * Test: deno test add_note_test.ts
 */
import { defineProcessor } from "./agent_sdk.ts";

export default defineProcessor({
  queue: "add_note",
  requiredActionFields: [{ name: "note_text", type: "textarea" }],
  rules: {
    add_note: async (action, ctx) => {
      const text = String(action.properties?.note_text ?? "").trim();
      if (!text) throw new Error("The note is empty: nothing was added");
      const incidentId = action.incident.id;
      const prefix = ctx.config.prefix ? `${ctx.config.prefix} ` : "";
      // ctx.effect: after a crash and redelivery the note is not posted twice.
      const note = await ctx.effect(
        "note",
        () =>
          ctx.rest.post<{ id: number }>(`/incidents/${incidentId}/comments`, {
            text: { format: "text", content: prefix + text },
          }),
      );
      const type = String(action.properties?.artifact_type ?? "").trim();
      const value = String(action.properties?.artifact_value ?? "").trim();
      if (!type || !value) return `Note ${note.id} added to incident ${incidentId}`;
      ctx.status(`Note ${note.id} added; adding the artifact`);
      await ctx.effect("artifact", () =>
        ctx.rest.post(`/incidents/${incidentId}/artifacts`, {
          type,
          value,
          description: `Added with note ${note.id}`,
        }));
      return `Note ${note.id} and ${type} artifact ${value} added to incident ${incidentId}`;
    },
  },
});
