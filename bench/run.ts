/**
 * bun run bench: the Gatehouse MQTT listener against plain aedes (no auth), in one run, as ratios.
 * Each broker runs in a child process; this process is the load. Not part of the test run.
 */
import mqtt, { type MqttClient } from "mqtt";

const N = Number(process.env.BENCH_CLIENTS ?? 500);
const CREDS = 50;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);

interface Broker {
  port: number;
  cpu(): Promise<number>;
  stop(): void;
}

async function startBroker(mode: "baseline" | "gatehouse"): Promise<Broker> {
  const proc = Bun.spawn(["bun", "bench/broker.ts", mode, String(CREDS)], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const i = buf.indexOf("\n");
      if (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`${mode} broker exited`);
      buf += decoder.decode(value);
    }
  };
  const port = Number((await nextLine()).split(" ")[1]);
  return {
    port,
    async cpu() {
      proc.stdin.write("cpu\n");
      return Number((await nextLine()).split(" ")[1]) / 1000;
    },
    stop: () => proc.kill(),
  };
}

const creds = (i: number) => ({ username: `bench-${i % CREDS}`, password: `bench-password-${i % CREDS}` });

function connect(port: number, i: number, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: "127.0.0.1", port, protocolVersion: 4, reconnectPeriod: 0, ...creds(i), ...extra });
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function connectSequential(port: number, from: number, count: number) {
  return timed(async () => {
    for (let i = from; i < from + count; i++) await (await connect(port, i)).endAsync();
  });
}

async function connectConcurrent(port: number, count: number, width = 50) {
  return timed(async () => {
    for (let i = 0; i < count; i += width) {
      const batch = await Promise.all(Array.from({ length: Math.min(width, count - i) }, (_, k) => connect(port, i + k)));
      await Promise.all(batch.map((c) => c.endAsync()));
    }
  });
}

async function fanIn(port: number, qos: 0 | 1, publishers = 10) {
  const sub = await connect(port, 0, { clientId: `sub-${qos}` });
  await sub.subscribeAsync("fan/#", { qos });
  const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => connect(port, i + 1)));
  const per = Math.floor(MESSAGES / publishers);
  let received = 0;
  const all = new Promise<void>((resolve) => sub.on("message", () => ++received === per * publishers && resolve()));
  const ms = await timed(async () => {
    await Promise.all(pubs.map(async (p, i) => {
      for (let k = 0; k < per; k++) {
        if (qos === 1) await p.publishAsync(`fan/${i}`, "x".repeat(64), { qos });
        else p.publish(`fan/${i}`, "x".repeat(64), { qos });
      }
    }));
    await Promise.race([all, Bun.sleep(60_000)]);
  });
  await Promise.all([sub, ...pubs].map((c) => c.endAsync()));
  return (received / ms) * 1000;
}

async function latency(port: number, count = 2000) {
  const sub = await connect(port, 0, { clientId: "lat-sub" });
  await sub.subscribeAsync("lat/t");
  const pub = await connect(port, 1, { clientId: "lat-pub" });
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const got = new Promise<void>((resolve) => sub.once("message", () => resolve()));
    const t = performance.now();
    pub.publish("lat/t", String(i));
    await got;
    samples.push(performance.now() - t);
  }
  await Promise.all([sub.endAsync(), pub.endAsync()]);
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(count * 0.5)]!, p99: samples[Math.floor(count * 0.99)]! };
}

/** wrongPasswordCpu: broker CPU per attempt of a client retrying a wrong password every 100 ms for 5 s. */
async function wrongPasswordCpu(b: Broker, seconds = 5) {
  // The first wrong attempt pays one argon2id; measured apart, then the steady state.
  const firstStart = await b.cpu();
  await connect(b.port, 0, { password: "definitely-wrong" }).then((c) => c.endAsync(), () => undefined);
  await Bun.sleep(300);
  const firstMs = (await b.cpu()) - firstStart;
  const idleStart = await b.cpu();
  await Bun.sleep(seconds * 1000);
  const idle = (await b.cpu()) - idleStart;
  const start = await b.cpu();
  let attempts = 0;
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    attempts++;
    await connect(b.port, 0, { password: "definitely-wrong" }).then((c) => c.endAsync(), () => undefined);
    await Bun.sleep(100);
  }
  const busy = (await b.cpu()) - start;
  return { attempts, firstMs, cpuMsPerAttempt: Math.max(0, busy - idle) / attempts };
}

