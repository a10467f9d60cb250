/**
 * bun run bench:pipeline: packets pipelined behind CONNECT, before the CONNACK (3.1.1 §3.1.4).
 * 1. Strangers: BENCH_STRANGERS sockets each send a CONNECT with a wrong password (argon2id credential,
 *    so logins queue) and then up to 1 000 max-size (1 MB) PUBLISHes, as fast as TCP takes them, for
 *    BENCH_SECONDS: the broker's peak RSS over its idle RSS, and how much TCP took from them.
 * 2. A device: one socket sends its CONNECT and BENCH_PIPELINE small QoS 1 PUBLISHes in one write:
 *    time to the last PUBACK, and whether every one was acknowledged.
 * Against Mosquitto 2 with a password file when it is installed. Loopback; every process is stopped.
 */
import * as mqttPacket from "mqtt-packet";
import { connect } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { hasMosquitto, lineReader, startMosquitto, statusMiB, stop } from "./lib/procs.ts";
import { fmt, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const STRANGERS = Number(process.env.BENCH_STRANGERS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const PIPELINE = Number(process.env.BENCH_PIPELINE ?? 20_000);
const PASSWORD = "the-chosen-password-1";
const MAX_PAYLOAD = 1024 * 1024 - 64;

const connectFor = (clientId: string, password: string) =>
  mqttPacket.generate({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId,
    username: "pipe-dev",
    password: Buffer.from(password),
  } as never);

/** strangers: sockets pushing max-size PUBLISHes behind a refused CONNECT; the peak RSS of `pid` above its start */
async function strangers(port: number, pid: number) {
  const idle = await statusMiB(pid, "VmRSS");
  const big = mqttPacket.generate({
    cmd: "publish",
    topic: "flood/x",
    payload: Buffer.alloc(MAX_PAYLOAD),
    qos: 0,
  } as never);
  let refused = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: STRANGERS },
      (_, i) =>
        new Promise<ReturnType<typeof connect>>((resolve) => {
          const s = connect(port, "127.0.0.1");
          let sent = 0;
          s.on("error", () => {});
          s.on("data", (d) => d[0] === 0x20 && refused++);
          const pump = () => {
            for (let n = 0; n < 4; n++) if (s.destroyed || sent++ >= 1000 || !s.write(big)) return; // wait for drain
            setImmediate(pump);
          };
          s.on("drain", pump);
          s.once("connect", () => (s.write(connectFor(`stranger-${i}`, "not-the-password")), pump(), resolve(s)));
        }),
    ),
  );
  let peak = idle;
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    await Bun.sleep(200);
    peak = Math.max(peak, await statusMiB(pid, "VmRSS"));
  }
  const taken = sockets.reduce((n, s) => n + s.bytesWritten - s.writableLength, 0);
  for (const s of sockets) s.destroy();
  return { grew: peak - idle, takenMiB: taken / 1048576, refused };
}

/** device: one CONNECT with PIPELINE QoS 1 PUBLISHes behind it in one write; ms to the last PUBACK */
async function device(port: number) {
  const packets = [connectFor("pipe-device", PASSWORD)];
  for (let i = 0; i < PIPELINE; i++) {
    packets.push(
      mqttPacket.generate({
        cmd: "publish",
        topic: "pipe/x",
        payload: String(i),
        qos: 1,
        messageId: (i % 65535) + 1,
      } as never),
    );
  }
  return new Promise<{ ms: number; acked: number }>((resolve) => {
    const s = connect(port, "127.0.0.1");
    const parser = mqttPacket.parser();
    let acked = 0;
    const t = performance.now();
    const done = () => (s.destroy(), resolve({ ms: performance.now() - t, acked }));
    parser.on("packet", (p) => p.cmd === "puback" && ++acked === PIPELINE && done());
    s.on("data", (d: Buffer) => parser.parse(d));
    s.on("close", done);
    s.on("error", () => {});
    s.once("connect", () => s.write(Buffer.concat(packets)));
  });
}

const dir = scratchDir("gatehouse-pipeline-");
writeFileSync(join(dir, "fleet.json"), JSON.stringify([{ username: "pipe-dev", type: "mqtt", password: PASSWORD }]));
const imported = Bun.spawnSync(
  ["bun", "src/main.ts", "integrations", "import", join(dir, "fleet.json"), "--data-dir", join(dir, "data"), "--json"],
  {
    stdout: "pipe",
    stderr: "inherit",
  },
);
if (imported.exitCode !== 0) throw new Error("import failed");
// the appliance in its own process (MQTT only), so its RSS is its own
const proc = Bun.spawn(["bun", "bench/storm-server.ts", join(dir, "data")], { stdout: "pipe", stderr: "inherit" });
const port = Number((await lineReader(proc.stdout).until(/ready (\d+)\n/))[1]);
const g = { strangers: await strangers(port, proc.pid), device: await device(port) };
await stop(proc);
let m: typeof g | undefined;
if (hasMosquitto()) {
  const mosq = await startMosquitto([{ username: "pipe-dev", password: PASSWORD }]);
  m = { strangers: await strangers(mosq.port, mosq.pid), device: await device(mosq.port) };
  await mosq.stop();
}

console.log(
  `\n${STRANGERS} strangers, each a wrong-password CONNECT and up to 1 000 x 1 MB PUBLISHes behind it, for ${SECONDS} s; a device with ${fmt(PIPELINE)} QoS 1 PUBLISHes behind its CONNECT\n`,
);
console.log(
  "| broker | strangers: peak RSS growth | taken by TCP | CONNACKs | device: last PUBACK after | acknowledged |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const [name, r] of [
  ["Gatehouse", g],
  ["Mosquitto 2", m],
] as const) {
  if (!r) continue;
  const s = r.strangers;
  console.log(
    `| ${name} | ${fmt(s.grew)} MiB | ${fmt(s.takenMiB)} MiB | ${s.refused} | ${fmt(r.device.ms)} ms | ${fmt(r.device.acked)} |`,
  );
}
const rows: Row[] = [];
if (m) {
  rows.push(
    {
      bench: "pipeline",
      measure: `${STRANGERS} strangers pipelining 1 MB PUBLISHes behind a refused CONNECT: peak RSS growth`,
      baselineName: "Mosquitto 2",
      baseline: `${fmt(m.strangers.grew)} MiB`,
      gatehouse: `${fmt(g.strangers.grew)} MiB`,
      ratio: Math.max(1, m.strangers.grew) / Math.max(1, g.strangers.grew),
      goal: "bounded: < 1 MiB per stranger",
    },
    {
      bench: "pipeline",
      measure: `${fmt(PIPELINE)} QoS 1 PUBLISHes behind CONNECT: last PUBACK`,
      baselineName: "Mosquitto 2",
      baseline: `${fmt(m.device.ms)} ms`,
      gatehouse: `${fmt(g.device.ms)} ms`,
      ratio: m.device.ms / g.device.ms,
      goal: "all acknowledged",
    },
  );
}
report(rows);
if (g.device.acked !== PIPELINE) {
  console.error(`pipeline: only ${g.device.acked} of ${PIPELINE} acknowledged`);
  process.exit(1);
}
process.exit(0);
