/**
 * bun run bench:flood: strangers who speak before login (findings F1, F2, F3), against the appliance in
 * its own process with its default limits and password hashing (bench/flood-server.ts).
 *
 * 1. Logins held in the hash line (F1/F2): a stranger (bench/flood-attack.ts, the attacker's
 *    pool_paced.py) opens 2 100 MQTT sockets at once and 60 more a second, 10 per address, each a whole
 *    CONNECT for a real name with a wrong password, and waits. Every 2 s: a device with a cached
 *    credential and one whose credential is not cached (a new one each time) connect from another
 *    address (mqtt.js, first attempt, 30 s connect timeout), /healthz is asked over a new connection,
 *    an OPC UA socket says HEL. Then the stranger leaves: how many password hashes still run, and how
 *    long a new device waits for its first CONNACK.
 * 2. Keep-alive connections past --http-max-connections (F3): an MQTT-over-WebSocket client and a
 *    `?wait=25` long poll are open while a stranger (bench/evict-attack.ts, the attacker's evict.py)
 *    holds 2 100 keep-alive connections from 2 100 addresses, each asking /healthz every 4 s.
 */
import mqtt, { type MqttClient } from "mqtt";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { lineReader, stop } from "./lib/procs.ts";
import { fmt, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const ATTACK_SECONDS = Number(process.env.BENCH_FLOOD_SECONDS ?? 30);
const EVICT_SECONDS = Number(process.env.BENCH_EVICT_SECONDS ?? 30);
const rows: Row[] = [];
const bench = "flood";
const password = (name: string) => `${name}-chosen-password`;

interface Stats {
  size: number;
  silent: number;
  spoke: number;
  evicted: number;
  deadline: number;
  refused: number;
  queued: number;
  running: number;
  hashes: number;
  sessions: number;
}

async function startServer() {
  const proc = Bun.spawn(["bun", "bench/flood-server.ts", join(scratchDir("gatehouse-flood-"), "data")], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = lineReader(proc.stdout);
  const ready = JSON.parse((await lines.until(/ready (\{.*\})\n/))[1]!) as {
    mqtt: number;
    http: number;
    opcua: number;
    fresh: number;
  };
  const stats = async () => {
    proc.stdin.write("stats\n");
    proc.stdin.flush();
    return JSON.parse((await lines.until(/stats (\{.*\})\n/))[1]!) as Stats;
  };
  return { proc, ready, stats };
}

function spawnWorker(file: string, args: unknown) {
  const proc = Bun.spawn(["bun", join(import.meta.dir, file), JSON.stringify(args)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = lineReader(proc.stdout);
  let last = "";
  void (async () => {
    for (;;) {
      const l = await lines.next().catch(() => undefined);
      if (l === undefined) return;
      last = l;
    }
  })();
  return {
    proc,
    get last() {
      return last;
    },
  };
}

/** device: one mqtt.js connect (first attempt only); its latency if CONNACK 0 came, else the failure */
function device(
  port: number,
  username: string,
  localAddress: string,
  opts: { keep?: boolean; ws?: string } = {},
): Promise<{ ms?: number; failure?: string; client?: MqttClient }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const options = {
      username,
      password: password(username),
      clientId: `${username}-${Math.random().toString(36).slice(2, 8)}`,
      protocolVersion: 4 as const,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      keepalive: 60,
    };
    const client = opts.ws
      ? mqtt.connect(opts.ws, options)
      : new mqtt.MqttClient(() => netConnect({ host: "127.0.0.1", port, localAddress }), options);
    let done = false;
    const finish = (failure?: string) => {
      if (done) return;
      done = true;
      const ms = performance.now() - t;
      if (!failure && opts.keep) return resolve({ ms, client });
      client.end(true);
      resolve(failure ? { failure } : { ms });
    };
    client.once("connect", () => finish());
    client.once("error", (err) => finish(`error ${(err as { code?: number }).code ?? err.message}`));
    client.once("close", () => finish("closed before CONNACK"));
  });
}

/** healthz: GET /healthz over a new connection; its latency, or the failure */
function healthz(port: number): Promise<{ ms?: number; failure?: string }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const s = netConnect({ host: "127.0.0.1", port }, () =>
      s.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    );
    const timer = setTimeout(() => (s.destroy(), resolve({ failure: "timeout" })), 20_000);
    s.once("data", (d) => {
      clearTimeout(timer);
      s.destroy();
      const ok = d.toString().startsWith("HTTP/1.1 200");
      resolve(ok ? { ms: performance.now() - t } : { failure: d.toString().split("\r\n")[0] });
    });
    s.once("close", () => (clearTimeout(timer), resolve({ failure: "closed" })));
    s.on("error", () => {});
  });
}

