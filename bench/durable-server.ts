/**
 * bench/durable-server.ts MODE DIR: the Gatehouse MQTT listener alone in its own process, on data dir DIR.
 *   durable - its store writes broker.db (group commit, fsync per batch), as the appliance runs
 *   memory  - the same store without a file (what the appliance did before: everything in memory)
 * Integrations `bench-pub-0..7` and `bench-sub` (password = username) are made on first start. Prints
 * `ready <port> <ms from process start>`; answers `stats` on stdin with `stats <json>`.
 */
import { AcceptPool } from "../src/core/accept-pool.ts";
import { createCore } from "../src/core/index.ts";
import { openDataDir } from "../src/db/data-dir.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { acceptsTable } from "../src/listeners/index.ts";
import { createMqttListener } from "../src/listeners/mqtt/index.ts";

const mode = process.argv[2];
const dir = process.argv[3]!;
if (mode !== "durable" && mode !== "memory") throw new Error("usage: durable-server.ts durable|memory DIR");

const db = openDataDir(dir);
const core = createCore(db, silentLogger, { accepts: acceptsTable() });
core.start();
for (const username of [...Array.from({ length: 8 }, (_, i) => `bench-pub-${i}`), "bench-sub"])
  if (!core.credentials.findByUsername(username))
    await core.credentials.create({ type: "mqtt", username, password: `${username}-password` });
const pool = new AcceptPool({ capacity: 2000, timeoutMs: 10_000 });
const listener = createMqttListener(
  { core, log: silentLogger, pool },
  {
    host: "127.0.0.1",
    port: 0,
    maxConnections: 100_000,
    // the benchmark queues far more than one device may by default
    store: {
      file: mode === "durable" ? `${dir}/broker.db` : undefined,
      maxQueuedMessages: 10_000_000,
      maxQueuedBytes: 2 ** 40,
      maxStoreBytes: 2 ** 40,
    },
  },
);
await listener.start();
console.log(`ready ${listener.address()!.port} ${Math.round(performance.now())}`);

for await (const line of console) {
  const cmd = line.trim();
  if (cmd === "stats") {
    const text = await core.metrics.render();
    const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? 0);
    console.log(
      `stats ${JSON.stringify({
        commits: value('gatehouse_mqtt_store_commits_total\\{result="ok"\\}'),
        queued: value("gatehouse_mqtt_queued_messages"),
        fileBytes: value('gatehouse_mqtt_store_bytes\\{kind="file"\\}'),
        dataBytes: value('gatehouse_mqtt_store_bytes\\{kind="data"\\}'),
        rssMiB: Math.round(process.memoryUsage().rss / 1048576),
      })}`,
    );
  }
  if (cmd === "exit") {
    await listener.stop();
    process.exit(0);
  }
}
