/**
 * bun run bench:accept: strangers before login. The appliance with every listener on (MQTT, MQTT/TLS,
 * HTTP, HTTPS, OPC UA) and the default accept pool, in its own process; strangers in other processes.
 *
 * - 8 addresses churn idle sockets on every port (each keeps 60 open per port, 2 400 against a pool of
 *   2 000, and opens a new one whenever the server closes one) while a device connects with mqtt.js
 *   over MQTT and MQTT/TLS again and again, and /healthz is asked over a new connection every 100 ms:
 *   first attempts that got CONNACK 0 and /healthz latency, against the same without strangers.
 * - 1 000 devices behind one address connect at once: CONNACK 0 on the first attempt, against Mosquitto.
 * - What an idle socket costs (fds, RSS) per listener, and 20 000 of them opened at once, against
 *   Mosquitto (which keeps every one).
 * - What the HTTP accept front costs: /healthz through it against Bun.serve binding the port itself.
 */
import mqtt, { type MqttClient } from "mqtt";
import { readdirSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { cpuMs, hasMosquitto, lineReader, startMosquitto, statusMiB, stop } from "./lib/procs.ts";
import { fmt, median, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const CHURN_SECONDS = Number(process.env.BENCH_CHURN_SECONDS ?? 20);
const PER_ADDRESS = Number(process.env.BENCH_CHURN_PER_ADDRESS ?? 60);
const IDLE = Number(process.env.BENCH_IDLE ?? 20_000);
const rows: Row[] = [];
const bench = "accept";

interface Ready {
  mqtt: number;
  mqtts: number;
  http: number;
  https: number;
  opcua: number;
  device: { username: string; password: string };
  fleet: { username: string; password: string }[];
}

const fds = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN;
};

/** healthz: GET /healthz over a new connection (admission included); its latency, Infinity if it failed */
function healthz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const t = performance.now();
    const s = netConnect({ host: "127.0.0.1", port }, () =>
      s.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    );
    const timer = setTimeout(() => (s.destroy(), resolve(Infinity)), 5000);
    s.once("data", (d) => {
      clearTimeout(timer);
      s.destroy();
      resolve(d.toString().startsWith("HTTP/1.1 200") ? performance.now() - t : Infinity);
    });
    s.on("error", () => (clearTimeout(timer), resolve(Infinity)));
  });
}

/** device: one mqtt.js connect from `localAddress`; its latency if CONNACK 0 came, else undefined */
function device(
  port: number,
  creds: { username: string; password: string },
  opts: { tls?: boolean; localAddress: string; clientId?: string; keep?: boolean },
): Promise<{ ms?: number; client?: MqttClient }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const options = {
      ...creds,
      clientId: opts.clientId,
      protocolVersion: 4 as const,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    };
    const client = new mqtt.MqttClient(
      () =>
        opts.tls
          ? tlsConnect({
              host: "127.0.0.1",
              port,
              rejectUnauthorized: false,
              ...({ localAddress: opts.localAddress } as object),
            })
          : netConnect({ host: "127.0.0.1", port, localAddress: opts.localAddress }),
      options,
    );
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      const ms = performance.now() - t;
      if (ok && opts.keep) return resolve({ ms, client });
      client.end(true);
      resolve(ok ? { ms } : {});
    };
    client.once("connect", () => finish(true));
    client.once("error", () => finish(false));
    client.once("close", () => finish(false));
  });
}