/** opcuaHello: an OPC UA socket sends HEL (Part 6 §7.1.2.3); its latency if ACK came, or the failure */
function opcuaHello(port: number): Promise<{ ms?: number; failure?: string }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const url = Buffer.from(`opc.tcp://127.0.0.1:${port}`);
    const hel = Buffer.alloc(32 + url.length);
    hel.write("HELF", 0, "latin1");
    hel.writeUInt32LE(hel.length, 4);
    hel.writeUInt32LE(0, 8); // protocol version
    hel.writeUInt32LE(65536, 12);
    hel.writeUInt32LE(65536, 16);
    hel.writeUInt32LE(0, 20);
    hel.writeUInt32LE(0, 24);
    hel.writeInt32LE(url.length, 28);
    url.copy(hel, 32);
    const s = netConnect({ host: "127.0.0.1", port }, () => s.write(hel));
    const timer = setTimeout(() => (s.destroy(), resolve({ failure: "timeout" })), 20_000);
    s.once("data", (d: Buffer) => {
      clearTimeout(timer);
      s.destroy();
      resolve(d.subarray(0, 3).toString() === "ACK" ? { ms: performance.now() - t } : { failure: "not ACK" });
    });
    s.once("close", () => (clearTimeout(timer), resolve({ failure: "closed" })));
    s.on("error", () => {});
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN;
};
type Probe = { ms?: number; failure?: string };
const summary = (ps: Probe[]) => {
  const ok = ps.filter((p) => p.ms !== undefined).map((p) => p.ms!);
  return {
    ok: ok.length,
    n: ps.length,
    p50: pct(ok, 0.5),
    max: ok.length ? Math.max(...ok) : NaN,
    failures: [...new Set(ps.filter((p) => p.failure).map((p) => p.failure))].join(", "),
  };
};
const show = (ps: Probe[]) => {
  const s = summary(ps);
  return `${s.ok}/${s.n} in (p50 ${fmt(s.p50)} ms, max ${fmt(s.max)} ms)${s.failures ? `; failed: ${s.failures}` : ""}`;
};

// ---------------------------------------------------------------- 1. logins held in the hash line

const server = await startServer();
const { ready } = server;
{
  // the cached device has logged in once: its credential is in the verified cache from now on
  const warm = await device(ready.mqtt, "cached-device", "127.0.0.20");
  if (warm.ms === undefined) throw new Error(`bench: the cached device could not log in (${warm.failure})`);
}
let fresh = 0;
const nextFresh = () => `fresh-device-${fresh++ % ready.fresh}`;
async function probeRound(results: Record<string, Probe[]>) {
  const [c, f, h, o] = await Promise.all([
    device(ready.mqtt, "cached-device", "127.0.0.20"),
    device(ready.mqtt, nextFresh(), "127.0.0.21"),
    healthz(ready.http),
    opcuaHello(ready.opcua),
  ]);
  results.cached!.push(c);
  results.fresh!.push(f);
  results.healthz!.push(h);
  results.opcua!.push(o);
}
const quiet: Record<string, Probe[]> = { cached: [], fresh: [], healthz: [], opcua: [] };
for (let i = 0; i < 3; i++) await probeRound(quiet);

const attacker = spawnWorker("flood-attack.ts", {
  port: ready.mqtt,
  user: "flood-target",
  init: 2100,
  rate: 60,
  perAddress: 10,
  base: 8,
});
const underAttack: Record<string, Probe[]> = { cached: [], fresh: [], healthz: [], opcua: [] };
const peak = { spoke: 0, queued: -1, size: 0 };
const t0 = performance.now();
const start = await server.stats();
await Bun.sleep(2000); // the first 2 100 sockets are open
const rounds: Promise<void>[] = [];
const sampler = (async () => {
  while (performance.now() - t0 < ATTACK_SECONDS * 1000) {
    const s = await server.stats();
    peak.spoke = Math.max(peak.spoke, s.spoke);
    peak.queued = Math.max(peak.queued, s.queued);
    peak.size = Math.max(peak.size, s.size);
    await Bun.sleep(500);
  }
})();
while (performance.now() - t0 < ATTACK_SECONDS * 1000) {
  rounds.push(probeRound(underAttack));
  await Bun.sleep(2000);
}
await Promise.all([...rounds, sampler]);
const atStop = await server.stats();
const attackerSays = attacker.last;
await stop(attacker.proc);
const leftAt = performance.now();
await Bun.sleep(1000);
const oneSecondLater = await server.stats();
await Bun.sleep(9000);
const tenSecondsLater = await server.stats();
const after = await device(ready.mqtt, nextFresh(), "127.0.0.22");
await stop(server.proc);

