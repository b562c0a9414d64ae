/**
 * The calendar processor: task owner / due date changes become calendar invites that
 * calendars accept and update (see ../shared/docs: the old example's defects are each
 * handled here). One stable UID per task, a SEQUENCE kept in the store, CANCEL to the
 * previous owner, owner + due date changed together -> one invite (debounce), closed or
 * deleted tasks cancelled, every mail sent at most once per message.
 */
import { compile } from "html-to-text";
import type { TaskCalendarConfig } from "../config/config.ts";
import {
  type ActionContext,
  type ActionData,
  ActionError,
  type Processor,
  type TaskDTO,
} from "../action_module/types.ts";
import { RestError, type UserDTO } from "../resilient/types.ts";
import { parseAddress, requireAddress } from "../smtp/address.ts";
import { capText, stripControls } from "../text/clean.ts";
import type { Mailer, SendResult } from "../smtp/types.ts";
import { buildInvite, taskUid } from "./invite.ts";

/** What the store remembers per task. */
interface TaskState {
  sequence: number;
  /** Who holds the current invite; undefined after a CANCEL. */
  owner?: Person | undefined;
}

interface Person {
  id: number;
  email: string;
  name: string;
}

type Owner = { kind: "user"; person: Person } | { kind: "group"; id: number; name: string };

/**
 * What this message will do, recorded with its first mail so that a re-run after a crash does
 * the same.
 */
type Plan =
  | { kind: "invite"; sequence: number; owner: Person; cancel?: Person | undefined }
  | {
    kind: "cancel";
    sequence: number;
    cancel: Person;
    why: "closed" | "no-owner" | "group";
    group?: string;
  }
  | { kind: "nothing"; message: string };

/** A plan and the outcome of its first mail (the CANCEL when there is one), recorded together. */
interface FirstMail {
  plan: Plan;
  sent?: SendResult;
}

/** What the processor needs besides its config. */
export interface CalendarDeps {
  mailer: Mailer;
  /** The platform's host (for UIDs and task links), and its port. */
  platformHost: string;
  platformPort?: number;
  now?: () => Date;
  /** How long owner lookups are cached. */
  ownerCacheMs?: number;
}

const OWNER_CACHE_MS = 5 * 60_000;
const MARKER_HEADER = "X-Agent-Origin";
/** Task and incident names beyond this are cut in subjects, summaries and text. */
const MAX_NAME = 200;
/** Task instructions beyond this are cut in the invite (the task has them all). */
const MAX_INSTRUCTIONS = 8_000;

/** A name from a platform record, fit for a header or an iCalendar property. */
function shortText(text: string | null | undefined): string | undefined {
  if (text === null || text === undefined) return undefined;
  return capText(stripControls(String(text), { oneLine: true }), MAX_NAME);
}

