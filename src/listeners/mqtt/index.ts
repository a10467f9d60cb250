import { option } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import type { HelpContext } from "../../lib/pages.ts";
import { createMqttListener, type MqttOptions } from "./broker.ts";
import { mqttHelp } from "./help.ts";

export { connackFor, createMqttListener } from "./broker.ts";

/** mqttListener: the broker; VRPC agents and clients are MQTT clients of it, so it admits VRPC integrations too. */
export const mqttListener = defineListener<Omit<MqttOptions, "host">>()({
  type: "mqtt",
  accepts: ["mqtt", "vrpc"],
  options: {
    mqttPort: option.port("MQTT broker", "1883"),
    mqttsPort: option.port("MQTT over TLS", "8883"),
    mqttWs: option.bool("MQTT over WebSockets at /mqtt on the HTTP(S) ports", "true"),
    mqttMaxConnections: option.count("logged-in MQTT connections at most", "10000", 1, 1_000_000),
    mqttMaxSessionExpiry: option.count("MQTT 5: longest session expiry granted", "86400", 0, 4_294_967_295, "SECONDS"),
    mqttMaxPacket: option.count("largest MQTT packet accepted", "1048576", 64, 268_435_455, "BYTES"),
  },
  parseConfig: (o) =>
    o.mqttPort === null
      ? null
      : {
          port: o.mqttPort,
          tlsPort: o.mqttsPort,
          websocketPath: o.mqttWs ? "/mqtt" : undefined,
          maxConnections: o.mqttMaxConnections,
          maxPacketBytes: o.mqttMaxPacket,
          maxSessionExpirySeconds: o.mqttMaxSessionExpiry,
        },
  create: (deps, options) => {
    const listener = createMqttListener(
      { core: deps.core, log: deps.log, tls: deps.tls, pool: deps.pool },
      { ...options, host: deps.bind },
    );
    return Object.assign(listener, {
      help: (ctx: HelpContext) =>
        mqttHelp(ctx, {
          port: listener.address()?.port,
          tlsPort: listener.tlsAddress()?.port,
          websocketPath: options.websocketPath,
        }),
    });
  },
});
