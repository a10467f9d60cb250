/**
 * bun run bench:permissions: CPU per topic decision (one mayPublish and one mayRead, as one message and
 * one delivery ask) of an MQTT integration with the default `#`, on ordinary topics, while the appliance
 * has VRPC domains (core/permissions.ts shields them) against the same with none, in one run. In process:
 * no broker, so what is measured is the rule alone.
 */
import { openDataDir } from "../src/db/data-dir.ts";
import { createCore } from "../src/core/index.ts";
import { mayPublish, mayRead } from "../src/core/permissions.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { acceptsTable } from "../src/listeners/index.ts";
import { fmt, median, report } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const N = Number(process.env.BENCH_CHECKS ?? 2_000_000);
const topics = Array.from({ length: 1024 }, (_, i) => `line${i % 7}/cell${i % 13}/temp${i}`);

async function measure(domains: number) {
  const core = createCore(openDataDir(scratchDir("gatehouse-bench-")), silentLogger, {
    accepts: acceptsTable(),
    hashCost: { memoryCost: 1024, timeCost: 1 },
  });
  const { integration } = await core.credentials.create({ type: "mqtt", username: "historian" });
  for (let d = 0; d < domains; d++)
    await core.credentials.create({ type: "vrpc", username: `domain${d}/agent`, password: "bench-agent-password" });
  const i = core.credentials.peek(integration.id)!;
  const space = core.topicSpace;
  const rounds: number[] = [];
  let allowed = 0;
  for (let r = 0; r < 7; r++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < N; k++)
      if (mayPublish(i, topics[k & 1023]!, space) && mayRead(i, topics[(k + 7) & 1023]!, space)) allowed++;
    const c = process.cpuUsage(c0);
    rounds.push(((c.user + c.system) * 1000) / N);
  }
  if (allowed !== 7 * N) throw new Error("an ordinary topic was refused");
  core.stop();
  return median(rounds);
}

const none = await measure(0);
const few = await measure(3);
const many = await measure(20);
console.log(`topic decisions (mayPublish + mayRead), ${N} per round, median of 7, CPU ns each:`);
console.log(`no VRPC domain ${none.toFixed(1)}  3 domains ${few.toFixed(1)}  20 domains ${many.toFixed(1)}\n`);
report([
  {
    bench: "permissions",
    measure: "mayPublish + mayRead, `#`, 3 VRPC domains",
    baselineName: "no VRPC domain",
    baseline: `${fmt(none, 1)} ns`,
    gatehouse: `${fmt(few, 1)} ns`,
    ratio: none / few,
  },
  {
    bench: "permissions",
    measure: "the same, 20 VRPC domains",
    baselineName: "no VRPC domain",
    baseline: `${fmt(none, 1)} ns`,
    gatehouse: `${fmt(many, 1)} ns`,
    ratio: none / many,
  },
]);
process.exit(0);