async function measure(mode: "baseline" | "gatehouse") {
  const b = await startBroker(mode);
  const r: Record<string, number> = {};
  // Gatehouse: the first login of each of the 50 credentials pays argon2 (cold); warm-up is reported apart.
  r.coldSeqMs = await connectSequential(b.port, 0, CREDS);
  // Broker CPU per operation is steadier than wall-clock rates on this shared 2-core machine.
  let cpu0 = await b.cpu();
  r.seqPerSec = (N / (await connectSequential(b.port, 0, N))) * 1000;
  r.concPerSec = (N / (await connectConcurrent(b.port, N))) * 1000;
  r.cpuPerConnectUs = (((await b.cpu()) - cpu0) / (2 * N)) * 1000;
  cpu0 = await b.cpu();
  r.qos0 = await fanIn(b.port, 0);
  r.qos1 = await fanIn(b.port, 1);
  r.cpuPerMessageUs = (((await b.cpu()) - cpu0) / (2 * MESSAGES)) * 1000;
  const lat = await latency(b.port);
  r.p50 = lat.p50;
  r.p99 = lat.p99;
  // On the baseline the "wrong" password is let in (no auth): that is the bare cost of a connection.
  const w = await wrongPasswordCpu(b);
  r.wrongAttempts = w.attempts;
  r.wrongCpuMsPerAttempt = w.cpuMsPerAttempt;
  r.wrongFirstMs = w.firstMs;
  b.stop();
  return r;
}

const hashCost = await timed(async () => {
  const h = await Bun.password.hash("x-password-123", { algorithm: "argon2id" });
  for (let i = 0; i < 5; i++) await Bun.password.verify("x-password-123", h);
}) / 6;

console.log(`clients=${N} credentials=${CREDS} messages=${MESSAGES}; brokers alternate, each in its own process; best of ${process.env.BENCH_ROUNDS ?? 2} rounds\n`);
// Alternate the two brokers and keep each one's best figure: this 2-core machine is shared and noisy.
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const lowerIsBetter = new Set(["coldSeqMs", "p50", "p99", "wrongCpuMsPerAttempt", "wrongFirstMs", "cpuPerConnectUs", "cpuPerMessageUs"]);
const best = (runs: Record<string, number>[]) =>
  Object.fromEntries(Object.keys(runs[0]!).map((k) => [k, (lowerIsBetter.has(k) ? Math.min : Math.max)(...runs.map((r) => r[k]!))]));
const baseRuns: Record<string, number>[] = [];
const ghRuns: Record<string, number>[] = [];
for (let i = 0; i < rounds; i++) {
  baseRuns.push(await measure("baseline"));
  ghRuns.push(await measure("gatehouse"));
}
const base = best(baseRuns);
const gh = best(ghRuns);
const row = (name: string, b: number, g: number, unit: string, higherIsBetter = true) =>
  console.log(`${name.padEnd(34)} baseline ${b.toFixed(2).padStart(10)} ${unit.padEnd(6)} gatehouse ${g.toFixed(2).padStart(10)} ${unit.padEnd(6)} ratio ${(higherIsBetter ? g / b : b / g).toFixed(2)}x`);
row("connect, sequential (warm)", base.seqPerSec!, gh.seqPerSec!, "conn/s");
row("connect, 50 concurrent (warm)", base.concPerSec!, gh.concPerSec!, "conn/s");
row("broker CPU per connect+disconnect", base.cpuPerConnectUs!, gh.cpuPerConnectUs!, "us", false);
row("first login of 50 credentials", base.coldSeqMs!, gh.coldSeqMs!, "ms", false);
row("fan-in QoS 0", base.qos0!, gh.qos0!, "msg/s");
row("fan-in QoS 1", base.qos1!, gh.qos1!, "msg/s");
row("broker CPU per message (fan-in)", base.cpuPerMessageUs!, gh.cpuPerMessageUs!, "us", false);
row("publish latency p50", base.p50!, gh.p50!, "ms", false);
row("publish latency p99", base.p99!, gh.p99!, "ms", false);
row("CPU of the first wrong password", base.wrongFirstMs!, gh.wrongFirstMs!, "ms", false);
row("CPU per later retry (every 100 ms)", base.wrongCpuMsPerAttempt!, gh.wrongCpuMsPerAttempt!, "ms", false);
console.log(
  `\nwrong password retried every 100 ms for 5 s (${gh.wrongAttempts} attempts): the first pays one argon2id, the rest hit the ` +
    `refused-credential cache; hashing every attempt would cost ${hashCost.toFixed(1)} ms each here. ` +
    `On the baseline the same client is let in (no auth): its figure is the bare cost of a connection.`,
);
console.log("(ratio > 1 means Gatehouse is faster / at least as good; targets: warm connect >= 0.8x, throughput >= 0.9x)");
