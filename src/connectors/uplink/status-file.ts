import type { Database } from "bun:sqlite";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readBounded, writePrivateFile } from "../../lib/files.ts";
import { checkOutboxFiles, outboxFileName } from "./outbox.ts";
import { checkColumns, openOutboxDb, sizeOfRow, unreadable } from "./outbox-protocol.ts";
import type { UplinkView } from "./store.ts";
import type { UplinkStatus } from "./uplink.ts";

/** a running appliance writes each uplink's status every second; older than this, it does not run */
const freshMs = 5_000;

/**
 * readStatuses: each uplink's status as `gatehouse uplinks status` shows it, whether the appliance runs
 * or not: its live status (written into the outbox file every second) while it runs and that is fresh, else what the
 * outbox holds on disk (queued, bytes, oldest) with the counters the appliance last wrote, disconnected; with
 * no outbox file after the appliance set it aside while it ran, what it noted then (see `noteSetAside`).
 */
export function readStatuses(
  dataDir: string,
  uplinks: UplinkView[],
  /**
   * the appliance runs on this data dir (its pid file names a live process): a killed one left a
   * fresh-looking status. A status row also names the process that wrote it; that one living counts too.
   */
  running: boolean,
  now = Date.now(),
): UplinkStatus[] {
  const path = join(dataDir, outboxFileName);
  // set aside while the appliance runs: the status it wrote went with the file, and nothing takes its place
  // until the next start makes a new one (a new file: what it says is the news again)
  const exists = existsSync(path);
  const setAside = exists ? undefined : setAsideNews(dataDir, running);
  if (setAside) return statusesFrom(undefined, uplinks, running, now, setAside);
  // a file in the data dir: checked and opened without following a link (root's CLI reads it)
  if (exists) checkOutboxFiles(dataDir);
  const db = exists ? openOutboxDb(path, "write") : undefined;
  try {
    return statusesFrom(db, uplinks, running, now, null);
  } catch (err) {
    // an unreadable outbox (damaged, not a database) is said as each uplink's last error, and the uplinks
    // are still listed (found from outside: the command failed with SQLite's bare error). The appliance
    // sets such a file aside when it starts.
    if (!unreadable(err)) throw err;
    const problem = `the outbox cannot be read (${(err as Error).message}); the appliance sets it aside when it starts`;
    return statusesFrom(undefined, uplinks, running, now, problem);
  } finally {
    db?.close();
  }
}

/** setAsideNote: the file the running appliance writes when it sets its outbox aside (see `noteSetAside`) */
export const setAsideNote = "uplink-outbox.set-aside";

/**
 * noteSetAside: the running appliance set its outbox aside as `aside` (it could not be read: `error`), said in a
 * file beside it with this process's pid, for `gatehouse uplinks status`: found from outside, the CLI showed a
 * healthy idle uplink ("queued 0", no error) while the API and /readyz said the outbox was set aside. Best effort
 * (a full disk): the log and the activity log have it anyway. Never removed: the next start's new outbox makes it
 * old news.
 */
export function noteSetAside(dataDir: string, aside: string, error: string): void {
  try {
    const note = { pid: process.pid, started: startedAt(process.pid), aside, error };
    writePrivateFile(join(dataDir, setAsideNote), JSON.stringify(note), { replace: true });
  } catch {
    // said in the log and the activity log already
  }
}

/**
 * setAsideNews: what `noteSetAside` said, as an uplink's last error, while no outbox file is there (no new one has
 * been made since): while the process that wrote it lives, or while no appliance runs (the next start makes one).
 * One of an earlier run, while another runs, is old news. Read without following a link, at most 4 KiB.
 */
