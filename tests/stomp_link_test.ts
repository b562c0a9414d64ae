import { assert, assertEquals } from "./support/assert.ts";
import { waitUntil } from "./support/wait.ts";
import { StompLink, type StompLinkOptions } from "../mod/stomp/link.ts";

/**
 * A scripted STOMP server on 127.0.0.1: records the frames (and the raw text) it gets, answers
 * CONNECTED, and a RECEIPT for a frame that asks for one.
 */
function fakeStompServer(connected: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const frames: string[] = [];
  let raw = "";
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        let buffer = "";
        const decoder = new TextDecoder();
        try {
          for await (const chunk of conn.readable) {
            const text = decoder.decode(chunk);
            raw += text;
            buffer += text;
            while (buffer.includes("\0")) {
              const end = buffer.indexOf("\0");
              const frame = buffer.slice(0, end).replace(/^\n+/, "");
              buffer = buffer.slice(end + 1);
              frames.push(frame);
              if (frame.startsWith("CONNECT")) {
                await conn.write(new TextEncoder().encode(connected));
              }
              const receipt = /^receipt:(.*)$/m.exec(frame)?.[1];
              if (receipt && !frame.startsWith("CONNECT")) {
                await conn.write(new TextEncoder().encode(`RECEIPT\nreceipt-id:${receipt}\n\n\0`));
              }
            }
          }
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    frames,
    raw: () => raw,
    connections: () => conns.length,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

/** A started link to a fakeStompServer answering `connected`; both are stopped after `fn`. */
async function withLink(
  connected: string,
  options: Omit<StompLinkOptions, "target">,
  fn: (link: StompLink, server: ReturnType<typeof fakeStompServer>) => void | Promise<void>,
): Promise<void> {
  const server = fakeStompServer(connected);
  const link = new StompLink({ target: { hostname: "127.0.0.1", port: server.port }, ...options });
  try {
    await link.start();
    await fn(link, server);
  } finally {
    await link.stop();
    server.close();
  }
}

Deno.test({
  name: "the CONNECT frame is what the Action Module expects: STOMP 1.2, login, heart-beat 0,15000",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const connected = "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0";
    const options = { login: "key-id", passcode: "key-secret", vhost: "soar.example.com" };
    await withLink(connected, options, (_link, server) => {
      const connect = server.frames.find((f) => f.startsWith("CONNECT"))!;
      const headers = Object.fromEntries(
        connect.split("\n").slice(1).filter(Boolean).map((l) => {
          const i = l.indexOf(":");
          return [l.slice(0, i), l.slice(i + 1)];
        }),
      );
      assertEquals(headers["accept-version"], "1.2,1.1,1.0");
      assertEquals(headers["host"], "soar.example.com");
      assertEquals(headers["login"], "key-id");
      assertEquals(headers["passcode"], "key-secret");
      assertEquals(headers["heart-beat"], "0,15000");
      assert(!("client-id" in headers), "no client-id header");
    });
  },
});

Deno.test({
  name: "a reply and its ACK go out as STOMP 1.2 frames, the broker's RECEIPT confirms them, " +
    "and an EOL answers the RECEIPT at once (its TCP ACK must not wait for the delayed-ACK timer)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const connected = "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0";
    await withLink(connected, { login: "l", passcode: "p" }, async (link, server) => {
      const confirmed = Promise.withResolvers<void>();
      const delivery = {
        headers: { "message-id": "ID:b-1:1", ack: "ID:b-1:1", subscription: "actions.201.q" },
        body: new Uint8Array(),
        generation: 1,
      };
      const reply = {
        destination: "/queue/acks.201.q",
        headers: { "correlation-id": "invid:7" },
        body: '{"message":"done ✓"}',
      };
      const sent = link.ackAndSend([{ delivery, reply }], { onSent: () => confirmed.resolve() });
      assertEquals(sent, [true]);
      await confirmed.promise;
      assert(
        server.frames.some((f) =>
          f === "SEND\ndestination:/queue/acks.201.q\ncorrelation-id:invid\\c7\n" +
              'content-length:22\n\n{"message":"done ✓"}'
        ),
        server.frames.join("|"),
      );
      assert(
        server.frames.includes("ACK\nid:ID\\cb-1\\c1\nsubscription:actions.201.q\n\n"),
        server.frames.join("|"),
      );
      // The confirmation is an empty transaction: BEGIN with the receipt, ABORT; then the EOL.
      const abort = server.raw().lastIndexOf("ABORT\n");
      assert(abort > server.raw().lastIndexOf("BEGIN\n"), server.raw());
      await waitUntil(
        "an EOL follows the frames after the RECEIPT",
        () => server.raw().slice(abort).endsWith("\0\n"),
        5_000,
        10,
      );
    });
  },
});

Deno.test({
  name:
    "a broker that stops sending heartbeats is declared dead after twice the interval, and the link reconnects",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // The server promises heartbeats every 100 ms and then sends nothing.
    const server = fakeStompServer("CONNECTED\nversion:1.2\nheart-beat:100,0\n\n\0");
    let reconnected = Promise.withResolvers<void>();
    let connects = 0;
    const link = new StompLink({
      target: { hostname: "127.0.0.1", port: server.port },
      login: "l",
      passcode: "p",
      heartbeatIncomingMs: 100,
      backoffMs: [10],
    });
    link.onConnected(() => {
      if (++connects === 2) reconnected.resolve();
    });
    try {
      const started = Date.now();
      await link.start();
      await reconnected.promise;
      const elapsed = Date.now() - started;
      assertEquals(server.connections(), 2);
      // Not before 2x the interval (the grace for late heartbeats).
      assert(elapsed >= 200, `declared dead after ${elapsed} ms`);
      assertEquals(link.reconnects, 1);
    } finally {
      reconnected = Promise.withResolvers<void>();
      await link.stop();
      server.close();
    }
  },
});

Deno.test({
  name: "reconnect backoff is about 1 s, 4 s, 16 s, then every 60 s, with jitter",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (closed.addr as Deno.NetAddr).port;
    closed.close(); // nothing listens: every attempt is refused
    const waits: number[] = [];
    const enough = Promise.withResolvers<void>();
    // No jitter first, then alternately the jitter's extremes (-20 %, +20 %).
    const randoms = [0.5, 0, 1, 0, 1, 0];
    const link = new StompLink({
      target: { hostname: "127.0.0.1", port },
      login: "l",
      passcode: "p",
      random: () => randoms[waits.length] ?? 0.5,
      sleep: (ms) => {
        waits.push(ms);
        if (waits.length === 6) enough.resolve();
        return Promise.resolve();
      },
    });
    void link.start().catch(() => {});
    await enough.promise;
    await link.stop();
    assertEquals(waits, [1_000, 3_200, 19_200, 48_000, 72_000, 48_000]);
  },
});
