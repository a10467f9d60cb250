/**
 * bun run bench:startup: the compiled binary from an empty folder: time from exec to the `ready`
 * line and idle RSS, with every listener and with OPC UA off (its share), in one run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, median, report } from "./lib/report.ts";

const runs = Number(process.env.BENCH_RUNS ?? 3);
const build = Bun.spawnSync(["bun", "run", "build"], { stdout: "ignore", stderr: "inherit" });
if (build.exitCode !== 0) process.exit(1);
const binary = join(import.meta.dir, "..", "dist", "gatehouse");

async function once(opcua: boolean) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-startup-"));
  const args = ["--data-dir", join(dir, "data"), "--bind", "127.0.0.1", "--http-port", "0", "--https-port", "0", "--mqtt-port", "0", "--mqtts-port", "0", "--opcua-port", opcua ? "0" : "off"];
  const t0 = performance.now();
  const proc = Bun.spawn([binary, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? "", HOME: dir, GATEHOUSE_ADMIN_PASSWORD: "bench-password" }, stdout: "pipe" });
  const reader = proc.stdout.getReader();
  let text = "";
  let httpAt = 0;
  while (!text.includes("info ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`exited early:\n${text}`);
    text += new TextDecoder().decode(value);
    if (!httpAt && text.includes("listener=http")) httpAt = performance.now() - t0;
  }
  const readyMs = performance.now() - t0;
  await Bun.sleep(3000);
  const rss = Number((await Bun.file(`/proc/${proc.pid}/status`).text()).match(/VmRSS:\s+(\d+)/)![1]) / 1024;
  proc.kill("SIGTERM");
  const code = await proc.exited;
  rmSync(dir, { recursive: true, force: true });
  return { readyMs, httpMs: httpAt, rss, code };
}

const results: Record<string, { readyMs: number; httpMs: number; rss: number; code: number }[]> = { without: [], with: [] };
for (let i = 0; i < runs; i++) {
  results.without!.push(await once(false));
  results.with!.push(await once(true));
}
for (const [name, rs] of Object.entries(results)) {
  console.log(
    `${`OPC UA ${name === "with" ? "on " : "off"}`.padEnd(12)} http serving ${median(rs.map((r) => r.httpMs)).toFixed(0).padStart(5)} ms   all ready ${median(rs.map((r) => r.readyMs)).toFixed(0).padStart(5)} ms   idle RSS ${median(rs.map((r) => r.rss)).toFixed(0).padStart(4)} MB   SIGTERM exit ${rs.map((r) => r.code).join(",")}`,
  );
}
const on = results.with!;
const off = results.without!;
console.log(
  `OPC UA share: ${(median(on.map((r) => r.readyMs)) - median(off.map((r) => r.readyMs))).toFixed(0)} ms of start-up, ` +
    `${(median(on.map((r) => r.rss)) - median(off.map((r) => r.rss))).toFixed(0)} MB of idle RSS (median of ${runs}, first start: certificate created)`,
);

report([
  { bench: "start-up", measure: "compiled binary: all listeners ready", baselineName: "same binary, OPC UA off", baseline: `${fmt(median(off.map((r) => r.readyMs)))} ms`, gatehouse: `${fmt(median(on.map((r) => r.readyMs)))} ms`, ratio: median(off.map((r) => r.readyMs)) / median(on.map((r) => r.readyMs)), goal: "< 1 200 ms" },
  { bench: "start-up", measure: "compiled binary: idle RSS", baselineName: "same binary, OPC UA off", baseline: `${fmt(median(off.map((r) => r.rss)))} MB`, gatehouse: `${fmt(median(on.map((r) => r.rss)))} MB`, ratio: median(off.map((r) => r.rss)) / median(on.map((r) => r.rss)), goal: "< 110 MB" },
]);

// Where OPC UA's memory goes, stage by stage (from source, in a fresh process: a breakdown, not the binary's figure).
console.log("\nwhere the memory goes (bun bench/opcua-memory.ts):");
const stages = Bun.spawnSync(["bun", join(import.meta.dir, "opcua-memory.ts")], { stdout: "pipe", stderr: "inherit" });
process.stdout.write(stages.stdout.toString().replace(/^/gm, "  "));
