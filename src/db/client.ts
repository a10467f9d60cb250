import { Database } from "bun:sqlite";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import * as schema from "./schema.ts";

export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/**
 * openDatabase: opens (or creates) the SQLite file with the pragmas an appliance wants.
 * busy_timeout comes first so that a second process (the CLI) waits instead of failing.
 */
export function openDatabase(path: string): Db {
  const sqlite = new Database(path, { create: true, strict: true });
  sqlite.run("PRAGMA busy_timeout = 5000");
  sqlite.run("PRAGMA journal_mode = WAL");
  sqlite.run("PRAGMA synchronous = NORMAL");
  sqlite.run("PRAGMA foreign_keys = ON");
  return drizzle({ client: sqlite, schema }) as Db;
}

/** dataVersion: changes whenever another connection commits (SQLite PRAGMA data_version). */
export function dataVersion(db: Db): number {
  const row = db.$client.query("PRAGMA data_version").get() as { data_version: number };
  return row.data_version;
}
