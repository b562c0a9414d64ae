/** The STOMP connection as the action listener uses it (StompLink implements it). */
import type { Delivery, SubscriptionSpec } from "./link.ts";

export type { Delivery, SubscriptionSpec };

/** A connection that stays up (reconnecting underneath) and re-subscribes on its own. */
export interface StompTransport {
  readonly connected: boolean;
  readonly reconnects: number;
  subscribe(spec: SubscriptionSpec): void;
  publish(
    frame: { destination: string; headers?: Record<string, string>; body: string },
    onReceipt?: () => void,
  ): void;
  ack(delivery: Delivery): boolean;
  /** ACK plus reply in one transaction; false when the delivery's connection is gone. */
  ackAndSend(
    delivery: Delivery,
    frame: { destination: string; headers?: Record<string, string>; body: string },
    onCommitted?: () => void,
  ): boolean;
  /** Called after every (re)connect. */
  onConnected(listener: () => void): void;
  /** Called when an established connection is lost. */
  onDisconnected(listener: () => void): void;
  stop(): Promise<void>;
}
