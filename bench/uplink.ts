/**
 * bun run bench:uplink: Gatehouse's uplink against Mosquitto 2's bridge (`cleansession false`,
 * `topic # out 1`), side by side, the same upstream (a local Mosquitto 2), the same device load:
 * 1. throughput: BENCH_DEVICES mqtt.js devices publish QoS 1 as fast as they are acknowledged (BENCH_WINDOW
 *    unacknowledged each) for BENCH_SECONDS: messages per second that reach a subscriber upstream. Both
 *    sides run while the other waits, first a BENCH_WARMUP s round each (not counted: a JIT warms up,
 *    caches fill), then BENCH_ROUNDS rounds taking turns; the median counts (a shared 2-core machine drifts);
 * 2. latency: one device at BENCH_RATE msg/s: p50 / p99 from the device's publish to the upstream subscriber;
 * 3. drain: BENCH_DRAIN messages queued while the upstream is cut off (a TCP proxy), then the network
 *    back: messages per second until the last one arrived (goal >= 5 000/s);
 * 4. backlog: BENCH_BACKLOG messages queued during a cut: resident memory over idle (goal < 20 MiB), each
 *    once settled (see settledRss).
 * Throughput and latency are also measured with the devices publishing straight to the upstream (mqtt.js,
 * no hop in between): the ceiling either bridge works under.
 * CPU: each throughput round also reads from /proc the CPU time the bridge (Mosquitto's, or the appliance
 * with its threads apart), the upstream and this process (devices and subscriber) spent per forwarded
 * message. On a shared 2-core machine every process takes from the same two cores, so throughput follows
 * the sum, and CPU per message drifts less than messages per second from round to round.
 * Windows: Gatehouse's uplink has its default (1 000 unacknowledged upstream). Mosquitto 2.0's bridge has
 * none: `max_inflight_messages` does not bound it (the proxy counts PUBLISHes against PUBACKs and prints
 * the most unacknowledged upstream for both: tens of thousands for the bridge during a drain).
 * Every process is stopped at the end.
 */
import { writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { closeDatabase } from "../src/db/client.ts";
import { openDataDir } from "../src/db/data-dir.ts";
import { benchAdminEnv, launchAppliance } from "./lib/appliance.ts";
import { cpuMs, freePort, hasMosquitto, statusMiB, stop, threadCpuMs } from "./lib/procs.ts";
import { fmt, median, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const DEVICES = Number(process.env.BENCH_DEVICES ?? 4);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// 10 s: after a 3 s warm-up the appliance's JIT threads still took 3.5 µs a message in the first counted
// round (23.5 µs in the warm-up), ~1 µs from the second on (7 Dec 2026); Mosquitto has no JIT to warm
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10);
// 5: single rounds on a shared 2-core machine spread ±15 %; the median of five moves less
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const DRAIN = Number(process.env.BENCH_DRAIN ?? 100_000);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 1_000_000);
const PASSWORD = "bench-device-password";

if (!hasMosquitto()) {
  console.log("uplink: Mosquitto is not installed; nothing to compare with");
  process.exit(0);
}

async function portOpen(port: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (open) return;
    await Bun.sleep(25);
  }
  throw new Error(`port ${port} never opened`);
}

/** mosquitto: Mosquitto 2 with these config lines; its process and port. */
async function mosquitto(lines: string[]) {
  const dir = scratchDir("bench-uplink-mosq-");
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [`listener ${port} 127.0.0.1`, "allow_anonymous true", "user root", "max_connections -1", ...lines].join("\n") +
      "\n",
  );
  const proc = Bun.spawn([Bun.which("mosquitto") ?? "/usr/sbin/mosquitto", "-c", conf], {
    stdout: "ignore",
    stderr: "ignore",
  });
  await portOpen(port);
  return { port, proc, dir };
}

/**
 * framer: MQTT packets' types as they pass (fixed header and remaining length only), for counting
 * PUBLISHes against PUBACKs at the proxy.
 */