async function startServer(fleet = true) {
  const env = { ...process.env, ...(fleet ? {} : { BENCH_FLEET: "0" }) };
  const proc = Bun.spawn(["bun", "bench/accept-server.ts", join(scratchDir("gatehouse-accept-"), "data")], {
    env,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = lineReader(proc.stdout);
  const ready = JSON.parse((await lines.until(/ready (\{.*\})\n/))[1]!) as Ready;
  const stats = async () => {
    proc.stdin.write("stats\n");
    proc.stdin.flush();
    return JSON.parse((await lines.until(/stats (\{.*\})\n/))[1]!) as {
      size: number;
      silent: number;
      evicted: number;
      deadline: number;
      refused: number;
      sessions: number;
    };
  };
  /** memory: RSS and JS heap after a full collection, MiB */
  const memory = async () => {
    proc.stdin.write("gc\n");
    proc.stdin.flush();
    const m = await lines.until(/gc (\d+) (\d+)\n/);
    return { rss: Number(m[1]) / 1024 / 1024, heap: Number(m[2]) / 1024 / 1024 };
  };
  return { proc, ready, stats, memory };
}

function startChurn(ports: number[], addresses: string[], perAddress: number, reopen: boolean) {
  const proc = Bun.spawn(["bun", "bench/accept-churn.ts", JSON.stringify({ ports, addresses, perAddress, reopen })], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = lineReader(proc.stdout);
  let last = { opened: 0, closed: 0, failed: 0 };
  void (async () => {
    for (;;) {
      const m = (await lines.next().catch(() => undefined))?.match(/opened (\d+) closed (\d+) failed (\d+)/);
      if (!m) return;
      last = { opened: Number(m[1]), closed: Number(m[2]), failed: Number(m[3]) };
    }
  })();
  return {
    proc,
    get last() {
      return last;
    },
  };
}

/** idleSockets: n sockets that connect and send nothing, from the given addresses */
async function idleSockets(port: number, n: number, addresses: string[]): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<Socket>((resolve) => {
          const s = netConnect({ host: "127.0.0.1", port, localAddress: addresses[i % addresses.length] });
          s.on("error", () => {});
          s.once("connect", () => resolve(s));
          s.once("close", () => resolve(s));
        }),
    ),
  );
}

async function waitFor(check: () => Promise<boolean>, ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (await check()) return true;
    await Bun.sleep(200);
  }
  return false;
}

const server = await startServer();
const { ready } = server;
const pid = server.proc.pid;
const addresses = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
const allPorts = [ready.mqtt, ready.mqtts, ready.http, ready.https, ready.opcua];

// 1. A device and /healthz without strangers, then while 8 addresses churn idle sockets on every port.
async function deviceAndHealthz(seconds: number) {
  const until = performance.now() + seconds * 1000;
  const connects: (number | undefined)[] = [];
  const probes: number[] = [];
  let peakFds = 0;
  let peakRss = 0;
  const prober = (async () => {
    while (performance.now() < until) {
      probes.push(await healthz(ready.http));
      await Bun.sleep(100);
    }
  })();
  const sampler = (async () => {
    while (performance.now() < until) {
      peakFds = Math.max(peakFds, fds(pid));
      peakRss = Math.max(peakRss, await statusMiB(pid, "VmRSS"));
      await Bun.sleep(500);
    }
  })();
  // a device that reconnects every 200 ms (the bench process's own load must not be what is measured)
  for (let i = 0; performance.now() < until; i++) {
    const r = await device(i % 2 ? ready.mqtts : ready.mqtt, ready.device, {
      tls: i % 2 === 1,
      localAddress: "127.0.0.20",
    });
    connects.push(r.ms);
    await Bun.sleep(200);
  }
  await Promise.all([prober, sampler]);
  const ok = connects.filter((c) => c !== undefined) as number[];
  return {
    attempts: connects.length,
    ok: ok.length,
    connectP50: pct(ok, 0.5),
    connectP99: pct(ok, 0.99),
    healthzP50: pct(probes, 0.5),
    healthzP99: pct(probes, 0.99),
    healthzMax: Math.max(...probes),
    probes: probes.length,
    failedProbes: probes.filter((p) => p === Infinity).length,
    peakFds,
    peakRss,
  };
}

const quiet = await deviceAndHealthz(5);
// one process for all 8 addresses: on this 2-core machine the strangers' own CPU competes with the server's
const churners = [startChurn(allPorts, addresses, PER_ADDRESS, true)];
await waitFor(async () => (await server.stats()).evicted > 0, 30_000);
const openedBefore = churners.reduce((a, c) => a + c.last.opened, 0);
const before = await server.stats();
const t0 = performance.now();
const underChurn = await deviceAndHealthz(CHURN_SECONDS);
const churnSecs = (performance.now() - t0) / 1000;
const after = await server.stats();
const churnRate = (churners.reduce((a, c) => a + c.last.opened, 0) - openedBefore) / churnSecs;
await Promise.all(churners.map((c) => stop(c.proc)));
await waitFor(async () => (await server.stats()).size === 0, 20_000);

