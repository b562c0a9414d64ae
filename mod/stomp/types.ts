/** The STOMP connection as the action listener uses it (StompLink implements it). */
/** A received MESSAGE frame, tagged with the connection it came on. */
export interface Delivery {
  headers: Record<string, string>;
  body: Uint8Array;
  /** Which connection delivered it: an ACK only makes sense on the same one. */
  generation: number;
}

/** A frame to send. */
export interface OutgoingFrame {
  destination: string;
  headers?: Record<string, string>;
  body: string;
}

/** A subscription, re-made after every reconnect. */
export interface SubscriptionSpec {
  destination: string;
  headers: Record<string, string>;
  onMessage(delivery: Delivery): void;
}

/** A connection that stays up (reconnecting underneath) and re-subscribes on its own. */
export interface StompTransport {
  readonly connected: boolean;
  readonly reconnects: number;
  subscribe(spec: SubscriptionSpec): void;
  /** Sends a frame; with `onReceipt`, asks for a RECEIPT. Throws when not connected. */
  publish(frame: OutgoingFrame, onReceipt?: () => void): void;
  /** ACKs plus replies as one batch (see StompLink); per item false when its connection is gone. */
  ackAndSend(
    items: { delivery: Delivery; reply?: OutgoingFrame | undefined }[],
    options?: { transaction?: boolean; onSent?: () => void },
  ): boolean[];
  /** Called after every (re)connect. */
  onConnected(listener: () => void): void;
  /** Called when an established connection is lost. */
  onDisconnected(listener: () => void): void;
  stop(): Promise<void>;
}