function framer(onPacket: (type: number) => void) {
  let buf: Buffer = Buffer.alloc(0);
  return (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    let at = 0;
    for (;;) {
      let length = 0;
      let mul = 1;
      let i = at + 1;
      let whole = false;
      for (; i < buf.length && i < at + 5; i++) {
        length += (buf[i]! & 127) * mul;
        mul *= 128;
        if (!(buf[i]! & 128)) {
          whole = true;
          i++;
          break;
        }
      }
      if (!whole || buf.length < i + length) break;
      onPacket(buf[at]! >> 4);
      at = i + length;
    }
    buf = buf.subarray(at);
  };
}

/**
 * proxy: loopback port -> target; `cut` drops and refuses, `restore` passes again. It counts the QoS 1
 * PUBLISHes going up against the PUBACKs coming back: `inflight.most` is the most ever unacknowledged.
 */
async function proxy(target: number) {
  const port = await freePort();
  const sockets = new Set<Socket>();
  const inflight = { now: 0, most: 0 };
  let server: ReturnType<typeof createServer> | undefined;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((down) => {
        const up = connect(target, "127.0.0.1");
        inflight.now = 0; // a new connection: what the last one had unacknowledged is sent again
        const ups = framer((type) => {
          if (type === 3) inflight.most = Math.max(inflight.most, ++inflight.now);
        });
        const downs = framer((type) => {
          if (type === 4) inflight.now--;
        });
        for (const s of [down, up]) {
          sockets.add(s);
          s.on("error", () => {});
          s.on("close", () => (down.destroy(), up.destroy(), sockets.delete(s)));
        }
        down.on("data", ups);
        up.on("data", downs);
        down.pipe(up);
        up.pipe(down);
      });
      server.listen(port, "127.0.0.1", () => resolve());
    });
  await listen();
  return {
    port,
    inflight,
    cut: () =>
      new Promise<void>((resolve) => {
        const s = server;
        server = undefined;
        for (const so of sockets) so.destroy();
        if (s) s.close(() => resolve());
        else resolve();
      }),
    restore: () => (server ? Promise.resolve() : listen()),
  };
}

function client(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: "127.0.0.1", port, reconnectPeriod: 0, ...opts });
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

/** Arrivals: what the subscriber upstream saw of one run: count, and one-way times (ms) */
interface Arrivals {
  count: number;
  latencies: number[];
  last: number;
}

/** upstreamSubscriber: counts every message under `prefix`; payloads carry their send time. */
async function upstreamSubscriber(port: number, prefix: string) {
  const sub = await client(port, { clientId: `bench-sub-${prefix.replace(/\W/g, "")}`, clean: true });
  const a: Arrivals = { count: 0, latencies: [], last: 0 };
  let waiting: { n: number; resolve: () => void } | undefined;
  sub.on("message", (_t, payload) => {
    const now = performance.now();
    a.count++;
    a.last = now;
    const sent = Number(payload.toString("utf8", 0, payload.indexOf(32) < 0 ? payload.length : payload.indexOf(32)));
    if (sent > 0) a.latencies.push(now - sent);
    if (waiting && a.count >= waiting.n) waiting.resolve();
  });
  await sub.subscribeAsync(`${prefix}#`, { qos: 1 });
  return {
    a,
    reset() {
      a.count = 0;
      a.latencies = [];
    },
    until: (n: number, ms: number) =>
      new Promise<boolean>((resolve) => {
        if (a.count >= n) return resolve(true);
        const t = setTimeout(() => resolve(false), ms);
        waiting = { n, resolve: () => (clearTimeout(t), resolve(true)) };
      }),
    end: () => sub.endAsync(),
  };
}

const stamp = (pad: number) => {
  const s = String(performance.now());
  return Buffer.from(s.padEnd(Math.max(pad, s.length + 1), " "));
};

/** saturate: DEVICES devices, WINDOW unacknowledged QoS 1 publishes each, for `seconds`; returns how many were acknowledged */
async function saturate(devices: MqttClient[], topic: string, seconds = SECONDS): Promise<number> {
  let acked = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    devices.map(
      (d) =>
        new Promise<void>((resolve) => {
          let inflight = 0;
          const next = () => {
            while (inflight < WINDOW && performance.now() < end) {
              inflight++;
              d.publish(topic, stamp(64), { qos: 1 }, () => {
                inflight--;
                acked++;
                if (performance.now() < end) next();
                else if (inflight === 0) resolve();
              });
            }
            if (inflight === 0) resolve();
          };
          next();
        }),
    ),
  );
  return acked;
}

