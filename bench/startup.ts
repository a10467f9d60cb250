/**
 * bun run bench:startup: the compiled binary: time from exec to the `ready` line and idle RSS, on its
 * first start from an empty folder (TLS and OPC UA certificates are made) and on a restart of the same
 * data dir (every later start), with OPC UA off (its share), on, and on with the whole standard
 * nodeset (`--opcua-full-nodeset true`, what the trimmed one saves), in one run.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { launchAppliance, type PortSetting } from "./lib/appliance.ts";
import { statusMiB } from "./lib/procs.ts";
import { fmt, median, report } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const runs = Number(process.env.BENCH_RUNS ?? 3);
const build = Bun.spawnSync(["bun", "run", "build"], { stdout: "ignore", stderr: "inherit" });
if (build.exitCode !== 0) process.exit(1);
const binary = join(import.meta.dir, "..", "dist", "gatehouse");

type Start = { readyMs: number; httpMs: number; rss: number; code: number };
async function start(dir: string, config: { opcua: PortSetting; args?: string[] }): Promise<Start> {
  const app = await launchAppliance({
    binary,
    dataDir: join(dir, "data"),
    ports: { https: 0, mqtts: 0, opcua: config.opcua },
    args: config.args,
    cwd: dir,
    env: { GATEHOUSE_ADMIN_PASSWORD: "bench-password" },
  });
  await Bun.sleep(3000);
  const rss = await statusMiB(app.pid, "VmRSS");
  const code = await app.stop();
  return { readyMs: app.readyMs, httpMs: app.listenedMs.http ?? 0, rss, code };
}

const configs = {
  "OPC UA off": { opcua: "off" },
  "OPC UA on": { opcua: 0 },
  "OPC UA on, full nodeset": { opcua: 0, args: ["--opcua-full-nodeset", "true"] },
} satisfies Record<string, { opcua: PortSetting; args?: string[] }>;
type Config = keyof typeof configs;
const results = new Map<string, Start[]>();
const push = (key: string, r: Start) => results.set(key, [...(results.get(key) ?? []), r]);
for (let i = 0; i < runs; i++) {
  for (const [name, config] of Object.entries(configs)) {
    const dir = scratchDir("gatehouse-startup-");
    push(`${name}|first`, await start(dir, config));
    push(`${name}|restart`, await start(dir, config));
    rmSync(dir, { recursive: true, force: true });
  }
}
const med = (config: Config, when: "first" | "restart", k: keyof Start) =>
  median(results.get(`${config}|${when}`)!.map((r) => r[k]));
for (const when of ["first", "restart"] as const) {
  for (const config of Object.keys(configs) as Config[]) {
    const rs = results.get(`${config}|${when}`)!;
    console.log(
      `${`${config}, ${when === "first" ? "first start" : "restart"}`.padEnd(40)} http serving ${fmt(med(config, when, "httpMs")).padStart(5)} ms   all ready ${fmt(med(config, when, "readyMs")).padStart(5)} ms   idle RSS ${fmt(med(config, when, "rss")).padStart(4)} MB   SIGTERM exit ${rs.map((r) => r.code).join(",")}`,
    );
  }
}
console.log(`(median of ${runs}; a first start makes the TLS and OPC UA certificates, a restart finds them)\n`);

const row = (measure: string, baselineName: string, base: number, gh: number, unit: string, goal?: string) => ({
  bench: "start-up",
  measure,
  baselineName,
  baseline: `${fmt(base)} ${unit}`,
  gatehouse: `${fmt(gh)} ${unit}`,
  ratio: base / gh,
  goal,
});
report([
  row(
    "compiled binary, restart: all listeners ready",
    "same binary, OPC UA off",
    med("OPC UA off", "restart", "readyMs"),
    med("OPC UA on", "restart", "readyMs"),
    "ms",
    "< 1 200 ms",
  ),
  row(
    "compiled binary, restart: idle RSS",
    "same binary, OPC UA off",
    med("OPC UA off", "restart", "rss"),
    med("OPC UA on", "restart", "rss"),
    "MB",
    "< 110 MB",
  ),
  row(
    "compiled binary, first start (certificates made): all ready",
    "same binary, OPC UA off",
    med("OPC UA off", "first", "readyMs"),
    med("OPC UA on", "first", "readyMs"),
    "ms",
    "< 1 200 ms",
  ),
  row(
    "compiled binary, first start: idle RSS",
    "same binary, OPC UA off",
    med("OPC UA off", "first", "rss"),
    med("OPC UA on", "first", "rss"),
    "MB",
  ),
  row(
    "OPC UA trimmed nodeset, restart: idle RSS",
    "--opcua-full-nodeset true",
    med("OPC UA on, full nodeset", "restart", "rss"),
    med("OPC UA on", "restart", "rss"),
    "MB",
  ),
  row(
    "OPC UA trimmed nodeset, restart: all ready",
    "--opcua-full-nodeset true",
    med("OPC UA on, full nodeset", "restart", "readyMs"),
    med("OPC UA on", "restart", "readyMs"),
    "ms",
  ),
]);

// Where OPC UA's memory goes, stage by stage (from source, in a fresh process: a breakdown, not the binary's figure).
console.log("\nwhere the memory goes (bun bench/opcua-memory.ts):");
const stages = Bun.spawnSync(["bun", join(import.meta.dir, "opcua-memory.ts")], { stdout: "pipe", stderr: "inherit" });
process.stdout.write(stages.stdout.toString().replace(/^/gm, "  "));
