import type { ConnectHelp, HelpContext } from "../../lib/pages.ts";
import { shellQuote } from "../../lib/quote.ts";

/**
 * mqttHelp: an MQTT integration's username is the CONNECT user name; the broker's URLs (plain, TLS,
 * WebSockets on the web ports) and mosquitto_pub / mosquitto_sub lines ready to paste.
 */
export function mqttHelp(
  ctx: HelpContext,
  ports: { port?: number; tlsPort?: number; websocketPath?: string },
): ConnectHelp {
  const urls: ConnectHelp["urls"] = [];
  if (ports.port) urls.push({ label: "MQTT", url: `mqtt://${ctx.host}:${ports.port}` });
  if (ports.tlsPort) urls.push({ label: "MQTT over TLS", url: `mqtts://${ctx.host}:${ports.tlsPort}` });
  if (ports.websocketPath) {
    const http = ctx.port("http");
    const https = ctx.port("https");
    if (http) urls.push({ label: "MQTT over WebSockets", url: `ws://${ctx.host}:${http}${ports.websocketPath}` });
    if (https)
      urls.push({ label: "… over secure WebSockets", url: `wss://${ctx.host}:${https}${ports.websocketPath}` });
  }
  const user = shellQuote(ctx.username);
  const at = `-h ${shellQuote(ctx.host)} -p ${ports.port ?? 1883}`;
  return {
    username:
      "The user name the device sends in its MQTT CONNECT, with this password. Its client id is its own choice, " +
      "as long as no other integration holds it. What it may publish and read is set by the topic permissions.",
    urls,
    retry:
      "MQTT: mqtt.js with default options and mosquitto_pub/mosquitto_sub stop at the first refusal; give mqtt.js " +
      "reconnectOnConnackError: true, or start the client again after approving.",
    examples: [
      {
        label: "Publish with mosquitto_pub",
        text: `mosquitto_pub ${at} -u ${user} -P 'PASSWORD' -t 'plant/line1/temp' -m '21.5'`,
      },
      { label: "Read with mosquitto_sub", text: `mosquitto_sub ${at} -u ${user} -P 'PASSWORD' -t 'plant/#' -v` },
    ],
  };
}