/** paced: one device at RATE msg/s for 5 s */
async function paced(device: MqttClient, topic: string): Promise<number> {
  const total = RATE * 5;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    device.publish(topic, stamp(64), { qos: 1 });
  }
  return total;
}

/** flood: `n` QoS 1 messages of 64 bytes from one device, 1 000 unacknowledged at a time */
async function flood(device: MqttClient, topic: string, n: number): Promise<void> {
  const payload = Buffer.alloc(64, "x");
  for (let i = 0; i < n; i += 1000)
    await Promise.all(
      Array.from({ length: Math.min(1000, n - i) }, () => device.publishAsync(topic, payload, { qos: 1 })),
    );
}

/** signed: a change in MiB with its sign (a backlog measured after a burst can settle below the idle level) */
const signed = (x: number) => `${x < 0 ? "-" : "+"}${Math.abs(x).toFixed(1)}`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? 0;
};

/**
 * settledRss: resident memory once the process has been quiet a while: the lowest sample (every 500 ms) once
 * the last 5 s of samples lie within 1 MiB of each other, after at least 10 s and at most 30 s. What a flood
 * leaves for the collector is not memory the backlog holds: the runtime hands it back when its collector and
 * allocator get to it (the same flood was seen settled after 6 s in one run and still 28 MiB above after 10 s
 * in another, 7 Dec 2026), and a fixed 10 s measured that timing, not the backlog.
 */
async function settledRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 60; i++) {
    await Bun.sleep(500);
    samples.push(await statusMiB(pid, "VmRSS"));
    const last = samples.slice(-10);
    if (samples.length >= 20 && Math.max(...last) - Math.min(...last) < 1) break;
  }
  return Math.min(...samples);
}

interface Result {
  rate: number;
  /** every counted round's rate, in the order run */
  rates: number[];
  /** CPU per message: the median of the counted rounds, each figure on its own */
  cpu: Cpu;
  /** the most QoS 1 PUBLISHes unacknowledged upstream during the throughput rounds, and during the drain */
  mostInflight: number;
  mostInflightDrain: number;
  p50: number;
  p99: number;
  drainRate: number;
  drained: number;
  idleRss: number;
  backlogRss: number;
  backlogQueued: number;
}

/** Side: one bridge, started: its devices, its proxy to the upstream, the subscriber counting there. */
interface Side {
  name: string;
  pid: number;
  link: Awaited<ReturnType<typeof proxy>>;
  sub: Awaited<ReturnType<typeof upstreamSubscriber>>;
  devices: MqttClient[];
  stop(): Promise<void>;
}

/**
 * side: `start` gives the local broker's port (devices publish there) and its pid, with the bridge
 * pointing at `link` (a proxy in front of the upstream).
 */
async function side(
  name: string,
  upstreamPort: number,
  start: (linkPort: number, prefix: string) => Promise<{ port: number; pid: number; stop(): Promise<void> }>,
  auth: mqtt.IClientOptions,
): Promise<Side> {
  const prefix = `${name}/`;
  const link = await proxy(upstreamPort);
  const local = await start(link.port, prefix);
  const sub = await upstreamSubscriber(upstreamPort, prefix);
  const devices = await Promise.all(
    Array.from({ length: DEVICES }, (_, i) => client(local.port, { ...auth, clientId: `${name}-dev-${i}` })),
  );
  await Bun.sleep(1000); // the bridge connected
  return { name, pid: local.pid, link, sub, devices, stop: local.stop };
}

/**
 * Cpu: CPU time per forwarded message (µs) of one round: the process in between (`bridge`: Mosquitto's
 * bridge or the appliance), the upstream, and this process (the devices and the subscriber); for the
 * appliance also its main thread, its worker threads (the outbox's writer), the JIT's compiler threads, and
 * the runtime's other threads (garbage collector, allocator).
 */