console.log(
  `\nF1/F2: ${attackerSays} (stranger, after ${ATTACK_SECONDS} s); server peak: pool ${fmt(peak.size)} sockets, ` +
    `${fmt(peak.spoke)} spoke, hash line ${peak.queued < 0 ? "n/a" : fmt(peak.queued)} waiting; ` +
    `${fmt(atStop.refused - start.refused)} sockets that spoke evicted, ${fmt(atStop.evicted - start.evicted)} evicted`,
);
for (const [name, r] of [
  ["without strangers", quiet],
  ["with strangers", underAttack],
] as const) {
  console.log(`  ${name}:`);
  console.log(`    device, cached credential:     ${show(r.cached!)}`);
  console.log(`    device, uncached credential:   ${show(r.fresh!)}`);
  console.log(`    /healthz (new connection):     ${show(r.healthz!)}`);
  console.log(`    OPC UA HEL (new connection):   ${show(r.opcua!)}`);
}
const hashesAfter = tenSecondsLater.hashes - atStop.hashes;
console.log(
  `  the strangers left: ${fmt(oneSecondLater.queued)} hashes still waiting 1 s later, ${fmt(hashesAfter)} hashes run in the 10 s after; ` +
    `a new device then: ${after.ms !== undefined ? `${fmt(after.ms)} ms to CONNACK 0` : `failed (${after.failure})`} (${fmt((performance.now() - leftAt) / 1000)} s after they left)`,
);
const share = (ps: Probe[]) => summary(ps).ok / Math.max(1, ps.length);
const cell = (ps: Probe[]) => {
  const s = summary(ps);
  return `${s.ok}/${s.n}, p50 ${fmt(s.p50)} ms, max ${fmt(s.max)} ms`;
};
for (const [kind, label] of [
  ["cached", "device with a cached credential, first attempts in"],
  ["fresh", "device with an uncached credential (argon2id), first attempts in"],
  ["healthz", "/healthz over a new connection answered"],
  ["opcua", "OPC UA HEL over a new connection answered"],
] as const) {
  rows.push({
    bench,
    measure: `MQTT login flood (2 100 + 60/s wrong passwords, 10 per address): ${label}`,
    baselineName: "no strangers",
    baseline: cell(quiet[kind]!),
    gatehouse: cell(underAttack[kind]!),
    ratio: share(underAttack[kind]!) / Math.max(1e-9, share(quiet[kind]!)),
    goal: "all, first attempt",
  });
}
rows.push({
  bench,
  measure: "the flood's sockets closed: hashes run in the 10 s after",
  baselineName: "hashes under way then",
  baseline: `${fmt(Math.max(0, atStop.running))}`,
  gatehouse: `${fmt(hashesAfter)}`,
  ratio: Math.max(1, atStop.running) / Math.max(1, hashesAfter),
  goal: "no more than were running",
});

// ---------------------------------------------------------------- 2. long-lived connections past the cap

const web = await startServer();
const wsUrl = `ws://127.0.0.1:${web.ready.http}/mqtt`;
const wsClient = await device(0, "ws-device", "", { keep: true, ws: wsUrl });
if (!wsClient.client) throw new Error(`bench: the WebSocket device could not log in (${wsClient.failure})`);
let wsClosedAt: number | undefined;
const e0 = performance.now();
wsClient.client.once("close", () => (wsClosedAt ??= performance.now() - e0));
const auth = `Basic ${Buffer.from(`poller:${password("poller")}`).toString("base64")}`;
const pollWait = Math.min(55, EVICT_SECONDS - 5);
const poll = fetch(`http://127.0.0.1:${web.ready.http}/api/v1/data/bench/evict?wait=${pollWait}`, {
  headers: { authorization: auth },
}).then(
  async (r) => ({ status: r.status, at: performance.now() - e0, body: await r.text() }),
  (err: Error) => ({ status: 0, at: performance.now() - e0, body: err.message }),
);
const evict = spawnWorker("evict-attack.ts", { port: web.ready.http, connections: 2100, perAddress: 1 });
const webProbes: Probe[] = [];
while (performance.now() - e0 < EVICT_SECONDS * 1000) {
  webProbes.push(await healthz(web.ready.http));
  await Bun.sleep(1000);
}
const evictSays = evict.last;
const polled = await poll;
await stop(evict.proc);
const wsAlive = wsClient.client.connected;
wsClient.client.end(true);
await stop(web.proc);
console.log(
  `\nF3: stranger: ${evictSays}; MQTT over WebSocket ${wsAlive ? `still connected after ${EVICT_SECONDS} s` : `closed at ${fmt((wsClosedAt ?? 0) / 1000, 1)} s`}; ` +
    `?wait=${pollWait} long poll ${polled.status ? `answered ${polled.status} at ${fmt(polled.at / 1000, 1)} s` : `failed at ${fmt(polled.at / 1000, 1)} s (${polled.body.slice(0, 80)})`}; ` +
    `/healthz over new connections meanwhile: ${show(webProbes)}`,
);
rows.push({
  bench,
  measure: `2 100 keep-alive connections from 2 100 addresses asking /healthz: a WebSocket MQTT client and a ?wait=${pollWait} long poll`,
  baselineName: "what they should get",
  baseline: `connected ${EVICT_SECONDS} s; answered at ${pollWait} s`,
  gatehouse: `${wsAlive ? `connected ${EVICT_SECONDS} s` : `closed at ${fmt((wsClosedAt ?? 0) / 1000, 1)} s`}; ${polled.status ? `answered ${polled.status} at ${fmt(polled.at / 1000, 1)} s` : `cut at ${fmt(polled.at / 1000, 1)} s`}`,
  ratio: (wsAlive ? 0.5 : 0) + (polled.status ? 0.5 : 0),
  goal: "both kept",
});
report(rows);
process.exit(0);
