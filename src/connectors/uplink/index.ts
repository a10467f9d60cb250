import { option } from "../../lib/options.ts";
import { defineConnector } from "../connector.ts";
import { UplinkManager, type UplinkOptions } from "./manager.ts";
import { uplinkRoutes } from "./pages.tsx";

/**
 * uplinkConnector: store-and-forward to clustered brokers upstream (EMQX, HiveMQ, VerneMQ, NATS, a cloud
 * IoT hub). The uplinks themselves live in the admin database (page, API, `gatehouse uplinks`); the
 * options here bound every uplink's queue and its reconnects.
 */
export const uplinkConnector = defineConnector<UplinkOptions>()({
  name: "uplink",
  options: {
    uplinkMaxQueueMessages: option.count(
      "messages an uplink's outbox holds at most; past it the oldest go (counted)",
      "5000000",
      1,
      1_000_000_000,
    ),
    uplinkMaxQueueBytes: option.count(
      "bytes (topics and payloads) an uplink's outbox holds at most; past it the oldest go",
      String(1024 ** 3),
      1024 * 1024,
      1024 ** 4,
      "BYTES",
    ),
    uplinkMaxPacket: option.count(
      "largest MQTT packet an uplink takes from its upstream (MQTT 5: told in its CONNECT); a larger one closes the connection",
      "1048576",
      64,
      268_435_455,
      "BYTES",
    ),
    uplinkReconnectMax: option.count(
      "the longest wait between two connection attempts upstream (exponential backoff, full jitter)",
      "30",
      1,
      3600,
      "SECONDS",
    ),
  },
  parseConfig: (o) => ({
    bounds: { maxMessages: o.uplinkMaxQueueMessages, maxBytes: o.uplinkMaxQueueBytes },
    backoff: { baseMs: Math.min(1000, o.uplinkReconnectMax * 1000), maxMs: o.uplinkReconnectMax * 1000 },
    maxPacket: o.uplinkMaxPacket,
  }),
  create(deps, options) {
    const manager = new UplinkManager(deps, options);
    return {
      name: "uplink",
      start: () => manager.start(),
      stop: () => manager.stop(),
      pages: {
        nav: { href: "/uplinks", label: "Uplinks" },
        routes: (kit) => uplinkRoutes(kit, manager, deps.log),
      },
      // An upstream that is down is the uplink's news, not the appliance's: listed, never unready.
      readiness: () => ({
        ready: true,
        detail: {
          ...(manager.outboxProblem ? { outbox: manager.outboxProblem } : {}),
          uplinks: manager.statuses().map((s) => ({
            name: s.name,
            enabled: s.enabled,
            connected: s.connected,
            url: s.url,
            queued: s.queued,
            lastError: s.lastError,
          })),
        },
      }),
    };
  },
});
