/**
 * bun run bench:durable: what "acknowledged means durable" costs. The MQTT listener in its own process
 * (bench/durable-server.ts) with its store on broker.db (group commit, one fsync per batch) against the same
 * store in memory only, in the same run, alternating rounds, medians:
 *   - QoS 1 publishes to a topic an offline persistent session subscribes to (every message is queued for it,
 *     so every PUBACK waits for its batch's fsync): throughput and PUBACK latency p50/p99, 4 publishers with
 *     64 messages in flight each;
 *   - retained QoS 1 publishes to distinct topics: retained stores per second;
 *   - restart with 100 000 messages queued for a persistent session: SIGKILL, then the time until the
 *     listener accepts connections again (process start included), and until the session has all of them.
 * Loopback, raw sockets (bench/lib/raw-mqtt.ts), 64-byte payloads.
 */
import { lineReader, stop } from "./lib/procs.ts";
import { publishQos1Packet, pubackPacket, RawClient, subscribePacket } from "./lib/raw-mqtt.ts";
import { fmt, median, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MESSAGES = Number(process.env.BENCH_DURABLE_MESSAGES ?? 20_000);
const QUEUED = Number(process.env.BENCH_DURABLE_QUEUED ?? 100_000);
const PUBLISHERS = 4;
const WINDOW = 64;
const payload = new Uint8Array(64).fill(0x61);
const server = new URL("./durable-server.ts", import.meta.url).pathname;

type Mode = "durable" | "memory";

interface Server {
  port: number;
  readyMs: number;
  stats(): Promise<{ commits: number; queued: number; fileBytes: number; dataBytes: number; rssMiB: number }>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function start(mode: Mode, dir: string): Promise<Server> {
  const proc = Bun.spawn(["bun", server, mode, dir], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const out = lineReader(proc.stdout);
  const m = await out.until(/ready (\d+) (\d+)\n/);
  return {
    port: Number(m[1]),
    readyMs: Number(m[2]),
    async stats() {
      proc.stdin.write("stats\n");
      proc.stdin.flush();
      return JSON.parse((await out.until(/stats (.*)\n/))[1]!);
    },
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    stop: () => stop(proc),
  };
}

const creds = (i: number) => [`bench-pub-${i}`, `bench-pub-${i}-password`] as const;

/** offlineSession: `bench-sub` subscribes bench/q/# with QoS 1 under a persistent session, then leaves. */
async function offlineSession(port: number) {
  const c = await RawClient.connect(port, "bench-sub-1", "bench-sub", "bench-sub-password", false);
  c.send(subscribePacket("bench/q/#", 1, 1));
  await c.next(9);
  await c.disconnect();
}

/**
 * load: PUBLISHERS publishers send `total` QoS 1 messages together, each keeping WINDOW unacknowledged;
 * returns messages per second and each PUBACK's latency in ms.
 */
async function load(port: number, total: number, topic: (n: number) => string, retain: boolean) {
  const clients = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) => RawClient.connect(port, `pub-${i}-${Date.now()}`, ...creds(i))),
  );
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          const sentAt = new Map<number, number>();
          let id = 0;
          const send = () => {
            if (next >= total) {
              if (sentAt.size === 0) resolve();
              return;
            }
            const n = next++;
            id = (id % 65535) + 1;
            sentAt.set(id, performance.now());
            c.send(publishQos1Packet(topic(n), payload, id, retain));
          };
          c.onPuback = (ackId) => {
            const t = sentAt.get(ackId);
            if (t === undefined) return;
            latencies.push(performance.now() - t);
            sentAt.delete(ackId);
            send();
          };
          for (let i = 0; i < WINDOW; i++) send();
        }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.disconnect()));
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]!;
  return { rate: total / seconds, p50: pct(50), p99: pct(99) };
}

/** drain: the persistent session comes back and acknowledges everything; ms until it has `count`. */
async function drain(port: number, count: number): Promise<number> {
  const started = performance.now();
  const c = await RawClient.connect(port, "bench-sub-1", "bench-sub", "bench-sub-password", false);
  let got = 0;
  await new Promise<void>((resolve) => {
    c.onQos1 = (id) => {
      c.send(pubackPacket(id));
      if (++got === count) resolve();
    };
  });
  const ms = performance.now() - started;
  await c.disconnect();
  return ms;
}

const results: Record<Mode, { rate: number[]; p50: number[]; p99: number[]; retained: number[]; perCommit: number[] }> =
  {
    durable: { rate: [], p50: [], p99: [], retained: [], perCommit: [] },
    memory: { rate: [], p50: [], p99: [], retained: [], perCommit: [] },
  };

