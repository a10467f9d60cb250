/**
 * bun run bench:storm: a restart storm. N devices, each with its own credential, reconnect at once
 * right after the broker starts (nothing cached): time until all are in, p99 CONNACK, the broker's
 * peak RSS; Gatehouse with appliance-generated passwords (fast hash), Gatehouse with chosen passwords
 * (argon2id), and Mosquitto with a password file (PBKDF2-SHA512) when it is installed. Also times
 * importing the N credentials. Loopback only; every process is stopped at the end.
 */
import mqtt from "mqtt";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { launchAppliance } from "./lib/appliance.ts";
import { hasMosquitto, lineReader, mosquittoPasswordFile, startMosquitto, statusMiB, stop } from "./lib/procs.ts";
import { fmt, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const N = Number(process.env.BENCH_DEVICES ?? 1000);
const IMPORT = Number(process.env.BENCH_IMPORT ?? 10_000);

async function storm(port: number, creds: { username: string; password: string }[]) {
  const t0 = performance.now();
  const times: number[] = [];
  const clients = await Promise.all(
    creds.map(
      (c) =>
        new Promise<mqtt.MqttClient>((resolve, reject) => {
          const start = performance.now();
          const client = mqtt.connect({
            host: "127.0.0.1",
            port,
            ...c,
            clientId: c.username,
            reconnectPeriod: 0,
            connectTimeout: 60_000,
            protocolVersion: 4,
          });
          client.once("connect", () => (times.push(performance.now() - start), resolve(client)));
          client.once("error", reject);
        }),
    ),
  );
  const all = performance.now() - t0;
  await Promise.all(clients.map((c) => c.endAsync()));
  times.sort((a, b) => a - b);
  return { all, p99: times[Math.floor(times.length * 0.99)]! };
}

const results: string[] = [];
const measured: Record<string, { all: number; p99: number; rss: number; importMs: number }> = {};
const row = (name: string, r: { all: number; p99: number }, rss: number, importMs: number) => {
  measured[name] = { ...r, rss, importMs };
  results.push(
    `| ${name} | ${(r.all / 1000).toFixed(2)} s | ${r.p99.toFixed(0)} ms | ${rss.toFixed(0)} MiB | ${(importMs / 1000).toFixed(2)} s |`,
  );
};
const GENERATED = "Gatehouse, generated passwords (fast hash)";
const CHOSEN = "Gatehouse, chosen passwords (argon2id)";
const MOSQUITTO = "Mosquitto 2, password file (PBKDF2-SHA512)";

for (const mode of ["generated", "chosen"] as const) {
  const dir = scratchDir("gatehouse-storm-");
  const rows = Array.from({ length: N }, (_, i) => ({
    username: `dev-${i}`,
    type: "mqtt",
    ...(mode === "chosen" ? { password: `chosen-password-${i}` } : {}),
  }));
  writeFileSync(join(dir, "fleet.json"), JSON.stringify(rows));
  // the CLI works on an existing database only: a first start makes it (not timed), then the fleet is imported
  await (await launchAppliance({ dataDir: join(dir, "data") })).stop();
  const t = performance.now();
  const imp = Bun.spawnSync(
    [
      "bun",
      "src/main.ts",
      "integrations",
      "import",
      join(dir, "fleet.json"),
      "--data-dir",
      join(dir, "data"),
      "--json",
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  const importMs = performance.now() - t;
  const imported = JSON.parse(imp.stdout.toString()) as { username: string; password?: string }[];
  const creds = imported.map((r, i) => ({ username: r.username, password: r.password ?? `chosen-password-${i}` }));
  const proc = Bun.spawn(["bun", "bench/storm-server.ts", join(dir, "data")], { stdout: "pipe", stderr: "inherit" });
  const port = Number((await lineReader(proc.stdout).until(/ready (\d+)\n/))[1]);
  const r = await storm(port, creds);
  row(mode === "generated" ? GENERATED : CHOSEN, r, await statusMiB(proc.pid, "VmHWM"), importMs);
  await stop(proc);
}

if (hasMosquitto()) {
  const creds = Array.from({ length: N }, (_, i) => ({ username: `dev-${i}`, password: `mosquitto-password-${i}` }));
  const m = await startMosquitto(creds);
  const r = await storm(m.port, creds);
  row(MOSQUITTO, r, await statusMiB(m.pid, "VmHWM"), m.passwdMs);
  await m.stop();
}

console.log(`restart storm: ${N} devices, each its own credential, connect at once right after the broker starts\n`);
console.log("| broker | all connected | p99 CONNACK | peak RSS | import of the credentials |");
console.log("| --- | --- | --- | --- | --- |");
for (const r of results) console.log(r);

// A fleet imported: IMPORT integrations with generated passwords, against mosquitto_passwd -U on as many.
const dir = scratchDir("gatehouse-import-");
writeFileSync(
  join(dir, "fleet.json"),
  JSON.stringify(Array.from({ length: IMPORT }, (_, i) => ({ username: `dev-${i}`, type: "mqtt" }))),
);
await (await launchAppliance({ dataDir: join(dir, "data") })).stop(); // the database the CLI needs (not timed)
const t = performance.now();
const imported = Bun.spawnSync(
  ["bun", "src/main.ts", "integrations", "import", join(dir, "fleet.json"), "--data-dir", join(dir, "data"), "--json"],
  { stdout: "pipe", stderr: "inherit" },
);
const importMs = performance.now() - t;
if (imported.exitCode !== 0) throw new Error("import failed");
const passwdMs = Bun.which("mosquitto_passwd")
  ? mosquittoPasswordFile(
      Array.from({ length: IMPORT }, (_, i) => ({ username: `dev-${i}`, password: `mosquitto-password-${i}` })),
    ).passwdMs
  : NaN;
console.log(
  `\nimport of ${IMPORT} integrations with generated passwords: ${(importMs / 1000).toFixed(2)} s (mosquitto_passwd -U: ${(passwdMs / 1000).toFixed(2)} s)\n`,
);

const rows: Row[] = [];
const g = measured[GENERATED]!;
const c = measured[CHOSEN]!;
const m = measured[MOSQUITTO];
const secs = (ms: number) => `${fmt(ms / 1000, 2)} s`;
if (m) {
  const vs = "Mosquitto 2, password file";
  rows.push(
    {
      bench: "restart storm",
      measure: `${N} devices at once after a start, generated passwords: all connected`,
      baselineName: vs,
      baseline: secs(m.all),
      gatehouse: secs(g.all),
      ratio: m.all / g.all,
      goal: "<= 2x Mosquitto (ratio >= 0.5)",
    },
    {
      bench: "restart storm",
      measure: "the same: peak RSS",
      baselineName: vs,
      baseline: `${fmt(m.rss)} MiB`,
      gatehouse: `${fmt(g.rss)} MiB`,
      ratio: m.rss / g.rss,
      goal: "< 150 MiB",
    },
    {
      bench: "restart storm",
      measure: `${N} devices, chosen passwords (argon2id): all connected`,
      baselineName: vs,
      baseline: secs(m.all),
      gatehouse: secs(c.all),
      ratio: m.all / c.all,
      goal: "< 30 s",
    },
    {
      bench: "import",
      measure: `${fmt(IMPORT)} integrations, generated passwords`,
      baselineName: "mosquitto_passwd -U",
      baseline: secs(passwdMs),
      gatehouse: secs(importMs),
      ratio: passwdMs / importMs,
      goal: "< 10 s",
    },
  );
} else {
  rows.push({
    bench: "restart storm",
    measure: `${N} devices: generated vs chosen passwords, all connected`,
    baselineName: "chosen passwords",
    baseline: secs(c.all),
    gatehouse: secs(g.all),
    ratio: c.all / g.all,
  });
}
report(rows);
process.exit(0);