console.log(
  `\nstrangers: 8 addresses x ${PER_ADDRESS} idle sockets x 5 ports (${8 * PER_ADDRESS * 5} against a pool of 2 000), re-opened when closed`,
);
console.log(
  `  churn: ${fmt(churnRate)} sockets/s opened; ${fmt(after.evicted - before.evicted)} evicted, ${fmt(after.deadline - before.deadline)} closed at the deadline, ${fmt(after.refused - before.refused)} that spoke evicted in ${churnSecs.toFixed(0)} s`,
);
for (const [name, r] of [
  ["without strangers", quiet],
  ["with strangers", underChurn],
] as const) {
  console.log(
    `  ${name.padEnd(18)} device: ${r.ok}/${r.attempts} first attempts in (p50 ${r.connectP50.toFixed(1)} ms, p99 ${r.connectP99.toFixed(1)} ms); ` +
      `/healthz (new connection): p50 ${r.healthzP50.toFixed(1)} ms, p99 ${r.healthzP99.toFixed(1)} ms, max ${r.healthzMax.toFixed(1)} ms, ${r.failedProbes} of ${r.probes} failed; server peak ${fmt(r.peakFds)} fds, ${r.peakRss.toFixed(0)} MiB`,
  );
}
const share = (r: typeof quiet) => (100 * r.ok) / Math.max(1, r.attempts);
rows.push({
  bench,
  measure:
    "device first attempts that got CONNACK 0 (MQTT and MQTT/TLS) while 8 addresses churn idle sockets on every port",
  baselineName: "same device, no strangers",
  baseline: `${share(quiet).toFixed(1)} %`,
  gatehouse: `${share(underChurn).toFixed(1)} % (${underChurn.ok}/${underChurn.attempts}), p99 ${underChurn.connectP99.toFixed(0)} ms`,
  ratio: share(underChurn) / Math.max(1e-9, share(quiet)),
  goal: ">= 95 %",
});
rows.push({
  bench,
  measure: "/healthz over a new connection during that churn, p50 / p99",
  baselineName: "no strangers",
  baseline: `${quiet.healthzP50.toFixed(1)} / ${quiet.healthzP99.toFixed(1)} ms`,
  gatehouse: `${underChurn.healthzP50.toFixed(1)} / ${underChurn.healthzP99.toFixed(1)} ms (${underChurn.failedProbes} of ${underChurn.probes} failed)`,
  ratio: quiet.healthzP99 / underChurn.healthzP99,
  goal: "< 100 ms",
});
rows.push({
  bench,
  measure: "server fds / RSS at their peak during that churn",
  baselineName: "no strangers",
  baseline: `${fmt(quiet.peakFds)} fds, ${quiet.peakRss.toFixed(0)} MiB`,
  gatehouse: `${fmt(underChurn.peakFds)} fds, ${underChurn.peakRss.toFixed(0)} MiB`,
  ratio: quiet.peakRss / underChurn.peakRss,
  goal: "bounded",
});

// 2. 1 000 devices behind one address at once (a NAT after a restart).
async function fleet(port: number, creds: { username: string; password: string }[]) {
  const t = performance.now();
  const results = await Promise.all(
    creds.map((c) => device(port, c, { localAddress: "127.0.0.30", clientId: c.username, keep: true })),
  );
  const all = performance.now() - t;
  const ok = results.filter((r) => r.ms !== undefined).length;
  await Promise.all(results.map((r) => r.client?.endAsync()));
  return { ok, all };
}
const ours = await fleet(ready.mqtt, ready.fleet);
let theirs: { ok: number; all: number } | undefined;
if (hasMosquitto()) {
  const m = await startMosquitto(ready.fleet);
  theirs = await fleet(m.port, ready.fleet);
  await m.stop();
}
console.log(
  `\n${ready.fleet.length} devices behind one address at once: Gatehouse ${ours.ok} in after ${(ours.all / 1000).toFixed(2)} s${theirs ? `; Mosquitto 2 ${theirs.ok} in after ${(theirs.all / 1000).toFixed(2)} s` : ""}`,
);
rows.push({
  bench,
  measure: `${ready.fleet.length} devices behind one address at once: CONNACK 0 on the first attempt, all in after`,
  baselineName: "Mosquitto 2, password file",
  baseline: theirs ? `${theirs.ok}/${ready.fleet.length}, ${(theirs.all / 1000).toFixed(2)} s` : "n/a",
  gatehouse: `${ours.ok}/${ready.fleet.length}, ${(ours.all / 1000).toFixed(2)} s`,
  ratio: theirs ? theirs.all / ours.all : NaN,
  goal: `all ${ready.fleet.length}`,
});
await waitFor(async () => (await server.stats()).sessions === 0, 10_000);

