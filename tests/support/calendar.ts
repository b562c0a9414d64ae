/** A `[taskcalendar]` config for tests and benchmarks, as parseConfig would build it. */
import type { TaskCalendarConfig } from "../../mod/config/config.ts";

export function calendarConfig(overrides: Partial<TaskCalendarConfig> = {}): TaskCalendarConfig {
  return {
    queue: "taskcalendar",
    smtpport: 25,
    smtpfrom: "soar@example.com",
    useStartTls: false,
    useSsl: false,
    smtpTls: { kind: "system" },
    timezone: "UTC",
    allDay: false,
    debounceSeconds: 0,
    outboxDir: "outbox",
    ...overrides,
  };
}
