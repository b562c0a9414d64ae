/**
 * The agent's busiest outgoing frames (each action's reply SEND and its ACK) as bytes,
 * written straight to the connection's socket: the same bytes as @stomp/stompjs's
 * `FrameImpl.serialize` on a STOMP 1.2 connection (the command, the headers in their order with
 * escaped values, `content-length` for a body, the body, NUL), made in one pass.
 *
 * Why not stompjs's `publish` and `ack`: each frame becomes a FrameImpl whose text is built
 * with every header value through four regular-expression replaces, and whose body is
 * encoded once to count its bytes and once more by the socket; this writer takes about half
 * that time (bench/stomp_frames.ts). tests/stomp_frame_parser_test.ts holds the two side
 * by side for plain and hostile headers and bodies.
 */

const encoder = new TextEncoder();

/**
 * A header value escaped as STOMP 1.2 asks (`\` first, as stompjs does). ActiveMQ's
 * message ids hold colons, so every ACK has some: plain replaces, no regular expression.
 */
function escapeValue(value: string): string {
  if (!/[\\\r\n:]/.test(value)) return value;
  if (value.includes("\\")) value = value.replaceAll("\\", "\\\\");
  if (value.includes("\r")) value = value.replaceAll("\r", "\\r");
  if (value.includes("\n")) value = value.replaceAll("\n", "\\n");
  return value.replaceAll(":", "\\c");
}

/**
 * One frame of a STOMP 1.2 connection. A body (text) gets its `content-length`; a
 * `content-length` among `headers` is left out (the body's own is the one that counts).
 */
export function frameBytes(
  command: string,
  headers: Record<string, string>,
  body = "",
): Uint8Array {
  let head = command + "\n";
  for (const name of Object.keys(headers)) {
    if (name === "content-length") continue;
    head += `${name}:${escapeValue(String(headers[name]))}\n`;
  }
  if (body === "") return encoder.encode(head + "\n\0");
  return encoder.encode(`${head}content-length:${utf8Length(body)}\n\n${body}\0`);
}

/** The length of `text` in UTF-8 (a lone surrogate counts as U+FFFD, as TextEncoder writes it). */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // a pair: 4 bytes for its 2 code units
        i++;
      } else bytes += 2; // lone high surrogate: U+FFFD, 3 bytes
    } else bytes += 2; // the rest of the BMP, and a lone surrogate (U+FFFD): 3 bytes
  }
  return bytes;
}