/** A person's display name (no control characters or quotes; `user ID` when empty). */
function personName(text: string | undefined, id: number): string {
  return shortText(text)?.replace(/"/g, "'") || `user ${id}`;
}

/** Task instructions (HTML) as text; compiled once (html-to-text builds its selectors then). */
const htmlToText = compile({ wordwrap: 100 });

/** Instruction texts remembered, and the longest one remembered (characters of HTML). */
const INSTRUCTIONS_KEPT = 32;
const INSTRUCTIONS_KEPT_MAX = 8 * 1024;
const instructionTexts = new Map<string, string>();

/**
 * Task instructions as plain text. Playbooks create tasks from templates, so the same
 * instructions come again and again: the last few are remembered (parsing the HTML was a
 * tenth of an invite's CPU).
 */
function instructionsText(html: string): string {
  let text = instructionTexts.get(html);
  if (text !== undefined) return text;
  text = stripControls(htmlToText(html)).trim();
  if (html.length <= INSTRUCTIONS_KEPT_MAX) {
    if (instructionTexts.size >= INSTRUCTIONS_KEPT) {
      instructionTexts.delete(instructionTexts.keys().next().value!);
    }
    instructionTexts.set(html, text);
  }
  return text;
}

/** Builds the processor for `[taskcalendar]`. */
export function calendarProcessor(config: TaskCalendarConfig, deps: CalendarDeps): Processor {
  const now = deps.now ?? (() => new Date());
  // Made once: building an Intl formatter costs more than the rest of an invite's text.
  const dueFormat = new Intl.DateTimeFormat("en-GB", {
    dateStyle: "full",
    timeStyle: "short",
    timeZone: config.timezone,
  });
  const owners = new Map<number, { owner: Owner; until: number }>();
  const portPart = deps.platformPort && deps.platformPort !== 443 ? `:${deps.platformPort}` : "";
  const taskUrl = (task: TaskDTO) =>
    `https://${deps.platformHost}${portPart}/#incidents/${task.inc_id}?tab=tasks&task_id=${task.id}`;

  async function lookupOwner(id: number, ctx: ActionContext): Promise<Owner> {
    const cached = owners.get(id);
    if (cached && cached.until > Date.now()) return cached.owner;
    if (!ctx.rest) {
      throw new ActionError(`Cannot look up task owner ${id}: no platform REST API is configured`);
    }
    let owner: Owner;
    try {
      const user = await ctx.rest.get<UserDTO>(`/users/${id}`, { signal: ctx.signal });
      const name = personName(
        user.display_name || [user.fname, user.lname].filter(Boolean).join(" "),
        id,
      );
      if (!user.email) {
        throw new ActionError(`Task owner ${id} (${name}) has no email address; no invite sent`);
      }
      // One plain address or nothing: a name, a list or a header smuggled into the field
      // must not become a recipient.
      const email = parseAddress(user.email);
      if (!email.ok) {
        throw new ActionError(
          `Task owner ${id} (${name}) has an unusable email address ${
            JSON.stringify(String(user.email).slice(0, 120))
          }: ${email.problem}; no invite sent`,
        );
      }
      owner = { kind: "user", person: { id, email: email.address, name } };
    } catch (error) {
      if (!(error instanceof RestError && error.status === 404)) throw error;
      try {
        const group = await ctx.rest.get<{ id: number; name: string }>(`/groups/${id}`, {
          signal: ctx.signal,
        });
        owner = { kind: "group", id, name: group.name };
      } catch (groupError) {
        if (groupError instanceof RestError && groupError.status === 404) {
          throw new ActionError(
            `Task owner ${id} is not a user or group on the platform; no invite sent`,
          );
        }
        throw groupError;
      }
    }
    owners.set(id, { owner, until: Date.now() + (deps.ownerCacheMs ?? OWNER_CACHE_MS) });
    return owner;
  }

  async function plan(
    action: ActionData,
    ctx: ActionContext,
    stored: Promise<TaskState | undefined>,
  ): Promise<Plan> {
    const task = action.task!;
    const state = await stored;
    const sequence = state ? state.sequence + 1 : 0;
    const holder = state?.owner;
    if (task.status === "C" || action.operation_type === "deleted") {
      if (!holder) {
        return {
          kind: "nothing",
          message: `Task ${task.id} is ${closedWord(action)}; no invite had been sent`,
        };
      }
      return { kind: "cancel", sequence, cancel: holder, why: "closed" };
    }
    if (task.owner_id === null || task.owner_id === undefined) {
      if (!holder) return { kind: "nothing", message: "Task has no owner; no invite sent" };
      return { kind: "cancel", sequence, cancel: holder, why: "no-owner" };
    }
    const owner = await lookupOwner(task.owner_id, ctx);
    if (owner.kind === "group") {
      const message =
        `Task owner is the group "${owner.name}"; invites go to people, so no invite was sent`;
      if (!holder) return { kind: "nothing", message };
      return { kind: "cancel", sequence, cancel: holder, why: "group", group: owner.name };
    }
    const cancel = holder && holder.email.toLowerCase() !== owner.person.email.toLowerCase()
      ? holder
      : undefined;
    return { kind: "invite", sequence, owner: owner.person, cancel };
  }

  async function send(
    method: "REQUEST" | "CANCEL",
    person: Person,
    sequence: number,
    action: ActionData,
    ctx: ActionContext,
  ): Promise<SendResult> {
    const uid = taskUid(action.task!, deps.platformHost);
    const at = now();
    const url = taskUrl(action.task!);
    const instructions = action.task!.instr_text
      ? capText(
        instructionsText(String(action.task!.instr_text)),
        MAX_INSTRUCTIONS,
        `\n[... cut; the whole text is on the task: ${url}]`,
      )
      : "";
    const incidentName = shortText(action.task!.inc_name ?? action.incident.name ?? undefined);
    const task = { ...action.task!, name: shortText(action.task!.name) ?? "" };
    const ics = buildInvite({
      method,
      uid,
      sequence,
      task,
      incidentName,
      organizer: { email: config.smtpfrom, name: "IBM SOAR" },
      attendee: { email: person.email, name: person.name },
      url,
      description: [instructions, `Open the task: ${url}`].filter(Boolean).join("\n\n"),
      timezone: config.timezone,
      allDay: config.allDay,
      now: at,
    });
    const due = typeof task.due_date === "number"
      ? dueFormat.format(new Date(task.due_date)) + ` (${config.timezone})`
      : "no due date";
    const incident = `Incident ${task.inc_id}${incidentName ? `: ${incidentName}` : ""}`;
    const text = method === "REQUEST"
      ? [
        `${person.name}, you own this task in IBM SOAR.`,
        "",
        `Task: ${task.name}`,
        incident,
        `Due: ${due}`,
        `Open it: ${url}`,
        ...(instructions ? ["", instructions] : []),
      ].join("\n")
      : [
        `This task is no longer on your calendar.`,
        "",
        `Task: ${task.name}`,
        incident,
        `Link: ${url}`,
      ].join("\n");
    const domain = config.smtpfrom.split("@")[1] ?? deps.platformHost;
    return await deps.mailer.send({
      from: config.smtpfrom,
      to: requireAddress(person.email, `Task owner ${person.id} (${person.name})`),
      subject: `${method === "CANCEL" ? "Cancelled: " : ""}Task: ${task.name} (${incident})`,
      text,
      ics,
      method,
      messageId: `<${uid.split("@")[0]}.seq${sequence}.${method.toLowerCase()}@${domain}>`,
      headers: { [MARKER_HEADER]: "agent-calendar" },
    }, { signal: ctx.signal });
  }

  return {
    name: "calendar",
    queue: config.queue,
    check: (action) => {
      const task = action.task;
      if (!task || typeof task !== "object") {
        return 'the action has no "task" (is the rule on the Task object?)';
      }
      if (typeof task.id !== "number" || typeof task.inc_id !== "number") {
        return "the task has no numeric id / inc_id";
      }
      return undefined;
    },
    orderKey: (action) => `task:${action.task?.inc_id}:${action.task?.id}`,
    ...(config.debounceSeconds > 0
      ? {
        debounce: {
          ms: config.debounceSeconds * 1000,
          key: (action: ActionData) =>
            action.task ? `${action.task.inc_id}:${action.task.id}` : undefined,
          discard: true,
        },
      }
      : {}),
    handle: async (action, ctx) => {
      const task = action.task!;
      // Read while the effect ledger is (one store round trip for both).
      const state = ctx.store.get<TaskState>(stateKey(task));
      state.catch(() => {}); // unused when the plan was recorded; plan() sees a failure
      // The plan is recorded with its first mail (or alone when it sends none): a redelivery
      // after a crash that finds the record does what was planned; one that does not plans
      // afresh, nothing having been recorded as sent. (Named apart from the plan-only record of
      // earlier versions, whose redeliveries plan afresh.)
      const first = await ctx.effect("plan+mail", async (): Promise<FirstMail> => {
        const chosen = await plan(action, ctx, state);
        if (chosen.kind === "nothing") return { plan: chosen };
        const sent = chosen.kind === "cancel" || chosen.cancel
          ? await send("CANCEL", chosen.cancel!, chosen.sequence, action, ctx)
          : await send("REQUEST", chosen.owner, chosen.sequence, action, ctx);
        return { plan: chosen, sent };
      });
      const chosen = first.plan;
      if (chosen.kind === "nothing") return chosen.message;
      const done: string[] = [];
      if (chosen.cancel) {
        done.push(`cancelled the invite of ${chosen.cancel.email}${where(first.sent!)}`);
      }
      if (chosen.kind === "invite") {
        const result = chosen.cancel
          ? await ctx.effect(
            "request",
            () => send("REQUEST", chosen.owner, chosen.sequence, action, ctx),
          )
          : first.sent!;
        done.unshift(
          `sent the invite (SEQUENCE ${chosen.sequence}) to ${chosen.owner.email}${where(result)}`,
        );
      }
      // Recorded with the reply: a crash before it leaves the state as it was, and the
      // redelivery finds the plan and the sends in the effect records.
      ctx.setWithReply(
        stateKey(task),
        {
          sequence: chosen.sequence,
          owner: chosen.kind === "invite" ? chosen.owner : undefined,
        } satisfies TaskState,
      );
      const lead = chosen.kind === "cancel" && chosen.why === "no-owner"
        ? "Task has no owner; "
        : chosen.kind === "cancel" && chosen.why === "group"
        ? `Task owner is the group "${chosen.group}"; `
        : chosen.kind === "cancel"
        ? `Task ${task.id} is ${closedWord(action)}; `
        : `Task ${task.id}: `;
      return lead + done.join("; ");
    },
  };
}

function stateKey(task: Pick<TaskDTO, "id" | "inc_id">): Deno.KvKey {
  return ["calendar", "task", task.inc_id, task.id];
}

function closedWord(action: ActionData): string {
  return action.operation_type === "deleted" ? "deleted" : "closed";
}

function where(result: SendResult): string {
  return result.kind === "file" ? ` (written to ${result.detail})` : "";
}
