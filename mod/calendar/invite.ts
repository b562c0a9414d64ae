/**
 * The iCalendar invite for a task (ical-generator): METHOD REQUEST or CANCEL, one stable
 * UID per task, a SEQUENCE that grows with every update, DTSTAMP, ORGANIZER, ATTENDEE with
 * RSVP, the task link. Timed events are written in UTC (absolute, shown in the reader's
 * zone); all-day dates are computed in the configured time zone.
 */
import ical, {
  ICalAttendeeRole,
  ICalAttendeeStatus,
  ICalCalendarMethod,
  ICalEventStatus,
} from "ical-generator";
import type { TaskDTO } from "../action_module/types.ts";
import { oneLine } from "../smtp/compose.ts";

/** What an invite says. */
export interface InviteSpec {
  method: "REQUEST" | "CANCEL";
  uid: string;
  sequence: number;
  task: TaskDTO;
  incidentName: string | undefined;
  organizer: { email: string; name?: string };
  attendee: { email: string; name?: string };
  url: string;
  description: string;
  timezone: string;
  /** Make timed events (with a due date) all-day events instead. */
  allDay: boolean;
  now: Date;
}

const HOUR = 3600_000;

/** The stable UID of a task's event. */
export function taskUid(task: Pick<TaskDTO, "id" | "inc_id">, host: string): string {
  return `task-${task.inc_id}-${task.id}@${host}`;
}

export function inviteSummary(task: TaskDTO, incidentName: string | undefined): string {
  const incident = incidentName
    ? `Incident ${task.inc_id}: ${incidentName}`
    : `Incident ${task.inc_id}`;
  return oneLine(`Task: ${task.name} (${incident})`);
}

/** Builds the .ics text. */
export function buildInvite(spec: InviteSpec): string {
  const calendar = ical({
    prodId: { company: "agent", product: "task-calendar", language: "EN" },
    method: spec.method === "CANCEL" ? ICalCalendarMethod.CANCEL : ICalCalendarMethod.REQUEST,
  });
  const when = eventTimes(spec);
  calendar.createEvent({
    id: spec.uid,
    sequence: spec.sequence,
    stamp: spec.now,
    start: when.start,
    end: when.end,
    allDay: when.allDay,
    summary: inviteSummary(spec.task, spec.incidentName),
    description: spec.description,
    url: spec.url,
    organizer: { name: spec.organizer.name ?? spec.organizer.email, email: spec.organizer.email },
    attendees: [{
      email: spec.attendee.email,
      ...(spec.attendee.name ? { name: spec.attendee.name } : {}),
      rsvp: true,
      role: ICalAttendeeRole.REQ,
      status: ICalAttendeeStatus.NEEDSACTION,
    }],
    status: spec.method === "CANCEL" ? ICalEventStatus.CANCELLED : ICalEventStatus.CONFIRMED,
  });
  return calendar.toString();
}

/** Start and end: from the task's start (or now) to the due date; no due date: today. */
export function eventTimes(spec: Pick<InviteSpec, "task" | "now" | "timezone" | "allDay">): {
  start: Date;
  end: Date;
  allDay: boolean;
} {
  const { task, now } = spec;
  const due = typeof task.due_date === "number" ? new Date(task.due_date) : undefined;
  if (!due) {
    const day = localDate(now, spec.timezone);
    return { start: day, end: addDays(day, 1), allDay: true };
  }
  if (spec.allDay) {
    const first = localDate(now < due ? now : due, spec.timezone);
    return { start: first, end: addDays(localDate(due, spec.timezone), 1), allDay: true };
  }
  const init = typeof task.init_date === "number" ? new Date(task.init_date) : undefined;
  let start = init && init < due ? init : now;
  if (start >= due) start = new Date(due.getTime() - HOUR); // overdue: the hour before it was due
  return { start, end: due, allDay: false };
}

/** Date formatters by time zone (one is costly to build; a config has one or two zones). */
const dayFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * The calendar date of `instant` in `timeZone`, as a Date at local midnight of the process:
 * ical-generator writes all-day dates from the process's local calendar fields.
 */
function localDate(instant: Date, timeZone: string): Date {
  let format = dayFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    });
    dayFormats.set(timeZone, format);
  }
  const parts = format.formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return new Date(get("year"), get("month") - 1, get("day"));
}

function addDays(date: Date, days: number): Date {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
}
