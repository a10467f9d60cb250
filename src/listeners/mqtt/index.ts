import { join } from "node:path";
import { option } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import type { HelpContext } from "../../lib/pages.ts";
import { createMqttListener, defaultStoreLimits, type MqttOptions } from "./broker.ts";
import { mqttHelp } from "./help.ts";

export { connackFor, createMqttListener } from "./broker.ts";

const d = defaultStoreLimits;

/** mqttListener: the broker; VRPC agents and clients are MQTT clients of it, so it admits VRPC integrations too. */
export const mqttListener = defineListener<Omit<MqttOptions, "host">>()({
  type: "mqtt",
  accepts: ["mqtt", "vrpc"],
  options: {
    mqttPort: option.port("MQTT broker", "1883"),
    mqttsPort: option.port("MQTT over TLS", "8883"),
    mqttWs: option.bool("MQTT over WebSockets at /mqtt on the HTTP(S) ports", "true"),
    mqttMaxConnections: option.count("logged-in MQTT connections at most", "10000", 1, 1_000_000),
    mqttMaxIntegrationConnections: option.count(
      "logged-in MQTT connections of one integration at most (0 = half of --mqtt-max-connections)",
      "0",
      0,
      1_000_000,
    ),
    mqttMaxSessionExpiry: option.count(
      "longest a persistent session outlives its connection: MQTT 5 session expiry granted, and the expiry of " +
        "a 3.1.1 session with clean session off (0 = no limit)",
      "86400",
      0,
      4_294_967_295,
      "SECONDS",
    ),
    mqttMaxPacket: option.count("largest MQTT packet accepted", "1048576", 64, 268_435_455, "BYTES"),
    mqttMaxConnect: option.count(
      "largest CONNECT accepted: what one socket may hold before its login (will, properties, credentials)",
      "65536",
      64,
      268_435_455,
      "BYTES",
    ),
    mqttMaxClientId: option.count(
      "longest client id accepted, every protocol level (CONNACK 2, MQTT 5: 0x85)",
      "128",
      23,
      65_535,
      "CHARS",
    ),
    mqttMaxSessions: option.count(
      "persistent sessions stored per integration; past it the one offline longest is dropped",
      String(d.maxSessionsPerIntegration),
      1,
      1_000_000,
    ),
    mqttMaxQueued: option.count(
      "messages queued per persistent session; past it the oldest is dropped",
      String(d.maxQueuedMessages),
      1,
      100_000_000,
    ),
    mqttMaxQueuedBytes: option.count(
      "bytes queued per persistent session; past it the oldest messages are dropped",
      String(d.maxQueuedBytes),
      1024,
      2 ** 40,
      "BYTES",
    ),
    mqttMaxSubscriptions: option.count(
      "subscriptions one MQTT session holds at most; past it SUBACK 0x97 (MQTT 5) / 0x80",
      String(d.maxSubscriptionsPerSession),
      1,
      1_000_000,
    ),
    mqttMaxIntegrationSubscriptions: option.count(
      "subscriptions the stored (persistent) sessions of one integration hold together at most; past it SUBACK " +
        "0x97 (MQTT 5) / 0x80",
      String(d.maxSubscriptionsPerIntegration),
      1,
      100_000_000,
    ),
    mqttStoreMaxBytes: option.count(
      "what broker.db holds at most (retained messages, sessions, queues); past it new queued messages and " +
        "new retained topics are dropped",
      String(d.maxStoreBytes),
      1024 * 1024,
      2 ** 44,
      "BYTES",
    ),
    mqttStoreMaxIntegrationBytes: option.count(
      "what one integration may hold of broker.db (its retained topics, persistent sessions, wills); past it its " +
        "new retained topics and wills are refused (MQTT 5 0x97, HTTP 503); its sessions' queues have as much " +
        "again, past it nothing more is queued for it (0 = an eighth of --mqtt-store-max-bytes)",
      String(d.maxIntegrationBytes),
      0,
      2 ** 44,
      "BYTES",
    ),
  },
  parseConfig: (o) =>
    o.mqttPort === null
      ? null
      : {
          port: o.mqttPort,
          tlsPort: o.mqttsPort,
          websocketPath: o.mqttWs ? "/mqtt" : undefined,
          maxConnections: o.mqttMaxConnections,
          maxIntegrationConnections: o.mqttMaxIntegrationConnections,
          maxPacketBytes: o.mqttMaxPacket,
          maxConnectBytes: o.mqttMaxConnect,
          maxSessionExpirySeconds: o.mqttMaxSessionExpiry,
          maxClientIdLength: o.mqttMaxClientId,
          store: {
            maxSessionsPerIntegration: o.mqttMaxSessions,
            maxQueuedMessages: o.mqttMaxQueued,
            maxQueuedBytes: o.mqttMaxQueuedBytes,
            maxStoreBytes: o.mqttStoreMaxBytes,
            maxIntegrationBytes: o.mqttStoreMaxIntegrationBytes,
            maxSubscriptionsPerSession: o.mqttMaxSubscriptions,
            maxSubscriptionsPerIntegration: o.mqttMaxIntegrationSubscriptions,
          },
        },
  create: (deps, options) => {
    const listener = createMqttListener(
      { core: deps.core, log: deps.log, tls: deps.tls, pool: deps.pool },
      // what the broker acknowledged lives in its own file beside gatehouse.db (broker-db.ts says why)
      { ...options, host: deps.bind, store: { ...options.store, file: join(deps.dataDir, "broker.db") } },
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
