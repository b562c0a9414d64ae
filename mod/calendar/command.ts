/** `agent calendar`: task owner / due date changes become calendar invites. */
import { type Command, COMMON_HELP, COMMON_OPTIONS, parseOrShowHelp } from "../cli/command.ts";
import { loadCommandConfig, setupCommandLogging } from "../config/setup.ts";

const HELP = `Usage: agent calendar [--config FILE] [--record DIR]

Listens on the IBM SOAR Action Module for task owner and due date changes (the
[taskcalendar] queue) and mails the task owner a calendar invite (.ics) that calendars
accept and update; the previous owner gets a cancellation. Without smtpserver in
[taskcalendar], invites are written as .eml files to outbox_dir.

Options:
      --record DIR      Write every received message to its own JSON file in DIR
                        (replay them with "agent replay").
${COMMON_HELP}`;

export const calendarCommand: Command = {
  name: "calendar",
  summary: "Mail task owners calendar invites for SOAR task owner/due date changes",
  help: HELP,
  async run(args, deps) {
    const parsed = parseOrShowHelp({ name: "calendar", help: HELP }, args, {
      ...COMMON_OPTIONS,
      record: { type: "string" },
    }, deps);
    if (!parsed) return 0;
    const { values } = parsed;
    const config = await loadCommandConfig(values, deps);
    setupCommandLogging(values, config);
    const { serveProcessors } = await import("../action_module/serve.ts");
    const { createCalendar } = await import("./factory.ts");
    return await serveProcessors(config, async (c) => [await createCalendar(c)], {
      signal: deps.signal,
      recordDir: values.record,
    });
  },
};
