/**
 * A forward proxy for tests: HTTP CONNECT tunnels on 127.0.0.1, optionally requiring Basic
 * proxy credentials (407 otherwise), recording each tunnel's target.
 */
export class ConnectProxy {
  /** "host:port" of every tunnel opened. */
  readonly tunnels: string[] = [];
  #listener: Deno.Listener | undefined;
  readonly #credentials: string | undefined;

  constructor(options: { username?: string; password?: string } = {}) {
    this.#credentials = options.username
      ? btoa(`${options.username}:${options.password ?? ""}`)
      : undefined;
  }

  get port(): number {
    return (this.#listener!.addr as Deno.NetAddr).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  start(): this {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    void (async () => {
      for await (const conn of this.#listener!) void this.#serve(conn).catch(() => conn.close());
    })().catch(() => {});
    return this;
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(8192);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (!n) return conn.close();
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
    const reply = (text: string) => conn.write(new TextEncoder().encode(text));
    const target = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(head)?.[1];
    if (!target) {
      await reply("HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
      return conn.close();
    }
    const auth = /^proxy-authorization:\s*Basic\s+(\S+)\s*$/im.exec(head)?.[1];
    if (this.#credentials && auth !== this.#credentials) {
      await reply(
        'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="test"\r\ncontent-length: 0\r\n\r\n',
      );
      return conn.close();
    }
    const [hostname, port] = [
      target.slice(0, target.lastIndexOf(":")),
      target.slice(target.lastIndexOf(":") + 1),
    ];
    const upstream = await Deno.connect({
      hostname: hostname.replace(/^\[|\]$/g, ""),
      port: Number(port),
    });
    this.tunnels.push(target);
    await reply("HTTP/1.1 200 Connection established\r\n\r\n");
    await Promise.allSettled([
      conn.readable.pipeTo(upstream.writable),
      upstream.readable.pipeTo(conn.writable),
    ]);
  }

  stop(): void {
    this.#listener?.close();
  }
}
