/** Builds the calendar processor from `[taskcalendar]` (and `[resilient]` for links). */
import type { BuiltProcessor } from "../action_module/factory.ts";
import { type Config, ConfigError } from "../config/config.ts";
import { FileMailer, SmtpMailer } from "../smtp/mailer.ts";
import { calendarProcessor } from "./processor.ts";
import { log } from "../log/log.ts";
import { calendarLine } from "../ops/startup.ts";

export async function createCalendar(config: Config): Promise<BuiltProcessor> {
  const calendar = config.taskcalendar;
  if (!calendar) {
    throw new ConfigError(
      { file: config.file, section: "taskcalendar" },
      "missing; the calendar needs this section",
    );
  }
  const mailer = (await SmtpMailer.fromConfig(calendar, config.file)) ??
    new FileMailer(calendar.outboxDir);
  log("calendar").info(calendarLine(calendar));
  const processor = calendarProcessor(calendar, {
    mailer,
    platformHost: config.resilient?.host ?? "soar.invalid",
    ...(config.resilient ? { platformPort: config.resilient.port } : {}),
  });
  return { processor, close: () => mailer.close() };
}
