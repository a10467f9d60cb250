/**
 * bench/broker.ts MODE: one broker in its own process, so the load generator's CPU is not counted.
 *   baseline  - aedes with its defaults (no authentication at all)
 *   gatehouse - the Gatehouse MQTT listener with the credential core, production argon2 cost
 * Prints `ready <port>`; answers `cpu` on stdin with `cpu <user+system microseconds>`.
 */
import { Aedes } from "aedes";
import { createServer } from "node:net";
import { openDataDir } from "../src/db/data-dir.ts";
import { AcceptPool } from "../src/core/accept-pool.ts";
import { createCore } from "../src/core/index.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { acceptsTable } from "../src/listeners/index.ts";
import { createMqttListener } from "../src/listeners/mqtt/index.ts";
import { scratchDir } from "./lib/scratch.ts";

const mode = process.argv[2];
const credentials = Number(process.argv[3] ?? 50);
let port: number;

if (mode === "baseline") {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as { port: number }).port;
} else {
  const db = openDataDir(scratchDir("gatehouse-bench-"));
  const core = createCore(db, silentLogger, { accepts: acceptsTable() });
  core.start();
  for (let i = 0; i < credentials; i++)
    await core.credentials.create({ type: "mqtt", username: `bench-${i}`, password: `bench-password-${i}` });
  // for bench/vrpc.ts: an agent and a client of domain `bench`
  await core.credentials.create({ type: "vrpc", username: "bench/agent", password: "bench-agent-password" });
  await core.credentials.create({ type: "vrpc", username: "bench/client", password: "bench-client-password" });
  // the appliance's default pool (a benchmark connects far fewer at once)
  const pool = new AcceptPool({ capacity: 2000, timeoutMs: 10_000 });
  const listener = createMqttListener(
    { core, log: silentLogger, pool },
    { host: "127.0.0.1", port: 0, maxConnections: 100_000 },
  );
  await listener.start();
  port = listener.address()!.port;
}

console.log(`ready ${port}`);
for await (const line of console) {
  if (line.trim() === "cpu") {
    const u = process.cpuUsage();
    console.log(`cpu ${u.user + u.system}`);
  }
  if (line.trim() === "exit") process.exit(0); // lets --cpu-prof write its profile
}