// 3. What one idle socket costs, per listener: 1 500 of them (within the pool) on a fresh server.
const N = 1500;
async function idleCost(target: (r: Ready) => number) {
  const fresh = await startServer(false);
  await Bun.sleep(2000);
  const fd0 = fds(fresh.proc.pid);
  const m0 = await fresh.memory();
  const rss0 = await statusMiB(fresh.proc.pid, "VmRSS");
  const sockets = await idleSockets(target(fresh.ready), N, addresses);
  await Bun.sleep(1000);
  const rss1 = await statusMiB(fresh.proc.pid, "VmRSS");
  const m1 = await fresh.memory();
  const cost = {
    fds: (fds(fresh.proc.pid) - fd0) / N,
    rssKiB: ((rss1 - rss0) * 1024) / N,
    heapKiB: ((m1.heap - m0.heap) * 1024) / N,
  };
  for (const s of sockets) s.destroy();
  await stop(fresh.proc);
  return cost;
}
console.log(
  `\nwhat one idle socket costs the server (${N} open at once on a fresh server, no bytes sent; RSS, and JS heap after a full GC):`,
);
const costs: Record<string, { fds: number; rssKiB: number; heapKiB: number }> = {};
for (const [name, port] of [
  ["MQTT", (r: Ready) => r.mqtt],
  ["MQTT/TLS (no handshake)", (r: Ready) => r.mqtts],
  ["HTTP", (r: Ready) => r.http],
  ["HTTPS (no handshake)", (r: Ready) => r.https],
  ["OPC UA", (r: Ready) => r.opcua],
] as const) {
  costs[name] = await idleCost(port);
  console.log(
    `  ${name.padEnd(24)} ${costs[name]!.fds.toFixed(2)} fd, RSS ${costs[name]!.rssKiB.toFixed(1)} KiB, heap ${costs[name]!.heapKiB.toFixed(1)} KiB`,
  );
}
let mosquittoCost: { fds: number; rssKiB: number } | undefined;
if (hasMosquitto()) {
  const m = await startMosquitto(ready.fleet.slice(0, 1));
  const fd0 = fds(m.pid);
  const rss0 = await statusMiB(m.pid, "VmRSS");
  const sockets = await idleSockets(m.port, N, addresses);
  await Bun.sleep(1000);
  mosquittoCost = { fds: (fds(m.pid) - fd0) / N, rssKiB: (((await statusMiB(m.pid, "VmRSS")) - rss0) * 1024) / N };
  for (const s of sockets) s.destroy();
  console.log(
    `  ${"Mosquitto 2 (MQTT)".padEnd(24)} ${mosquittoCost.fds.toFixed(2)} fd, RSS ${mosquittoCost.rssKiB.toFixed(1)} KiB`,
  );
  await m.stop();
}
const kib = (c: { rssKiB: number }) => c.rssKiB.toFixed(1);
rows.push({
  bench,
  measure: "one idle socket: server RSS",
  baselineName: "Mosquitto 2, MQTT",
  baseline: mosquittoCost ? `${kib(mosquittoCost)} KiB` : "n/a",
  gatehouse: `MQTT ${kib(costs.MQTT!)} KiB, TLS ${kib(costs["MQTT/TLS (no handshake)"]!)}, HTTP ${kib(costs.HTTP!)}, HTTPS ${kib(costs["HTTPS (no handshake)"]!)}, OPC UA ${kib(costs["OPC UA"]!)}`,
  ratio: mosquittoCost ? mosquittoCost.rssKiB / costs.MQTT!.rssKiB : NaN,
});

