/**
 * bun run bench:brokers: the MQTT listener side by side with Mosquitto 2 (password file) and bare aedes
 * on Bun (no auth), as the devices see it: a raw-socket load generator (bench/lib/raw-mqtt.ts), the
 * compiled binary with OPC UA off, medians of interleaved rounds. Repeat connects (sequential and 50 at
 * once), QoS 0 fan-in and fan-out, publish latency at 1 000 msg/s, broker CPU per connect, RSS idle and
 * with 1 000 idle clients. Mosquitto is skipped when it is not installed. Loopback only.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { launchAppliance } from "./lib/appliance.ts";
import { cpuMs, hasMosquitto, readyPort, startMosquitto, statusMiB, stop } from "./lib/procs.ts";
import { RawClient, publishPacket } from "./lib/raw-mqtt.ts";
import { fmt, median, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTS = Number(process.env.BENCH_CONNECTS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 50_000);
const IDLE = Number(process.env.BENCH_IDLE_CLIENTS ?? 1000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3000);
const CREDS = 50;
const root = join(import.meta.dir, "..");

interface Broker {
  name: string;
  pid: number;
  port: number;
  creds: { username: string; password: string }[];
  stop(): Promise<void>;
}

async function mosquitto(): Promise<Broker> {
  const creds = Array.from({ length: CREDS }, (_, i) => ({
    username: `dev-${i}`,
    password: `mosquitto-password-${i}`,
  }));
  const m = await startMosquitto(creds);
  return { name: "Mosquitto 2", pid: m.pid, port: m.port, creds, stop: m.stop };
}

const bareAedes = join(scratchDir("bench-aedes-"), "bare-aedes");
async function aedes(): Promise<Broker> {
  const proc = Bun.spawn([bareAedes], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const port = await readyPort(proc, /ready (\d+)\n/);
  const creds = Array.from({ length: CREDS }, (_, i) => ({ username: `dev-${i}`, password: "no-auth" }));
  return { name: "bare aedes", pid: proc.pid, port, creds, stop: () => stop(proc) };
}

const binary = join(root, "dist", "gatehouse");
let gatehouseData: { dir: string; creds: { username: string; password: string }[] } | undefined;

async function gatehouse(): Promise<Broker> {
  if (!gatehouseData) {
    const dir = scratchDir("bench-gatehouse-");
    // the CLI works on an existing database only: a first start makes it, then the fleet is imported
    await (await launchAppliance({ binary, dataDir: join(dir, "data"), cwd: dir })).stop();
    writeFileSync(
      join(dir, "fleet.json"),
      JSON.stringify(Array.from({ length: CREDS }, (_, i) => ({ username: `dev-${i}`, type: "mqtt" }))),
    );
    const imp = Bun.spawnSync(
      [binary, "integrations", "import", join(dir, "fleet.json"), "--data-dir", join(dir, "data"), "--json"],
      { stdout: "pipe", stderr: "inherit" },
    );
    if (imp.exitCode !== 0) throw new Error("import failed");
    gatehouseData = { dir, creds: JSON.parse(imp.stdout.toString()) };
  }
  const app = await launchAppliance({ binary, dataDir: join(gatehouseData.dir, "data"), cwd: gatehouseData.dir });
  return {
    name: "Gatehouse",
    pid: app.pid,
    port: app.ports.mqtt!,
    creds: gatehouseData.creds,
    stop: () => stop(app.proc),
  };
}

let seq = 0;
const login = (b: Broker, i: number) =>
  RawClient.connect(b.port, `c-${seq++}`, b.creds[i % CREDS]!.username, b.creds[i % CREDS]!.password);

async function connects(b: Broker, count: number, width: number) {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await (await login(b, next++)).disconnect();
    }),
  );
  return (count / (performance.now() - t)) * 1000;
}

/** deliveries/s from `pubs` publishers to `subs` subscribers of one topic filter, QoS 0. */
async function flow(b: Broker, pubs: number, subs: number, messages: number) {
  const topic = `flow/${seq++}`;
  const subscribers = await Promise.all(Array.from({ length: subs }, (_, i) => login(b, i)));
  let received = 0;
  const expected = messages * subs;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  for (const s of subscribers) {
    s.onPublish = () => ++received === expected && done();
    await s.subscribe(`${topic}/#`);
  }
  const publishers = await Promise.all(Array.from({ length: pubs }, (_, i) => login(b, subs + i)));
  const t = performance.now();
  await Promise.all(
    publishers.map(async (p, k) => {
      const pkt = publishPacket(`${topic}/${k}`, "x".repeat(64));
      for (let i = 0; i < messages / pubs; i++) {
        p.send(pkt);
        if (i % 64 === 63) await Bun.sleep(0);
        while (p.backlog) await Bun.sleep(1);
      }
    }),
  );
  await Promise.race([all, Bun.sleep(30_000)]);
  const rate = (received / (performance.now() - t)) * 1000;
  await Promise.all([...subscribers, ...publishers].map((c) => c.disconnect()));
  return rate;
}

/** latency: one publisher at `rate` msg/s, one subscriber; p50 and p99 in ms. */
async function latency(b: Broker, count = 3000, rate = 1000) {
  const sub = await login(b, 0);
  const pub = await login(b, 1);
  const sent = new Float64Array(count);
  const lat: number[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  sub.onPublish = (payload) => {
    lat.push(performance.now() - sent[Number(new TextDecoder().decode(payload))]!);
    if (lat.length === count) done();
  };
  await sub.subscribe("lat/t");
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    sent[i] = performance.now();
    pub.send(publishPacket("lat/t", String(i)));
  }
  await Promise.race([all, Bun.sleep(10_000)]);
  await Promise.all([sub.disconnect(), pub.disconnect()]);
  lat.sort((a, b) => a - b);
  return { p50: lat[Math.floor(lat.length * 0.5)]!, p99: lat[Math.floor(lat.length * 0.99)]! };
}

