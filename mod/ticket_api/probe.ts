/** `agent doctor`'s check of the ticket API: its address, its TLS pair, a token. */
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import type { Config } from "../config/config.ts";
import { findingsOf, limited, message, type ProbeContext } from "../probe/kit.ts";
import type { Finding } from "../probe/report.ts";
import { readStore } from "../store/probe.ts";
import { Tokens } from "./tokens.ts";

/**
 * The ticket API: its address (free, or already served by an agent), its TLS pair (the
 * certificate and key go together, and when it expires), and that a token exists.
 */
export async function checkTicketApi(config: Config, ctx: ProbeContext): Promise<Finding[]> {
  const settings = config.ticketApi!;
  const { list, add } = findingsOf("[ticket_api]");
  const { hostname, port } = settings.listen;
  const scheme = settings.tls ? "https" : "http";
  try {
    Deno.listen({ hostname, port }).close();
    add("listen", "pass", `${hostname}:${port} is free to listen on`);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      const url = `${scheme}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}` +
        `${settings.context}/openapi.json`;
      // Who answers there? Only the document's title is looked at: the certificate is the
      // tls row's business (node:https, because fetch cannot skip verification).
      const ours = await limited(ctx, "ticket API", async (signal) => {
        const get = settings.tls ? httpsGet : httpGet;
        // A `ca` of our own keeps node:tls from loading the system's (which needs sys access).
        const ca = settings.tls ? [await Deno.readTextFile(settings.tls.certFile)] : undefined;
        const text = await new Promise<string>((resolve, reject) => {
          const request = get(url, { rejectUnauthorized: false, ca, signal }, (response) => {
            let body = "";
            response.setEncoding("utf8");
            response.on("data", (chunk: string) => (body += chunk));
            response.on("end", () => resolve(body));
            response.on("error", reject);
          });
          request.on("error", reject);
        });
        return (JSON.parse(text) as { info?: { title?: string } }).info?.title === "Tickets API";
      }).catch(() => false);
      if (ours) add("listen", "pass", `${hostname}:${port}: an agent serves the ticket API there`);
      else {
        add(
          "listen",
          "fail",
          `${hostname}:${port} is taken by something else`,
          "choose another [ticket_api] listen, or stop what uses the port",
        );
      }
    } else {
      add(
        "listen",
        "fail",
        `cannot listen on ${hostname}:${port}: ${message(error)}`,
        "[ticket_api] listen must be an address of this host",
      );
    }
  }
  if (settings.tls) {
    try {
      const cert = await Deno.readTextFile(settings.tls.certFile);
      const key = await Deno.readTextFile(settings.tls.keyFile);
      // The pair must make a TLS listener: a key that is not the certificate's fails here.
      Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key }).close();
      const { X509Certificate } = await import("node:crypto");
      const x509 = new X509Certificate(cert);
      const days = Math.floor((Date.parse(x509.validTo) - ctx.now()) / 86_400_000);
      const names = x509.subjectAltName ?? x509.subject;
      if (days < 0) {
        add("tls", "fail", `${settings.tls.certFile} expired on ${x509.validTo}`, "renew it");
      } else {
        add(
          "tls",
          days < 14 ? "warn" : "pass",
          `certificate for ${names}, valid until ${x509.validTo} (${days} days)`,
          days < 14 ? "renew it soon" : undefined,
        );
      }
    } catch (error) {
      add(
        "tls",
        "fail",
        `${settings.tls.certFile} / ${settings.tls.keyFile}: ${message(error)}`,
        "tls_cert is the PEM certificate chain, tls_key its PEM private key",
      );
    }
  }
  try {
    const count = await readStore(config.agent.store, (store) => new Tokens(store).count()) ?? 0;
    if (count) add("tokens", "pass", `${count} token(s)`);
    else {
      add(
        "tokens",
        "fail",
        "no token: every route but the Swagger UI answers 401",
        "make one: agent ticket-api token create NAME (--scope read for read-only clients)",
      );
    }
  } catch (error) {
    add("tokens", "fail", `cannot read the tokens: ${message(error)}`);
  }
  return list;
}
