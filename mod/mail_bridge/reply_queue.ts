/**
 * Comments the way back should look at on its next pass, queued by whoever saw them first
 * (the Jira webhook, an Automation mail); the reply pass (./replies.ts) takes them in order.
 */
import type { Store } from "../store/store.ts";

/** Where a comment came from, for the queue (webhook, Automation mail). */
export interface QueuedComment {
  key: string;
  id: string;
  via: "webhook" | "automation";
}

/** Comments waiting for the next reply pass. */
export const QUEUE_PREFIX = ["replies", "queue"];
const queueKey = (id: string) => [...QUEUE_PREFIX, id];

/** Queues a comment for the next reply pass (a webhook or an Automation mail saw it). */
export async function queueComment(store: Store, comment: QueuedComment): Promise<void> {
  await store.set(queueKey(comment.id), comment, { ttlMs: 7 * 86_400_000 });
}
