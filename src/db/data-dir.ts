import { accessSync, chmodSync, constants, mkdirSync } from "node:fs";
import { join } from "node:path";
import { openDatabase, type Db } from "./client.ts";
import { migrate } from "./migrate.ts";

export class DataDirError extends Error {
  override name = "DataDirError";
}

/**
 * openDataDir: creates the folder if needed, proves it is writable, opens `gatehouse.db` and applies
 * pending migrations. Used by `serve` and by the offline CLI verbs alike.
 */
export function openDataDir(dir: string, opts: { busyTimeoutMs?: number } = {}): Db {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (err) {
    throw new DataDirError(`data dir "${dir}" is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let db: Db;
  try {
    const file = join(dir, "gatehouse.db");
    db = openDatabase(file, opts);
    chmodSync(file, 0o600); // password hashes and session digests: owner only (-wal/-shm inherit it)
  } catch (err) {
    throw new DataDirError(`cannot open database in "${dir}": ${(err as Error).message}`);
  }
  migrate(db);
  return db;
}

/** dataDirOf: the data dir a CLI verb works on: its flag, then GATEHOUSE_DATA_DIR, then ./data. */
export function dataDirOf(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag || env.GATEHOUSE_DATA_DIR || "./data";
}
