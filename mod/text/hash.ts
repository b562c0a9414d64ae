/** Hashes and secret comparison shared by the bridge, the ticket API and its tokens. */
import { createHash, timingSafeEqual } from "node:crypto";

/** The hex SHA-256 of a text (UTF-8): markers, token hashes, request fingerprints. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Whether two secrets (or their hashes) are equal, compared in constant time. */
export function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
