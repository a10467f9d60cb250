/**
 * bench/accept-server.ts DIR: the whole appliance (MQTT, MQTT/TLS, HTTP, HTTPS, OPC UA) on free
 * loopback ports with the default accept pool, one device credential and a fleet of 1 000, in its
 * own process (its fds and memory are its own). Prints one JSON line `ready {...}` with the ports
 * and credentials; answers `stats` on stdin with the pool's counters, `gc` with its RSS and JS heap after a full collection.
 */
import { benchAdminEnv, startApplianceHere } from "./lib/appliance.ts";

const FLEET = Number(process.env.BENCH_FLEET ?? 1000);
const app = await startApplianceHere({
  dataDir: process.argv[2]!,
  ports: { https: 0, mqtts: 0, opcua: 0 },
  env: benchAdminEnv,
});
const device = await app.core.credentials.create({ type: "mqtt", username: "bench-device" });
const fleet = await app.core.credentials.createMany(
  Array.from({ length: FLEET }, (_, i) => ({ type: "mqtt" as const, username: `fleet-${i}` })),
);
const mqtts = (
  app.listeners.find((l) => l.type === "mqtt") as unknown as { tlsAddress(): { port: number } }
).tlsAddress().port;
console.log(
  `ready ${JSON.stringify({
    mqtt: app.address("mqtt")!.port,
    mqtts,
    http: app.address("http")!.port,
    https: app.address("https")!.port,
    opcua: app.address("opcua")!.port,
    device: { username: "bench-device", password: device.password },
    fleet: fleet.map((f) => ({ username: f.integration.username, password: f.password })),
  })}`,
);
for await (const line of console) {
  if (line.trim() === "gc") {
    Bun.gc(true);
    const m = process.memoryUsage();
    console.log(`gc ${m.rss} ${m.heapUsed}`);
  }
  if (line.trim() === "stats") {
    console.log(
      `stats ${JSON.stringify({
        size: app.pool.size,
        silent: app.pool.silentCount,
        evicted: app.pool.closed("evicted"),
        deadline: app.pool.closed("deadline"),
        refused: app.pool.closed("evicted-spoke"),
        sessions: app.core.sessions.size,
      })}`,
    );
  }
}
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
