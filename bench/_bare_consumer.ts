/**
 * The listener benchmark's baseline, in its own process like the agent: the bare
 * @stomp/stompjs client doing only the wire work of an Action Module consumer, configured
 * like the agent's subscription (STOMP+SSL with the CA, TCP_NODELAY, client-individual
 * ACKs, the same prefetch, a persistent reply per message with its correlation id).
 * Prints "ready" once subscribed, then runs until killed.
 * Args: sslPort user password org caFile prefetch queue...
 */
import { Client, type IMessage } from "@stomp/stompjs";
import { DenoStompSocket } from "../mod/stomp/socket.ts";

const [port, user, password, org, caFile, prefetch, ...queues] = Deno.args;
const caCert = await Deno.readTextFile(caFile!);
const client = new Client({
  webSocketFactory: () =>
    new DenoStompSocket({
      hostname: "127.0.0.1",
      port: Number(port),
      tls: { caCerts: [caCert] },
    }),
  connectHeaders: { login: user!, passcode: password!, host: "127.0.0.1" },
  heartbeatIncoming: 15_000,
  heartbeatOutgoing: 0,
  reconnectDelay: 0,
  debug: () => {},
});
const reply = JSON.stringify({ message_type: 0, message: "ok", complete: true });
client.onConnect = () => {
  for (const queue of queues) {
    const destination = `actions.${org}.${queue}`;
    client.subscribe(destination, (message: IMessage) => {
      client.ack(message.headers["ack"]!, message.headers["subscription"]!);
      client.publish({
        destination: message.headers["reply-to"]!,
        headers: { "correlation-id": message.headers["correlation-id"]!, persistent: "true" },
        body: reply,
      });
    }, { ack: "client-individual", id: destination, "activemq.prefetchSize": prefetch! });
  }
  console.log("ready");
};
client.activate();
