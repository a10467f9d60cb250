/**
 * bun run bench:bans: CPU per ban check at a connect, with no bans against 10 000 (5 000 usernames and
 * 5 000 address blocks of 9 prefix lengths each, IPv4 and IPv6), in one run. Each round asks what a connect
 * asks: the accept check of its address and the login check of its username, client id and address,
 * for addresses and names that are not banned (the common case: every check looks everywhere).
 */
import { openDataDir } from "../src/db/data-dir.ts";
import { BanList, maxBans } from "../src/core/bans.ts";
import { fmt, median, report } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const N = Number(process.env.BENCH_CHECKS ?? 1_000_000);
const remotes = Array.from({ length: 1024 }, (_, i) =>
  i % 2 ? `172.16.${i & 255}.${(i * 7) & 255}` : `2001:db9:ff${(i & 15).toString(16)}::${i.toString(16)}`,
);

function measure(bans: number) {
  const db = openDataDir(scratchDir("gatehouse-bench-"));
  const insert = db.$client.prepare(
    "INSERT INTO bans (kind, value, created_at, expires_at, created_by) VALUES (?, ?, 0, ?, 'bench')",
  );
  const until = Date.now() + 3_600_000;
  db.$client.transaction(() => {
    for (let i = 0; i < bans; i++) {
      if (i % 2) insert.run("username", `sprayer-${i}`, until);
      else if (i % 4) insert.run("address", `10.${(i >> 8) & 255}.${i & 255}.0/${24 + (i % 9)}`, until);
      else insert.run("address", `2001:db8:${i.toString(16)}::/${48 + (i % 9)}`, until);
    }
  })();
  const list = new BanList(db);
  const rounds: number[] = [];
  let refused = 0;
  for (let r = 0; r < 7; r++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < N; k++) {
      const remote = remotes[k & 1023]!;
      if (list.addressBanned(remote) || list.match(`device-${k & 1023}`, { remote, clientId: `c${k & 1023}` }))
        refused++;
    }
    const c = process.cpuUsage(c0);
    rounds.push(((c.user + c.system) * 1000) / N);
  }
  if (refused !== 0) throw new Error("a client that is not banned was refused");
  return { ns: median(rounds), size: list.size };
}

const none = measure(0);
const full = measure(maxBans);
console.log(`ban checks per connect (accept + login), ${N} per round, median of 7, CPU ns each:`);
console.log(`no bans ${none.ns.toFixed(1)}  ${full.size} bans ${full.ns.toFixed(1)}\n`);
report([
  {
    bench: "bans",
    measure: `accept + login ban checks of a connect, ${full.size} bans`,
    baselineName: "no bans",
    baseline: `${fmt(none.ns, 1)} ns`,
    gatehouse: `${fmt(full.ns, 1)} ns`,
    ratio: none.ns / full.ns,
  },
]);
process.exit(0);