// 4. 20 000 idle sockets opened at once (not re-opened), over every port.
async function flood(ports: number[], p: number) {
  const fd0 = fds(p);
  const perAddress = Math.ceil(IDLE / (8 * ports.length));
  const workers = [
    startChurn(ports, addresses.slice(0, 4), perAddress, false),
    startChurn(ports, addresses.slice(4), perAddress, false),
  ];
  let peakFds = 0;
  let peakRss = 0;
  const end = performance.now() + 30_000;
  while (
    performance.now() < end &&
    workers.reduce((a, w) => a + w.last.opened + w.last.failed, 0) < 8 * perAddress * ports.length
  ) {
    peakFds = Math.max(peakFds, fds(p));
    peakRss = Math.max(peakRss, await statusMiB(p, "VmRSS"));
    await Bun.sleep(250);
  }
  await Bun.sleep(1000);
  peakFds = Math.max(peakFds, fds(p));
  peakRss = Math.max(peakRss, await statusMiB(p, "VmRSS"));
  const opened = workers.reduce((a, w) => a + w.last.opened, 0);
  await Promise.all(workers.map((w) => stop(w.proc)));
  return { opened, peakFds, fdsAdded: peakFds - fd0, peakRss };
}
const rssBefore = await statusMiB(pid, "VmRSS");
const floodOurs = await flood(allPorts, pid);
const healthzAfter = await healthz(ready.http);
let floodTheirs: Awaited<ReturnType<typeof flood>> | undefined;
if (hasMosquitto()) {
  const m = await startMosquitto(ready.fleet.slice(0, 1));
  floodTheirs = await flood([m.port], m.pid);
  await m.stop();
}
console.log(
  `\n${fmt(IDLE)} idle sockets opened at once: Gatehouse accepted ${fmt(floodOurs.opened)} (every port), held at most ${fmt(floodOurs.fdsAdded)} more fds, RSS ${rssBefore.toFixed(0)} -> ${floodOurs.peakRss.toFixed(0)} MiB, /healthz right after: ${healthzAfter.toFixed(1)} ms` +
    (floodTheirs
      ? `; Mosquitto 2 accepted ${fmt(floodTheirs.opened)}, held ${fmt(floodTheirs.fdsAdded)} more fds, ${floodTheirs.peakRss.toFixed(0)} MiB`
      : ""),
);
rows.push({
  bench,
  measure: `${fmt(IDLE)} idle sockets opened at once: server fds held at most (RSS)`,
  baselineName: "Mosquitto 2 (one port)",
  baseline: floodTheirs ? `+${fmt(floodTheirs.fdsAdded)} fds (${floodTheirs.peakRss.toFixed(0)} MiB)` : "n/a",
  gatehouse: `+${fmt(floodOurs.fdsAdded)} fds (${floodOurs.peakRss.toFixed(0)} MiB)`,
  ratio: floodTheirs ? floodTheirs.fdsAdded / Math.max(1, floodOurs.fdsAdded) : NaN,
  goal: "<= the pool (2 000)",
});
await stop(server.proc);

// 5. The HTTP accept front: /healthz through it against Bun.serve on the port itself (same web app).
async function webServer(mode: "front" | "direct") {
  const proc = Bun.spawn(["bun", "bench/accept-web-server.ts", mode], { stdout: "pipe", stderr: "inherit" });
  const port = Number((await lineReader(proc.stdout).until(/ready (\d+)\n/))[1]);
  return { proc, port };
}
async function load(port: number, p: number) {
  const REQ = 10_000;
  let next = 0;
  const c0 = await cpuMs(p);
  const t = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < REQ) await (await fetch(`http://127.0.0.1:${port}/healthz`)).arrayBuffer();
    }),
  );
  return { rate: REQ / ((performance.now() - t) / 1000), cpuUs: (((await cpuMs(p)) - c0) * 1000) / REQ };
}
const direct = await webServer("direct");
const fronted = await webServer("front");
await load(direct.port, direct.proc.pid);
await load(fronted.port, fronted.proc.pid);
const d: { rate: number; cpuUs: number }[] = [];
const f: { rate: number; cpuUs: number }[] = [];
for (let i = 0; i < 3; i++) {
  d.push(await load(direct.port, direct.proc.pid));
  f.push(await load(fronted.port, fronted.proc.pid));
}
await Promise.all([stop(direct.proc), stop(fronted.proc)]);
const dRate = Math.max(...d.map((x) => x.rate));
const fRate = Math.max(...f.map((x) => x.rate));
const dCpu = median(d.map((x) => x.cpuUs));
const fCpu = median(f.map((x) => x.cpuUs));
console.log(
  `\nHTTP accept front: /healthz, 16 in flight, keep-alive: ${fmt(fRate)} req/s (${fCpu.toFixed(0)} us CPU each) through it, ${fmt(dRate)} req/s (${dCpu.toFixed(0)} us) with Bun.serve on the port itself\n`,
);
rows.push({
  bench,
  measure: "HTTP /healthz through the accept front, 16 in flight",
  baselineName: "Bun.serve on the port itself",
  baseline: `${fmt(dRate)} req/s`,
  gatehouse: `${fmt(fRate)} req/s`,
  ratio: fRate / dRate,
});
rows.push({
  bench,
  measure: "server CPU per /healthz through the accept front",
  baselineName: "Bun.serve on the port itself",
  baseline: `${dCpu.toFixed(0)} us`,
  gatehouse: `${fCpu.toFixed(0)} us`,
  ratio: dCpu / fCpu,
});

report(rows);