async function idleRss(b: Broker) {
  await Bun.sleep(1500);
  const idle = await statusMiB(b.pid, "VmRSS");
  const clients: RawClient[] = [];
  for (let i = 0; i < IDLE; i += 50)
    clients.push(...(await Promise.all(Array.from({ length: Math.min(50, IDLE - i) }, (_, k) => login(b, i + k)))));
  await Bun.sleep(2000);
  const loaded = await statusMiB(b.pid, "VmRSS");
  await Promise.all(clients.map((c) => c.disconnect()));
  return { idle, loaded };
}

type Result = Record<string, number>;
async function measure(start: () => Promise<Broker>): Promise<Result> {
  const b = await start();
  try {
    const r: Result = {};
    const mem = await idleRss(b); // first, on a fresh process
    r.rssIdle = mem.idle;
    r.rssLoaded = mem.loaded;
    // Steady state, as a running appliance is: every credential seen, the JIT warm (Bun's connect
    // rate rises ~50 % over its first few thousand connects; Mosquitto's does not move).
    await connects(b, WARMUP, 1);
    await connects(b, WARMUP, 50);
    let cpu = await cpuMs(b.pid);
    r.seq = await connects(b, CONNECTS, 1);
    r.cpuPerConnect = ((await cpuMs(b.pid)) - cpu) / CONNECTS;
    cpu = await cpuMs(b.pid);
    r.conc = await connects(b, CONNECTS * 2, 50);
    r.fanIn = await flow(b, 10, 1, MESSAGES);
    r.fanOut = await flow(b, 1, 100, Math.round(MESSAGES / 50));
    const l = await latency(b);
    r.p50 = l.p50;
    r.p99 = l.p99;
    return r;
  } finally {
    await b.stop();
  }
}

// Both compiled the same way: the appliance by its build, bare aedes with `bun build --compile --minify`.
if (!Bun.spawnSync(["bun", "run", "build"], { cwd: root, stdout: "ignore", stderr: "inherit" }).success)
  process.exit(1);
if (
  !Bun.spawnSync(["bun", "build", "--compile", "--minify", join(root, "bench/bare-aedes.ts"), "--outfile", bareAedes], {
    cwd: root,
    stdout: "ignore",
    stderr: "inherit",
  }).success
)
  process.exit(1);
const contenders: [string, () => Promise<Broker>][] = [
  ["bare aedes", aedes],
  ["Gatehouse", gatehouse],
];
if (hasMosquitto()) contenders.unshift(["Mosquitto 2", mosquitto]);
else console.log("(Mosquitto not installed: apt-get install mosquitto; its column is left out)");

const runs: Record<string, Result[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, start] of contenders) (runs[name] ??= []).push(await measure(start));
}
const med = (name: string, key: string) => median(runs[name]!.map((r) => r[key]!));

console.log(
  `\nMQTT side by side: raw-socket load, ${CONNECTS} connects, ${MESSAGES} messages, ${IDLE} idle clients; medians of ${ROUNDS} interleaved rounds\n`,
);
const measures: {
  key: string;
  label: string;
  unit: string;
  digits: number;
  higher: boolean;
  goals?: Record<string, string>;
}[] = [
  {
    key: "seq",
    label: "repeat connect, sequential",
    unit: "/s",
    digits: 0,
    higher: true,
    goals: { "Mosquitto 2": ">= 0.9x" },
  },
  {
    key: "conc",
    label: "repeat connect, 50 at once",
    unit: "/s",
    digits: 0,
    higher: true,
    goals: { "Mosquitto 2": ">= 1.0x" },
  },
  { key: "cpuPerConnect", label: "broker CPU per connect", unit: " ms", digits: 3, higher: false },
  { key: "fanIn", label: "QoS 0 fan-in, 10 -> 1", unit: " msg/s", digits: 0, higher: true },
  { key: "fanOut", label: "QoS 0 fan-out, 1 -> 100", unit: " deliveries/s", digits: 0, higher: true },
  {
    key: "p50",
    label: "latency p50 at 1 000 msg/s",
    unit: " ms",
    digits: 3,
    higher: false,
    goals: { "bare aedes": "<= 1.2x (ratio >= 0.83)" },
  },
  { key: "p99", label: "latency p99 at 1 000 msg/s", unit: " ms", digits: 3, higher: false },
  { key: "rssIdle", label: "RSS idle", unit: " MiB", digits: 1, higher: false },
  {
    key: "rssLoaded",
    label: `RSS with ${fmt(IDLE)} idle clients`,
    unit: " MiB",
    digits: 1,
    higher: false,
    goals: { "bare aedes": "<= aedes + 10 MiB" },
  },
];
const rows: Row[] = [];
for (const m of measures) {
  const g = med("Gatehouse", m.key);
  for (const [name] of contenders.filter(([n]) => n !== "Gatehouse")) {
    const b = med(name, m.key);
    rows.push({
      bench: "MQTT",
      measure: m.label,
      baselineName: name,
      baseline: fmt(b, m.digits) + m.unit,
      gatehouse: fmt(g, m.digits) + m.unit,
      ratio: m.higher ? g / b : b / g,
      goal: m.goals?.[name],
    });
  }
}
const loadedGap = med("Gatehouse", "rssLoaded") - med("bare aedes", "rssLoaded");
report(rows);
console.log(
  `\nRSS with ${IDLE} idle clients: Gatehouse is ${fmt(loadedGap, 1)} MiB above bare aedes (goal <= 10 MiB); ratio > 1 means Gatehouse is better.`,
);
process.exit(0);
