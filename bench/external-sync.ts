/**
 * bun bench/external-sync.ts: what it costs that every login first looks for writes another process
 * (the CLI) committed (src/core/external-sync.ts): the PRAGMA per login, a reload of 10 000
 * integrations, and how many reloads a spray of unknown names causes with and without a writer
 * committing in a loop beside it. Prints its figures; no baseline (nothing comparable exists).
 */
import { createCore } from "../src/core/index.ts";
import { CredentialStore } from "../src/core/credentials.ts";
import { EventBus } from "../src/core/events.ts";
import { dataVersion } from "../src/db/client.ts";
import { openDataDir } from "../src/db/data-dir.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { scratchDir } from "./lib/scratch.ts";

const dir = scratchDir("gatehouse-bench-sync-");
const db = openDataDir(dir);
const cliDb = openDataDir(dir);
const cli = new CredentialStore(cliDb, new EventBus(), { hashCost: { memoryCost: 1024, timeCost: 1 } });
const n = 10_000;
await cli.createMany(
  Array.from({ length: n }, (_, i) => ({ type: "mqtt" as const, username: `device-${i}` })),
  4,
);
const core = createCore(db, silentLogger, { hashCost: { memoryCost: 1024, timeCost: 1 } });

/** per: the best of `runs` rounds of `count` calls (the machine may be shared: the minimum is the cost). */
const per = (label: string, count: number, runs: number, f: () => void) => {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    for (let i = 0; i < count; i++) f();
    best = Math.min(best, ((performance.now() - t) * 1000) / count);
  }
  console.log(
    `${label}: ${best < 1000 ? `${best.toFixed(1)} us` : `${(best / 1000).toFixed(1)} ms`} (best of ${runs})`,
  );
};

per("PRAGMA data_version", 10_000, 10, () => dataVersion(db));
per(`reload of ${n} integrations, nothing changed`, 1, 15, () => core.credentials.reload());
let flip = false;
per(`reload of ${n} integrations, one changed by another process`, 1, 15, () => {
  cli.setActive(cli.findByUsername("device-1")!.id, (flip = !flip));
  core.syncExternalChanges();
});

/** spray: waves of logins with unknown names from many addresses for `seconds`; reloads counted. */
async function spray(seconds: number, label: string) {
  let reloads = 0;
  const original = core.credentials.reload.bind(core.credentials);
  core.credentials.reload = () => (reloads++, original());
  const cpu = process.cpuUsage();
  const t = performance.now();
  let logins = 0;
  while (performance.now() - t < seconds * 1000) {
    await Promise.all(
      Array.from({ length: 50 }, () =>
        core.credentials.verify("mqtt", `nobody-${logins}`, "some-password", {
          remote: `10.1.${(logins >> 8) & 255}.${logins++ & 255}`,
        }),
      ),
    );
  }
  const s = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  core.credentials.reload = original;
  console.log(
    `${label}: ${logins} unknown-name logins in ${s.toFixed(1)} s, ${reloads} reloads (${(reloads / s).toFixed(1)}/s), ${((used.user + used.system) / 1000 / s / 10).toFixed(0)}% of a core`,
  );
}

await spray(3, "spray, nothing else writing");
// a writer committing as fast as it can beside the spray (the worst a local process can do)
let writing = true;
const writer = (async () => {
  let i = 0;
  while (writing) {
    cli.update(cli.findByUsername("device-2")!.id, { description: `bench ${i++}` });
    await new Promise((r) => setTimeout(r, 1));
  }
  return i;
})();
await spray(3, "spray, another process committing every ~1 ms");
writing = false;
console.log(`(the writer committed ${await writer} times)`);
core.stop();
