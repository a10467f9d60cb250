/**
 * bun run bench:traffic: what per-integration traffic counting costs the broker. The compiled appliance
 * (every message counted for its session and integration) against bare aedes on Bun (no auth, no
 * counting) in QoS 0 fan-in 10 -> 1 and fan-out 1 -> 100, as bench/brokers.ts measures them; the ratio is
 * to be read beside the fan-in ratio recorded in the README before counting (0.89x). With
 * BENCH_BASELINE_BINARY=path/to/gatehouse (the same commit built with the three counting calls commented
 * out: `traffic.refused()` and `traffic.delivered()` in listeners/mqtt/hooks.ts, `traffic.received()` in
 * listeners/mqtt/provider.ts), that build runs in the same interleaved rounds: the difference is the
 * counting alone (a build of the release before would also differ in everything else merged since). Also the meter
 * by itself, in process: nanoseconds per message counted. Loopback only; medians of ROUNDS rounds.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoarseClock, TrafficMeter, newTraffic } from "../src/core/traffic.ts";
import { launchAppliance } from "./lib/appliance.ts";
import { readyPort, stop } from "./lib/procs.ts";
import { RawClient, publishPacket } from "./lib/raw-mqtt.ts";
import { fmt, median, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 50_000);
const CREDS = 120;
const root = join(import.meta.dir, "..");

interface Broker {
  name: string;
  pid: number;
  port: number;
  creds: { username: string; password: string }[];
  stop(): Promise<void>;
}

const bareAedes = join(scratchDir("bench-aedes-"), "bare-aedes");
async function aedes(): Promise<Broker> {
  const proc = Bun.spawn([bareAedes], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const port = await readyPort(proc, /ready (\d+)\n/);
  const creds = Array.from({ length: CREDS }, (_, i) => ({ username: `dev-${i}`, password: "no-auth" }));
  return { name: "bare aedes", pid: proc.pid, port, creds, stop: () => stop(proc) };
}

/** gatehouse: a compiled appliance on a data dir of its own with CREDS MQTT integrations (made by its first start). */
function gatehouse(name: string, binary: string): () => Promise<Broker> {
  const dir = scratchDir("bench-traffic-");
  let creds: Broker["creds"] | undefined;
  const run = () => launchAppliance({ binary, dataDir: join(dir, "data"), cwd: dir });
  return async () => {
    if (!creds) {
      // the CLI works on an existing database only: the first start makes it, then the fleet is imported
      await stop((await run()).proc);
      writeFileSync(
        join(dir, "fleet.json"),
        JSON.stringify(Array.from({ length: CREDS }, (_, i) => ({ username: `dev-${i}`, type: "mqtt" }))),
      );
      const imp = Bun.spawnSync(
        [binary, "integrations", "import", join(dir, "fleet.json"), "--data-dir", join(dir, "data"), "--json"],
        { stdout: "pipe", stderr: "inherit" },
      );
      if (imp.exitCode !== 0) throw new Error(`${name}: import failed`);
      creds = JSON.parse(imp.stdout.toString()) as Broker["creds"];
    }
    const app = await run();
    return { name, pid: app.pid, port: app.ports.mqtt!, creds, stop: () => stop(app.proc) };
  };
}

let seq = 0;
const login = (b: Broker, i: number) =>
  RawClient.connect(b.port, `c-${seq++}`, b.creds[i % CREDS]!.username, b.creds[i % CREDS]!.password);

/** flow: deliveries/s from `pubs` publishers to `subs` subscribers of one topic filter, QoS 0 (as bench/brokers.ts). */
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

/**
 * meterNs: nanoseconds per message counted (one `received` and one `delivered`, as a fan-in message costs),
 * with the core's coarse clock, and with Date.now() at every message as the first version had it.
 */
function meterNs(): number {
  const m = new TrafficMeter(newTraffic(), newTraffic(), new CoarseClock()); // the core's clock (a field read)
  const n = 5_000_000;
  for (let i = 0; i < 100_000; i++) m.received(64); // warm up
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    m.received(64);
    m.delivered(64);
  }
  return ((performance.now() - t) * 1e6) / n;
}

if (!Bun.spawnSync(["bun", "run", "build"], { cwd: root, stdout: "ignore", stderr: "inherit" }).success)
  process.exit(1);
const compile = ["bun", "build", "--compile", "--minify", join(root, "bench/bare-aedes.ts"), "--outfile", bareAedes];
if (!Bun.spawnSync(compile, { cwd: root, stdout: "ignore", stderr: "inherit" }).success) process.exit(1);

const contenders: [string, () => Promise<Broker>][] = [
  ["bare aedes", aedes],
  ["Gatehouse (counting)", gatehouse("Gatehouse (counting)", join(root, "dist", "gatehouse"))],
];
const before = process.env.BENCH_BASELINE_BINARY;
if (before) contenders.push(["Gatehouse before counting", gatehouse("Gatehouse before counting", before)]);

const results = new Map<string, { fanIn: number[]; fanOut: number[] }>(
  contenders.map(([n]) => [n, { fanIn: [], fanOut: [] }]),
);
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, start] of round % 2 ? [...contenders].reverse() : contenders) {
    const b = await start();
    try {
      await flow(b, 10, 1, 10_000); // warm the JIT
      results.get(name)!.fanIn.push(await flow(b, 10, 1, MESSAGES));
      results.get(name)!.fanOut.push(await flow(b, 1, 100, Math.round(MESSAGES / 50)));
    } finally {
      await b.stop();
    }
  }
  console.log(`round ${round + 1}/${ROUNDS} done`);
}

const ns = meterNs();
const med = (name: string, k: "fanIn" | "fanOut") => median(results.get(name)![k]);
console.log(`| measure | bare aedes | Gatehouse (counting) |${before ? " Gatehouse before counting |" : ""}`);
console.log(`| --- | --- | --- |${before ? " --- |" : ""}`);
for (const [k, label] of [
  ["fanIn", "QoS 0 fan-in, 10 -> 1 (msg/s)"],
  ["fanOut", "QoS 0 fan-out, 1 -> 100 (msg/s)"],
] as const) {
  const cells = contenders.map(([n]) => fmt(med(n, k)));
  console.log(`| ${label} | ${cells.join(" | ")} |`);
}
console.log(`\nthe meter alone: ${ns.toFixed(1)} ns per message (received + delivered)`);
const rows: Row[] = [];
for (const [k, label] of [
  ["fanIn", "QoS 0 fan-in 10 -> 1, every message counted per integration"],
  ["fanOut", "QoS 0 fan-out 1 -> 100, every delivery counted per integration"],
] as const) {
  rows.push({
    bench: "traffic",
    measure: label,
    baselineName: "bare aedes",
    baseline: `${fmt(med("bare aedes", k))} msg/s`,
    gatehouse: `${fmt(med("Gatehouse (counting)", k))} msg/s`,
    ratio: med("Gatehouse (counting)", k) / med("bare aedes", k),
    goal: k === "fanIn" ? "the README's fan-in ratio before counting (0.89x)" : undefined,
  });
  if (before)
    rows.push({
      bench: "traffic",
      measure: `${label}, against the build before counting`,
      baselineName: "Gatehouse before counting",
      baseline: `${fmt(med("Gatehouse before counting", k))} msg/s`,
      gatehouse: `${fmt(med("Gatehouse (counting)", k))} msg/s`,
      ratio: med("Gatehouse (counting)", k) / med("Gatehouse before counting", k),
      goal: "within the noise (> 0.95x)",
    });
}
report(rows);
