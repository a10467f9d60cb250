/**
 * bun run bench:page: the admin page's server time with 10 000 integrations (goal: the first page under
 * 30 ms), against GET /healthz of the same app in the same run (ratio). In-process (`app.handle`):
 * what is measured is our routing, query and rendering, not the socket.
 */
import { fmt, report } from "./lib/report.ts";
import { rmSync } from "node:fs";
import { openDataDir } from "../src/db/data-dir.ts";
import { createCore } from "../src/core/index.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { acceptsTable } from "../src/listeners/index.ts";
import { createWebApp } from "../src/web/app.tsx";
import { scratchDir } from "./lib/scratch.ts";

const N = Number(process.env.BENCH_INTEGRATIONS ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 200);

const dir = scratchDir("gatehouse-bench-page-");
const db = openDataDir(dir);
const core = createCore(db, silentLogger, { hashCost: { memoryCost: 1024, timeCost: 1 }, accepts: acceptsTable() });
const hash = await core.credentials.hash("same-password");
const insert = db.$client.prepare(
  "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
);
const types = ["mqtt", "opcua", "http", "vrpc"];
db.$client.transaction(() => {
  for (let i = 0; i < N; i++) insert.run(`device-${i}`, types[i % 4]!, hash, i, i);
})();
core.credentials.reload();
await core.admins.setPassword("admin", "bench-admin-password");
const { token } = await core.admins.signIn("admin", "bench-admin-password", "bench");
const web = createWebApp(core, silentLogger);
const headers = { cookie: `gh_session=${token}` };

const phases: [string, string][] = [
  ["GET /healthz (baseline)", "/healthz"],
  [`GET /integrations, first page of ${N}`, "/integrations"],
  ["GET /integrations?q=device-99 (search)", "/integrations?q=device-99"],
  ["GET /integrations?sort=username&page=200", "/integrations?sort=username&page=200"],
  ["GET /integrations?status=online (live set)", "/integrations?status=online"],
];

async function time(path: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const res = await web.handle(new Request(`http://localhost${path}`, { headers }));
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

for (const [, path] of phases) await time(path); // warm up
const results = [];
for (const [name, path] of phases) {
  const t = await time(path);
  results.push({ name, p50: t[Math.floor(t.length / 2)]!, p99: t[Math.floor(t.length * 0.99)]! });
}
const base = results[0]!.p50;
console.log(`| request (${N} integrations, ${RUNS} runs) | p50 ms | p99 ms | p50 / baseline |`);
console.log("| --- | --- | --- | --- |");
for (const r of results)
  console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.p50 / base).toFixed(1)}x |`);
const first = results[1]!;
console.log(`\nfirst page p50 ${first.p50.toFixed(1)} ms: goal < 30 ms ${first.p50 < 30 ? "met" : "NOT met"}\n`);
report(
  results.slice(1).map((r, i) => ({
    bench: "page",
    measure: r.name,
    baselineName: "GET /healthz, same app",
    baseline: `${fmt(base, 3)} ms`,
    gatehouse: `${fmt(r.p50, 2)} ms p50, ${fmt(r.p99, 1)} ms p99`,
    ratio: base / r.p50,
    goal: i === 0 ? "< 30 ms" : undefined,
  })),
);

rmSync(dir, { recursive: true, force: true });
