/**
 * bun run bench:cli: what CLI verbs cost a running appliance. The appliance (from source, MQTT and OPC
 * UA off) holds BENCH_USERS integrations' worth of work: a Mosquitto password file of BENCH_USERS users
 * (default 100 000) is imported beside it while /healthz is asked every 50 ms, then a backup, an
 * export and one `integrations disable` (each a reconcile, or none, in the appliance). Prints the
 * time of each verb and the worst and p99 /healthz latency while it ran, the same import with the
 * appliance stopped, and a restore of the result. No baseline (nothing comparable exists); the
 * figures in the README were measured on the 2-core machine of the project, shared.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { closeDatabase } from "../src/db/client.ts";
import { openDataDir } from "../src/db/data-dir.ts";
import { serveArgs } from "./lib/appliance.ts";
import { scratchDir } from "./lib/scratch.ts";

const users = Number(process.env.BENCH_USERS ?? 100_000);
const main = join(import.meta.dir, "../src/main.ts");
const root = join(import.meta.dir, "..");
const work = scratchDir("gatehouse-bench-cli-");
const hash = `$7$101$c29tZXNhbHRzYWx0c2FsdA==$${"A".repeat(86)}==`;
const passwd = join(work, "passwd");
writeFileSync(passwd, Array.from({ length: users }, (_, i) => `user-${i}:${hash}`).join("\n"));

function newDataDir(name: string): string {
  const dir = join(work, name);
  closeDatabase(openDataDir(dir));
  return dir;
}

async function cli(args: string[]): Promise<{ code: number; seconds: number; err: string }> {
  const t = performance.now();
  const p = Bun.spawn(["bun", main, ...args], { cwd: root, stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  return { code, seconds: (performance.now() - t) / 1000, err: err.trim().split("\n").slice(-1)[0] ?? "" };
}

/** probed: runs `args` while /healthz is asked every 50 ms (and 2 s after); latency figures in ms. */
async function probed(base: string, args: string[]) {
  const latencies: number[] = [];
  let running = true;
  const probe = (async () => {
    while (running) {
      const t = performance.now();
      await (await fetch(`${base}/healthz`)).text();
      latencies.push(performance.now() - t);
      await Bun.sleep(50);
    }
  })();
  const r = args.length ? await cli(args) : { code: 0, seconds: 0, err: "" };
  await Bun.sleep(2000); // the appliance reconciles after the CLI has committed
  running = false;
  await probe;
  latencies.sort((a, b) => a - b);
  return { ...r, worst: latencies.at(-1) ?? 0, p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0 };
}

const dir = newDataDir("running");
const serve = Bun.spawn(
  ["bun", main, "serve", ...serveArgs({ dataDir: dir, ports: { mqtt: "off" }, args: ["--log-level", "warn"] })],
  { cwd: root, stdout: "pipe", stderr: "inherit" },
);
// the port: at warn level nothing is logged, so ask the OS which port the process listens on
let base = "";
for (let i = 0; i < 200 && !base; i++) {
  await Bun.sleep(50);
  const ss = Bun.spawnSync(["ss", "-ltnpH"]).stdout.toString();
  const m = ss
    .split("\n")
    .find((l) => l.includes(`pid=${serve.pid},`))
    ?.match(/127\.0\.0\.1:(\d+)/);
  if (m) base = `http://127.0.0.1:${m[1]}`;
}
if (!base) throw new Error("the appliance did not start");

const rows: string[] = [];
const show = (name: string, r: { code: number; seconds: number; worst: number; p99: number; err: string }) => {
  rows.push(
    `| ${name} | ${r.code === 0 ? `${r.seconds.toFixed(1)} s` : `exit ${r.code}: ${r.err}`} | ${r.worst.toFixed(0)} ms | ${r.p99.toFixed(0)} ms |`,
  );
  console.log(rows.at(-1));
};
try {
  show(
    `import ${users} Mosquitto users`,
    await probed(base, ["integrations", "import", "--mosquitto-passwd", passwd, "--data-dir", dir]),
  );
  show("backup", await probed(base, ["backup", join(work, "backup.db"), "--data-dir", dir]));
  show("export", await probed(base, ["export", join(work, "export.json"), "--data-dir", dir]));
  show("integrations list --json", await probed(base, ["integrations", "list", "--json", "--data-dir", dir]));
  show("integrations disable (one row)", await probed(base, ["integrations", "disable", "user-5", "--data-dir", dir]));
} finally {
  serve.kill("SIGTERM");
  await serve.exited;
}
const stopped = await cli([
  "integrations",
  "import",
  "--mosquitto-passwd",
  passwd,
  "--data-dir",
  newDataDir("stopped"),
]);
const restored = await cli(["restore", join(work, "backup.db"), "--data-dir", newDataDir("restored")]);
console.log(`\n| beside the running appliance (${users} integrations) | time | worst /healthz | p99 /healthz |`);
console.log("| --- | --- | --- | --- |");
for (const r of rows) console.log(r);
console.log(`\nthe same import with the appliance stopped: ${stopped.seconds.toFixed(1)} s (exit ${stopped.code})`);
console.log(
  `restore of the ${users}-integration backup (checks, migration, core load, pages rendered): ${restored.seconds.toFixed(1)} s (exit ${restored.code})`,
);
