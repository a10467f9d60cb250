import { parseBool, parseCount, parsePortOrOff } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import { createMqttListener, type MqttOptions } from "./broker.ts";

export { connackFor, createMqttListener } from "./broker.ts";

/** mqttListener: the broker; VRPC agents and clients are MQTT clients of it, so it admits VRPC integrations too. */
export const mqttListener = defineListener<Omit<MqttOptions, "host">>()({
  type: "mqtt",
  accepts: ["mqtt", "vrpc"],
  configKeys: {
    "mqtt-port": { flag: "--mqtt-port N", env: "GATEHOUSE_MQTT_PORT", help: "MQTT broker (0 = any free port, off = none)", default: "1883" },
    "mqtts-port": { flag: "--mqtts-port N", env: "GATEHOUSE_MQTTS_PORT", help: "MQTT over TLS (off = none)", default: "8883" },
    "mqtt-ws": { flag: "--mqtt-ws BOOL", env: "GATEHOUSE_MQTT_WS", help: "MQTT over WebSockets at /mqtt on the HTTP(S) ports", default: "true" },
    "mqtt-max-connections": { flag: "--mqtt-max-connections N", env: "GATEHOUSE_MQTT_MAX_CONNECTIONS", help: "logged-in MQTT connections at most", default: "10000" },
    "mqtt-max-session-expiry": { flag: "--mqtt-max-session-expiry SECONDS", env: "GATEHOUSE_MQTT_MAX_SESSION_EXPIRY", help: "MQTT 5: longest session expiry granted", default: "86400" },
    "mqtt-max-packet": { flag: "--mqtt-max-packet BYTES", env: "GATEHOUSE_MQTT_MAX_PACKET", help: "largest MQTT packet accepted", default: "1048576" },
  },
  parseConfig(get) {
    const port = parsePortOrOff("mqtt-port", get("mqtt-port")!);
    if (port === null) return null;
    return {
      port,
      tlsPort: parsePortOrOff("mqtts-port", get("mqtts-port")!),
      websocketPath: parseBool("mqtt-ws", get("mqtt-ws")!) ? "/mqtt" : undefined,
      maxConnections: parseCount("mqtt-max-connections", get("mqtt-max-connections")!, 1, 1_000_000),
      maxPacketBytes: parseCount("mqtt-max-packet", get("mqtt-max-packet")!, 64, 268_435_455),
      maxSessionExpirySeconds: parseCount("mqtt-max-session-expiry", get("mqtt-max-session-expiry")!, 0, 4_294_967_295),
    };
  },
  create: (deps, options) => createMqttListener({ core: deps.core, log: deps.log, tls: deps.tls, pool: deps.pool }, { ...options, host: deps.bind }),
});
