import { constants, Database } from "bun:sqlite";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import * as schema from "./schema.ts";

export { isBusy } from "../lib/errors.ts";

export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/**
 * openDatabase: opens (or creates) the SQLite file with the pragmas an appliance wants.
 * busy_timeout comes first so that a second process (the CLI) waits instead of failing.
 * `noFollow`: SQLITE_OPEN_NOFOLLOW, a symlink anywhere in `path` is refused (pass a real path); SQLite
 * opens the -wal, -shm and -journal beside it with O_NOFOLLOW in any case.
 */
export function openDatabase(path: string, opts: { busyTimeoutMs?: number; noFollow?: boolean } = {}): Db {
  // Flags as a number cannot carry `strict` (binding named parameters without their prefix), which
  // nothing here uses: drizzle and the raw statements bind positional ones.
  const sqlite = opts.noFollow
    ? new Database(
        path,
        constants.SQLITE_OPEN_READWRITE | constants.SQLITE_OPEN_CREATE | constants.SQLITE_OPEN_NOFOLLOW,
      )
    : new Database(path, { create: true, strict: true });
  sqlite.run(`PRAGMA busy_timeout = ${Math.floor(opts.busyTimeoutMs ?? 5000)}`);
  sqlite.run("PRAGMA journal_mode = WAL");
  // FULL: an acknowledged change of an integration, admin, token or onboarding decision survives a
  // power cut (an edge device's most common fault). Hot counters are written with `relaxed` below.
  sqlite.run("PRAGMA synchronous = FULL");
  sqlite.run("PRAGMA foreign_keys = ON");
  return drizzle({ client: sqlite, schema }) as Db;
}

/**
 * closeDatabase: closes the connection now. A plain `close()` leaves it open while any statement is
 * not finalized (drizzle leaves its statements to the collector) and until the process ends; such a
 * connection ending with the process counted as a change for every other connection (PRAGMA
 * data_version): each `gatehouse export` made the running appliance reload every integration.
 * `close(true)` finalizes them and closes (sqlite3_close).
 */
export function closeDatabase(db: Db): void {
  try {
    db.$client.close(true);
  } catch {
    db.$client.close();
  }
}

/**
 * relaxed: runs a write-behind batch (last logins, attempt counts) with synchronous=NORMAL: losing
 * the last seconds of those in a power cut costs nothing, and they need no fsync per batch.
 */
export function relaxed<T>(db: Db, fn: () => T): T {
  db.$client.run("PRAGMA synchronous = NORMAL");
  try {
    return fn();
  } finally {
    db.$client.run("PRAGMA synchronous = FULL");
  }
}

/** dataVersion: changes whenever another connection commits (SQLite PRAGMA data_version). */
export function dataVersion(db: Db): number {
  const row = db.$client.query("PRAGMA data_version").get() as { data_version: number };
  return row.data_version;
}
