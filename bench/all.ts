/**
 * bun run bench [NAME...]: every benchmark in one command, then one Markdown table of all their rows,
 * each a ratio against the baseline measured in the same run (> 1: Gatehouse better), ready to paste
 * into the README. Each benchmark also prints its own details as it goes. NAME picks some: e.g.
 * `bun run bench mqtt opcua`. Takes ~9 minutes on a 2-core machine.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { markdown, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const benches: [name: string, file: string][] = [
  ["mqtt", "brokers.ts"],
  ["mqttjs", "mqttjs.ts"],
  ["opcua", "opcua.ts"],
  ["http", "http.ts"],
  ["vrpc", "vrpc.ts"],
  ["permissions", "permissions.ts"],
  ["page", "page.ts"],
  ["storm", "storm.ts"],
  ["admin", "admin-spray.ts"],
  ["accept", "accept.ts"],
  ["flood", "flood.ts"],
  ["pipeline", "pipeline.ts"],
  ["bulk", "bulk.ts"],
  ["traffic", "traffic.ts"],
  ["uplink", "uplink.ts"],
  ["durable", "durable.ts"],
  ["startup", "startup.ts"],
];
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !benches.some(([n]) => n === w));
if (unknown.length) {
  console.error(`bench: unknown ${unknown.join(", ")}; one of ${benches.map(([n]) => n).join(", ")}`);
  process.exit(2);
}

const rowsFile = join(scratchDir("gatehouse-bench-"), "rows.jsonl");
const root = join(import.meta.dir, "..");
const started = performance.now();
const failed: string[] = [];
for (const [name, file] of benches) {
  if (wanted.length && !wanted.includes(name)) continue;
  console.log(`\n## bench ${name} (bench/${file})\n`);
  const proc = Bun.spawn(["bun", join(import.meta.dir, file)], {
    cwd: root,
    env: { ...process.env, BENCH_ROWS: rowsFile },
    stdout: "inherit",
    stderr: "inherit",
  });
  if ((await proc.exited) !== 0) failed.push(name);
}

const rows: Row[] = (() => {
  try {
    return readFileSync(rowsFile, "utf8")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Row);
  } catch {
    return [];
  }
})();
const mosquitto = Bun.which("mosquitto")
  ? Bun.spawnSync(["mosquitto", "-h"])
      .stdout.toString()
      .match(/mosquitto version (\S+)/)?.[1]
  : undefined;
console.log(`\n## All benchmarks (${((performance.now() - started) / 60_000).toFixed(1)} min)\n`);
console.log(
  `\`bun run bench\` on ${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, Bun ${Bun.version}` +
    `${mosquitto ? `, Mosquitto ${mosquitto}` : ""}, ${new Date().toISOString().slice(0, 10)}. Ratio > 1: Gatehouse better than the baseline measured in the same run.\n`,
);
console.log(markdown(rows, true));
if (failed.length) {
  console.error(`\nbench: ${failed.join(", ")} failed`);
  process.exit(1);
}