function setAsideNews(dataDir: string, running: boolean): string | undefined {
  let note: { pid?: unknown; started?: unknown; aside?: unknown; error?: unknown };
  try {
    note = JSON.parse(readBounded(join(dataDir, setAsideNote), 4096, { noFollow: true }).toString("utf8"));
  } catch {
    return undefined; // none, or not one the appliance wrote
  }
  const { pid, started, aside, error } = note ?? {};
  if (typeof pid !== "number" || typeof aside !== "string" || typeof error !== "string") return undefined;
  // found from outside: a planted note named any file as the set-aside one (`../../etc/passwd`)
  if (!asideName.test(aside)) return undefined;
  const set = `the outbox cannot be read (${error}) and was set aside as ${aside} while the appliance ran`;
  // the process that wrote it, not another that has its pid now (found from outside: after a reboot, or a
  // pid reused, a stopped appliance was said to run)
  if (alive(pid) && typeof started === "string" && startedAt(pid) === started)
    return `${set}: nothing is queued until the appliance restarts and makes a new one; the figures here are not counted until then (the page and the API have them)`;
  return running ? undefined : `${set}: the next start makes a new one`;
}

/** statusesFrom: each uplink's status from an open outbox (or none); `problem`, if any, as each one's last error. */
function statusesFrom(
  db: Database | undefined,
  uplinks: UplinkView[],
  running: boolean,
  now: number,
  problem: string | null,
): UplinkStatus[] {
  db?.run("PRAGMA busy_timeout = 2000");
  if (db) checkColumns(db);
  const hasTables = db?.query("SELECT 1 FROM sqlite_master WHERE name = 'status'").get() !== null;
  return uplinks.map((u) => {
    const row =
      db && hasTables
        ? (db.query("SELECT json, at FROM status WHERE uplink = ?").get(u.id) as { json: string; at: number } | null)
        : null;
    let last: Partial<UplinkStatus> = {};
    let writer: number | undefined;
    try {
      const { pid, ...rest } = row ? (JSON.parse(row.json) as Partial<UplinkStatus> & { pid?: unknown }) : {};
      last = rest;
      writer = typeof pid === "number" ? pid : undefined;
    } catch {
      last = {};
    }
    const base: UplinkStatus = {
      name: u.name,
      enabled: u.enabled,
      connected: false,
      url: null,
      connectedSince: null,
      disconnectedSince: null,
      lastError: problem ?? last.lastError ?? null,
      queued: 0,
      queuedBytes: 0,
      oldestQueuedAgeS: 0,
      forwarded: last.forwarded ?? 0,
      forwardedPerSecond: 0,
      dropped: last.dropped ?? 0,
      refused: last.refused ?? 0,
      resent: last.resent ?? 0,
      received: last.received ?? 0,
      at: now,
    };
    if ((running || alive(writer)) && row && now - row.at < freshMs)
      return { ...base, ...last, name: u.name, enabled: u.enabled };
    // found from outside: on a full disk the running appliance cannot write its status, and this said
    // "disconnected", no error, while the page and the API said the outbox could not be written
    if (running && row && !problem)
      base.lastError = `the running appliance has not written its status since ${new Date(row.at).toISOString()} (its outbox cannot be written: a full disk?); the page and the API have the live one`;
    if (db && hasTables) {
      const q = db
        .query(
          `SELECT COUNT(*) AS n, COALESCE(SUM(${sizeOfRow}), 0) AS bytes, MIN(at) AS oldest FROM messages WHERE uplink = ?`,
        )
        .get(u.id) as { n: number; bytes: number; oldest: number | null };
      base.queued = q.n;
      base.queuedBytes = q.bytes;
      base.oldestQueuedAgeS = q.oldest === null ? 0 : Math.max(0, Math.round((now - q.oldest) / 1000));
    }
    return base;
  });
}

/** asideName: the name `setAside` gives an outbox it sets aside (a file in the data dir, nothing else) */
const asideName = new RegExp(`^${outboxFileName.replace(/\./g, "\\.")}\\.unreadable-[0-9A-Za-z-]{1,64}$`);

/**
 * startedAt: when process `pid` started (clock ticks since boot: /proc/<pid>/stat's 22nd field), which tells
 * it from a later process that got the same pid; undefined if it does not run (or there is no /proc).
 */
function startedAt(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // after "pid (name) ": the name may hold spaces and parentheses, so from the last ")"
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** alive: a process with this pid lives (signal 0 checks without sending anything) */
function alive(pid: number | undefined): boolean {
  if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // it lives, another user's
  }
}
