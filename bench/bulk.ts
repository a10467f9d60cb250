/**
 * bun run bench:bulk: bulk work on the Integrations page with 10 000 integrations all matching the
 * filter (`all=1`): export CSV and JSON, deactivate (200 of them with a live session each, kicked),
 * set permissions, activate, delete: each one POST, one transaction for the integrations and one for
 * their activity entries. In-process (`app.handle`) with the journal's lines formatted and dropped; the
 * baseline is the first page of the same list in the same run.
 */
import { rmSync } from "node:fs";
import { createCore } from "../src/core/index.ts";
import { openDataDir } from "../src/db/data-dir.ts";
import { createLogger } from "../src/lib/logger.ts";
import { acceptsTable } from "../src/listeners/index.ts";
import { createWebApp } from "../src/web/app.tsx";
import { fmt, report } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const N = Number(process.env.BENCH_INTEGRATIONS ?? 10_000);
const LIVE = 200;

const dir = scratchDir("gatehouse-bench-bulk-");
const db = openDataDir(dir);
// info lines (one per integration changed, as in production) are formatted, then dropped
const log = createLogger({ level: "info", write: () => {} });
const core = createCore(db, log, { hashCost: { memoryCost: 1024, timeCost: 1 }, accepts: acceptsTable() });
const hash = await core.credentials.hash("same-password");
const insert = db.$client.prepare(
  "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
);
const types = ["mqtt", "opcua", "http", "vrpc"];
db.$client.transaction(() => {
  for (let i = 0; i < N; i++) insert.run(`device-${i}`, types[i % 4]!, hash, i, i);
})();
await core.credentials.reload();
await core.admins.setPassword("admin", "bench-admin-password");
const { token, session } = await core.admins.signIn("admin", "bench-admin-password", "bench");
const web = createWebApp(core, log);
// a browser's POST carries its page's Origin (the guard refuses a session-cookie POST without one)
const headers = {
  cookie: `gh_session=${token}`,
  "content-type": "application/x-www-form-urlencoded",
  origin: "http://localhost",
};

let kicked = 0;
for (const id of core.credentials.ids().slice(0, LIVE))
  core.sessions.open({ integration: core.credentials.get(id)!, type: "mqtt", kick: () => void kicked++ });

async function post(action: string, extra: Record<string, string> = {}): Promise<{ ms: number; bytes: number }> {
  const body = new URLSearchParams({ _csrf: session.csrfToken, action, all: "1", confirmed: "yes", ...extra });
  const t = performance.now();
  const res = await web.handle(new Request("http://localhost/integrations/bulk", { method: "POST", headers, body }));
  const bytes = (await res.arrayBuffer()).byteLength;
  const ms = performance.now() - t;
  if (res.status !== 200 && res.status !== 303) throw new Error(`${action}: ${res.status}`);
  return { ms, bytes };
}

async function page(): Promise<number> {
  const t = performance.now();
  const res = await web.handle(new Request("http://localhost/integrations", { headers }));
  await res.arrayBuffer();
  return performance.now() - t;
}

for (let i = 0; i < 20; i++) await page(); // warm up
const pages: number[] = [];
for (let i = 0; i < 50; i++) pages.push(await page());
const base = pages.sort((a, b) => a - b)[25]!;

const phases: [string, string, Record<string, string>?][] = [
  ["export CSV", "export-csv"],
  ["export JSON", "export-json"],
  [`deactivate (${LIVE} live sessions kicked)`, "deactivate"],
  ["set permissions", "permissions", { subscribeAcl: "plant/#" }],
  ["activate", "activate"],
  ["delete", "delete"],
];
const rows: { name: string; ms: number; bytes: number }[] = [];
for (const [name, action, extra] of phases) rows.push({ name, ...(await post(action, extra)) });
if (kicked !== LIVE) throw new Error(`kicked ${kicked} of ${LIVE}`);
if (core.credentials.count() !== 0) throw new Error("not everything was deleted");

console.log(`| bulk action on all ${N} integrations | ms | answer |`);
console.log("| --- | --- | --- |");
console.log(`| GET /integrations, first page (baseline) | ${base.toFixed(1)} | |`);
for (const r of rows) console.log(`| ${r.name} | ${r.ms.toFixed(0)} | ${fmt(r.bytes / 1024)} KB |`);
report(
  rows.map((r) => ({
    bench: "bulk",
    measure: `${r.name}, all ${N} integrations`,
    baselineName: "first page of the list, same app",
    baseline: `${fmt(base, 1)} ms`,
    gatehouse: `${fmt(r.ms)} ms`,
    ratio: base / r.ms,
    goal: "< 2 s",
  })),
);
rmSync(dir, { recursive: true, force: true });