interface Cpu {
  bridge: number;
  upstream: number;
  devices: number;
  threads?: { main: number; workers: number; jit: number; runtime: number };
}

/** cpuNow: the CPU time so far of the processes a round's `Cpu` counts */
async function cpuNow(s: Side) {
  return {
    bridge: await cpuMs(s.pid),
    upstream: await cpuMs(upstream.proc.pid),
    devices: await cpuMs(process.pid),
    threads: s.name === "gatehouse" ? await threadCpuMs(s.pid) : undefined,
  };
}

/** cpuPer: `Cpu` between two `cpuNow` readings, per message of `n` */
function cpuPer(
  a: Awaited<ReturnType<typeof cpuNow>>,
  b: Awaited<ReturnType<typeof cpuNow>>,
  n: number,
  pid: number,
): Cpu {
  const per = (ms: number) => (ms * 1000) / n;
  const cpu: Cpu = {
    bridge: per(b.bridge - a.bridge),
    upstream: per(b.upstream - a.upstream),
    devices: per(b.devices - a.devices),
  };
  if (a.threads && b.threads) {
    const t = { main: 0, workers: 0, jit: 0, runtime: 0 };
    for (const [tid, { name, ms }] of b.threads) {
      const used = ms - (a.threads.get(tid)?.ms ?? 0);
      if (tid === pid) t.main += used;
      else if (name === "Worker") t.workers += used;
      else if (name.startsWith("JIT")) t.jit += used;
      else t.runtime += used;
    }
    cpu.threads = { main: per(t.main), workers: per(t.workers), jit: per(t.jit), runtime: per(t.runtime) };
  }
  return cpu;
}

const us = (x: number) => `${x.toFixed(1)} µs`;

/** describeCpu: one round's CPU per message, as the log line says it */
const describeCpu = (name: string, c: Cpu) =>
  `${name} ${us(c.bridge)}${c.threads ? ` (main thread ${us(c.threads.main)}, outbox writer ${us(c.threads.workers)}, JIT ${us(c.threads.jit)}, GC/allocator ${us(c.threads.runtime)})` : ""}, upstream ${us(c.upstream)}, devices and subscriber ${us(c.devices)}`;

/**
 * throughputRound: one round of the saturating load; messages per second that arrived upstream, and the
 * CPU time each process spent per message.
 */
async function throughputRound(s: Side, seconds: number, counted: boolean): Promise<{ rate: number; cpu: Cpu }> {
  s.sub.reset();
  const c0 = await cpuNow(s);
  const t0 = performance.now();
  const acked = await saturate(s.devices, "load/x", seconds);
  await s.sub.until(acked, 60_000);
  const rate = s.sub.a.count / ((s.sub.a.last - t0) / 1000);
  const cpu = cpuPer(c0, await cpuNow(s), Math.max(1, s.sub.a.count), s.pid);
  console.log(
    `  ${s.name}: ${counted ? "" : "(warm-up) "}${fmt(acked)} acknowledged to the devices, ${fmt(s.sub.a.count)} upstream, ${fmt(rate)}/s; CPU per message: ${describeCpu(s.name, cpu)}`,
  );
  return { rate, cpu };
}

