/**
 * bench/flood-server.ts DIR: the whole appliance (MQTT, HTTP with MQTT over WebSockets, OPC UA) on free
 * loopback ports, with the appliance's own password hashing (argon2id at its default cost, what a chosen
 * password gets), in its own process. Integrations with chosen passwords: `flood-target` (the name the
 * strangers guess), `cached-device` (connected once before the flood, so its credential is cached),
 * `fresh-device-N` (never connected: each probe uses a new one, so it needs a hash), `poller` (HTTP, for
 * a long poll) and `ws-device` (MQTT over WebSockets). Prints one JSON line `ready {...}`; answers
 * `stats` on stdin with the accept pool's and the hash line's counters.
 */
import { benchAdminEnv, startApplianceHere } from "./lib/appliance.ts";

const FRESH = Number(process.env.BENCH_FRESH_DEVICES ?? 60);
const app = await startApplianceHere({ dataDir: process.argv[2]!, ports: { opcua: 0 }, env: benchAdminEnv });
const password = (name: string) => `${name}-chosen-password`;
const names = [
  "flood-target",
  "cached-device",
  "ws-device",
  ...Array.from({ length: FRESH }, (_, i) => `fresh-device-${i}`),
];
await app.core.credentials.createMany([
  ...names.map((username) => ({ type: "mqtt" as const, username, password: password(username) })),
  { type: "http" as const, username: "poller", password: password("poller") },
]);
console.log(
  `ready ${JSON.stringify({
    mqtt: app.address("mqtt")!.port,
    http: app.address("http")!.port,
    opcua: app.address("opcua")!.port,
    fresh: FRESH,
  })}`,
);

/** line: the device hash line, where this build exposes it (older builds: undefined) */
const line = () => (app.core.credentials as unknown as { hashLine?: { queued: number; running: number } }).hashLine;
for await (const l of console) {
  if (l.trim() === "stats") {
    const spoke = (app.pool as unknown as { spokeCount?: number }).spokeCount;
    console.log(
      `stats ${JSON.stringify({
        size: app.pool.size,
        silent: app.pool.silentCount,
        spoke: spoke ?? app.pool.size - app.pool.silentCount,
        evicted: app.pool.closed("evicted"),
        deadline: app.pool.closed("deadline"),
        refused: app.pool.closed("evicted-spoke"),
        queued: line()?.queued ?? -1,
        running: line()?.running ?? -1,
        hashes: app.core.credentials.stats.hashVerifies,
        sessions: app.core.sessions.size,
      })}`,
    );
  }
}
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