for (let round = 0; round < ROUNDS; round++) {
  for (const mode of ["memory", "durable"] as const) {
    const s = await start(mode, scratchDir(`bench-durable-${mode}-`));
    await offlineSession(s.port);
    await load(s.port, 2_000, () => "bench/q/warm", false); // warm-up
    const before = await s.stats();
    const q = await load(s.port, MESSAGES, () => "bench/q/t", false);
    const after = await s.stats();
    const r = await load(s.port, MESSAGES, (n) => `bench/r/${n}`, true);
    await s.stop();
    const o = results[mode];
    o.rate.push(q.rate);
    o.p50.push(q.p50);
    o.p99.push(q.p99);
    o.retained.push(r.rate);
    if (mode === "durable") o.perCommit.push(MESSAGES / Math.max(1, after.commits - before.commits));
    console.log(
      `round ${round + 1} ${mode}: QoS 1 to a persistent session ${fmt(q.rate)} msg/s (p50 ${fmt(q.p50, 2)} ms, ` +
        `p99 ${fmt(q.p99, 2)} ms), retained ${fmt(r.rate)}/s` +
        (mode === "durable"
          ? `, ${fmt(MESSAGES / Math.max(1, after.commits - before.commits), 1)} messages per commit`
          : ""),
    );
  }
}

// Restart with QUEUED messages waiting for a persistent session (durable only: in memory they are gone).
const dir = scratchDir("bench-durable-restart-");
const first = await start("durable", dir);
await offlineSession(first.port);
await load(first.port, QUEUED, () => "bench/q/t", false);
const filled = await first.stats();
await first.kill();
const wall = performance.now();
const again = await start("durable", dir);
const restartMs = performance.now() - wall;
const restored = await again.stats();
const drainMs = await drain(again.port, QUEUED);
await again.stop();
// the baseline: the same start with nothing to load (its integrations made by a first start, as above)
const emptyDir = scratchDir("bench-durable-empty-");
await (await start("memory", emptyDir)).stop();
const empty = await start("memory", emptyDir);
const emptyReadyMs = empty.readyMs;
await empty.stop();
console.log(
  `restart after SIGKILL with ${fmt(restored.queued)} of ${fmt(QUEUED)} queued (broker.db ${fmt(filled.fileBytes / 1048576, 1)} MiB): ` +
    `ready ${fmt(again.readyMs)} ms after process start (${fmt(restartMs)} ms wall; empty, in memory: ${fmt(emptyReadyMs)} ms), ` +
    `RSS ${restored.rssMiB} MiB, all ${fmt(QUEUED)} delivered ${fmt(drainMs)} ms after reconnecting`,
);

const d = results.durable;
const m = results.memory;
const rows: Row[] = [
  {
    bench: "durable",
    measure: "QoS 1 to a persistent session, msg/s (PUBACK after fsync)",
    baselineName: "in memory",
    baseline: fmt(median(m.rate)),
    gatehouse: fmt(median(d.rate)),
    ratio: median(d.rate) / median(m.rate),
  },
  {
    bench: "durable",
    measure: "PUBACK latency p50, ms",
    baselineName: "in memory",
    baseline: fmt(median(m.p50), 2),
    gatehouse: fmt(median(d.p50), 2),
    ratio: median(m.p50) / median(d.p50),
  },
  {
    bench: "durable",
    measure: "PUBACK latency p99, ms",
    baselineName: "in memory",
    baseline: fmt(median(m.p99), 2),
    gatehouse: fmt(median(d.p99), 2),
    ratio: median(m.p99) / median(d.p99),
  },
  {
    bench: "durable",
    measure: "retained QoS 1 stores/s",
    baselineName: "in memory",
    baseline: fmt(median(m.retained)),
    gatehouse: fmt(median(d.retained)),
    ratio: median(d.retained) / median(m.retained),
  },
  {
    bench: "durable",
    measure: `ready after SIGKILL with ${fmt(QUEUED)} queued, ms from process start`,
    baselineName: "empty, in memory",
    baseline: fmt(emptyReadyMs),
    gatehouse: fmt(again.readyMs),
    ratio: emptyReadyMs / again.readyMs,
    goal: `${fmt(median(d.perCommit), 1)} msgs/commit`,
  },
];
report(rows);
if (restored.queued !== QUEUED) {
  console.error(`bench: ${restored.queued} of ${QUEUED} queued messages came back after SIGKILL`);
  process.exit(1);
}