/** measure: latency, drain and backlog of one side, after the throughput rounds; every figure the same way. */
async function measure(s: Side, rounds: { rate: number; cpu: Cpu }[], mostInflight: number): Promise<Result> {
  const rates = rounds.map((r) => r.rate);
  const mid = (f: (c: Cpu) => number) => median(rounds.map((r) => f(r.cpu)));
  const cpu: Cpu = {
    bridge: mid((c) => c.bridge),
    upstream: mid((c) => c.upstream),
    devices: mid((c) => c.devices),
    threads: rounds[0]?.cpu.threads && {
      main: mid((c) => c.threads!.main),
      workers: mid((c) => c.threads!.workers),
      jit: mid((c) => c.threads!.jit),
      runtime: mid((c) => c.threads!.runtime),
    },
  };
  const { name, sub, link, devices } = s;
  // 2. latency at a fixed rate
  sub.reset();
  const sent = await paced(devices[0]!, "latency/x");
  await sub.until(sent, 30_000);
  const p50 = pct(sub.a.latencies, 0.5);
  const p99 = pct(sub.a.latencies, 0.99);
  console.log(`  ${name}: latency at ${RATE}/s: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);

  // 3. drain after an outage
  await link.cut();
  await Bun.sleep(500);
  await flood(devices[0]!, "drain/x", DRAIN);
  await Bun.sleep(1000);
  sub.reset();
  link.inflight.most = 0;
  const r0 = performance.now();
  await link.restore();
  const all = await sub.until(DRAIN, 120_000);
  const drainRate = sub.a.count / ((sub.a.last - r0) / 1000);
  const drained = sub.a.count;
  const mostInflightDrain = link.inflight.most;
  console.log(
    `  ${name}: ${fmt(DRAIN)} queued during a cut, ${fmt(drained)} arrived after it${all ? "" : " (the rest lost)"}, ${fmt(drainRate)}/s; at most ${fmt(mostInflightDrain)} unacknowledged upstream`,
  );

  // 4. memory with a large backlog
  await Bun.sleep(2000);
  const idleRss = await settledRss(s.pid);
  await link.cut();
  await flood(devices[0]!, "backlog/x", BACKLOG);
  const backlogRss = await settledRss(s.pid);
  console.log(
    `  ${name}: RSS idle ${idleRss.toFixed(1)} MiB, with ${fmt(BACKLOG)} queued ${backlogRss.toFixed(1)} MiB (${signed(backlogRss - idleRss)})`,
  );
  for (const d of devices) d.end(true);
  await sub.end();
  await s.stop();
  await link.cut();
  return {
    rate: median(rates),
    rates,
    cpu,
    mostInflight,
    mostInflightDrain,
    p50,
    p99,
    drainRate,
    drained,
    idleRss,
    backlogRss,
    backlogQueued: BACKLOG,
  };
}

/**
 * direct: the ceiling: the same devices publish straight to the upstream with mqtt.js (no appliance, no
 * bridge in between): throughput and latency measured the same way.
 */
async function direct(upstreamPort: number): Promise<{ rate: number; p50: number; p99: number }> {
  const prefix = "direct/";
  const sub = await upstreamSubscriber(upstreamPort, prefix);
  const devices = await Promise.all(
    Array.from({ length: DEVICES }, (_, i) => client(upstreamPort, { clientId: `direct-dev-${i}` })),
  );
  sub.reset();
  const t0 = performance.now();
  const acked = await saturate(devices, `${prefix}load/x`);
  await sub.until(acked, 60_000);
  const rate = sub.a.count / ((sub.a.last - t0) / 1000);
  console.log(`  direct: ${fmt(acked)} acknowledged by the upstream, ${fmt(sub.a.count)} delivered, ${fmt(rate)}/s`);
  sub.reset();
  const sent = await paced(devices[0]!, `${prefix}latency/x`);
  await sub.until(sent, 30_000);
  const p50 = pct(sub.a.latencies, 0.5);
  const p99 = pct(sub.a.latencies, 0.99);
  console.log(`  direct: latency at ${RATE}/s: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
  for (const d of devices) d.end(true);
  await sub.end();
  return { rate, p50, p99 };
}

const upstream = await mosquitto(["max_queued_messages 0", "max_inflight_messages 0"]);

console.log(
  `\nuplink: ${DEVICES} devices x ${WINDOW} QoS 1 in flight, ${WARMUP} s warm-up then ${ROUNDS} rounds of ${SECONDS} s taking turns; latency at ${RATE}/s; drain of ${fmt(DRAIN)}; ${fmt(BACKLOG)} queued\n`,
);

const straight = await direct(upstream.port);

// Mosquitto 2's bridge: its own broker takes the devices and forwards everything upstream.
const bridgeSide = await side(
  "mosquitto-bridge",
  upstream.port,
  async (linkPort, prefix) => {
    const m = await mosquitto([
      "persistence true",
      `persistence_location ${scratchDir("bench-uplink-bridge-")}/`,
      "max_queued_messages 0",
      "connection upstream",
      `address 127.0.0.1:${linkPort}`,
      "cleansession false",
      "clientid bench-bridge",
      "restart_timeout 1 2",
      `topic # out 1 "" ${prefix}`,
    ]);
    return { port: m.port, pid: m.proc.pid, stop: () => stop(m.proc) };
  },
  {},
);

// Gatehouse: the appliance in its own process, the uplink added with the CLI (its default window).
const gatehouseSide = await side(
  "gatehouse",
  upstream.port,
  async (linkPort, prefix) => {
    const dir = join(scratchDir("bench-uplink-gh-"), "data");
    closeDatabase(openDataDir(dir)); // a data dir as the first start leaves it: every CLI verb needs one
    const cli = (args: string[], stdin?: string) => {
      const p = Bun.spawnSync(["bun", "src/main.ts", ...args, "--data-dir", dir], {
        stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
        stderr: "inherit",
      });
      if (p.exitCode !== 0) throw new Error(`gatehouse ${args.join(" ")} failed`);
    };
    cli(["integrations", "add", "--type", "mqtt", "--username", "bench-dev", "--password-stdin"], PASSWORD);
    cli([
      "uplinks",
      "add",
      "bench",
      "--url",
      `mqtt://127.0.0.1:${linkPort}`,
      "--forward",
      "#",
      "--remote-prefix",
      prefix,
    ]);
    const app = await launchAppliance({
      dataDir: dir,
      args: ["--uplink-reconnect-max", "2", "--uplink-max-queue-messages", String(Math.max(BACKLOG * 2, 5_000_000))],
      env: { ...process.env, ...benchAdminEnv },
    });
    return { port: app.ports.mqtt!, pid: app.pid, stop: () => stop(app.proc) };
  },
  { username: "bench-dev", password: PASSWORD },
);

// 1. throughput: a warm-up round each, then rounds taking turns (the machine drifts; both see the same drift)
const sides = [bridgeSide, gatehouseSide];
const rates = new Map<Side, { rate: number; cpu: Cpu }[]>(sides.map((s) => [s, []]));
for (const s of sides) await throughputRound(s, WARMUP, false);
for (const s of sides) s.link.inflight.most = 0;
for (let round = 0; round < ROUNDS; round++)
  for (const s of sides) rates.get(s)!.push(await throughputRound(s, SECONDS, true));
const bridge = await measure(bridgeSide, rates.get(bridgeSide)!, bridgeSide.link.inflight.most);
const gatehouse = await measure(gatehouseSide, rates.get(gatehouseSide)!, gatehouseSide.link.inflight.most);

await stop(upstream.proc);

console.log(
  "\n| | throughput upstream (median of rounds) | CPU per message: bridge / upstream / devices (median of rounds) | most unacknowledged upstream (load / drain) | latency p50 / p99 | drain after a cut | RSS idle -> backlog |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const [name, r] of [
  ["Mosquitto 2 bridge", bridge],
  ["Gatehouse uplink", gatehouse],
] as const) {
  console.log(
    `| ${name} | ${fmt(r.rate)} msg/s (${r.rates.map((x) => fmt(x)).join(", ")}) | ${us(r.cpu.bridge)} / ${us(r.cpu.upstream)} / ${us(r.cpu.devices)} | ${fmt(r.mostInflight)} / ${fmt(r.mostInflightDrain)} | ${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} ms | ${fmt(r.drained)} of ${fmt(DRAIN)}, ${fmt(r.drainRate)} msg/s | ${r.idleRss.toFixed(1)} -> ${r.backlogRss.toFixed(1)} MiB |`,
  );
}
console.log(
  `| mqtt.js straight to the upstream (no hop) | ${fmt(straight.rate)} msg/s | - | - | ${straight.p50.toFixed(2)} / ${straight.p99.toFixed(2)} ms | - | - |`,
);
const rows: Row[] = [
  {
    bench: "uplink",
    measure: `forwarded QoS 1 msg/s upstream, ${DEVICES} devices x ${WINDOW} in flight, vs no hop`,
    baselineName: "mqtt.js straight to the upstream",
    baseline: fmt(straight.rate),
    gatehouse: fmt(gatehouse.rate),
    ratio: gatehouse.rate / straight.rate,
  },
  {
    bench: "uplink",
    measure: `forwarded QoS 1 msg/s upstream, ${DEVICES} devices x ${WINDOW} in flight, median of ${ROUNDS} warm rounds`,
    baselineName: "Mosquitto 2 bridge",
    baseline: fmt(bridge.rate),
    gatehouse: fmt(gatehouse.rate),
    ratio: gatehouse.rate / bridge.rate,
    goal: ">= 1.0x",
  },
  {
    bench: "uplink",
    measure: `CPU per forwarded message in the process between devices and upstream (Gatehouse: main thread ${us(gatehouse.cpu.threads?.main ?? 0)}, outbox writer ${us(gatehouse.cpu.threads?.workers ?? 0)}, JIT ${us(gatehouse.cpu.threads?.jit ?? 0)}, GC/allocator ${us(gatehouse.cpu.threads?.runtime ?? 0)})`,
    baselineName: "Mosquitto 2 bridge",
    baseline: us(bridge.cpu.bridge),
    gatehouse: us(gatehouse.cpu.bridge),
    ratio: bridge.cpu.bridge / gatehouse.cpu.bridge,
  },
  {
    bench: "uplink",
    measure: "CPU per forwarded message of all three processes (bridge, upstream, devices and subscriber)",
    baselineName: "Mosquitto 2 bridge",
    baseline: us(bridge.cpu.bridge + bridge.cpu.upstream + bridge.cpu.devices),
    gatehouse: us(gatehouse.cpu.bridge + gatehouse.cpu.upstream + gatehouse.cpu.devices),
    ratio:
      (bridge.cpu.bridge + bridge.cpu.upstream + bridge.cpu.devices) /
      (gatehouse.cpu.bridge + gatehouse.cpu.upstream + gatehouse.cpu.devices),
  },
  {
    bench: "uplink",
    measure: `end-to-end latency p50 / p99 at ${fmt(RATE)} msg/s`,
    baselineName: "Mosquitto 2 bridge",
    baseline: `${bridge.p50.toFixed(2)} / ${bridge.p99.toFixed(2)} ms`,
    gatehouse: `${gatehouse.p50.toFixed(2)} / ${gatehouse.p99.toFixed(2)} ms`,
    ratio: bridge.p99 / gatehouse.p99,
  },
  {
    bench: "uplink",
    measure: `drain of ${fmt(DRAIN)} messages queued during an outage`,
    baselineName: "Mosquitto 2 bridge",
    baseline: `${fmt(bridge.drainRate)} msg/s (${fmt(bridge.drained)} arrived)`,
    gatehouse: `${fmt(gatehouse.drainRate)} msg/s (${fmt(gatehouse.drained)} arrived)`,
    ratio: gatehouse.drainRate / bridge.drainRate,
    goal: ">= 5 000 msg/s",
  },
  {
    bench: "uplink",
    measure: `RSS over idle with ${fmt(BACKLOG)} messages queued`,
    baselineName: "Mosquitto 2 bridge",
    baseline: `${signed(bridge.backlogRss - bridge.idleRss)} MiB`,
    gatehouse: `${signed(gatehouse.backlogRss - gatehouse.idleRss)} MiB`,
    ratio: Math.max(1, bridge.backlogRss - bridge.idleRss) / Math.max(1, gatehouse.backlogRss - gatehouse.idleRss),
    goal: "< 20 MiB",
  },
];
report(rows);
const met = [
  gatehouse.rate >= bridge.rate,
  gatehouse.drainRate >= 5000 && gatehouse.drained >= DRAIN,
  gatehouse.backlogRss - gatehouse.idleRss < 20,
];
console.log(
  `\ngoals: throughput >= 1.0x bridge ${met[0] ? "met" : "NOT met"}; drain >= 5 000/s ${met[1] ? "met" : "NOT met"}; backlog < 20 MiB over idle ${met[2] ? "met" : "NOT met"}`,
);
process.exit(0);
