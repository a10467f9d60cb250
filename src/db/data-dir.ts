import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { createPrivateFile } from "../lib/files.ts";
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
    throw new DataDirError(
      `data dir "${dir}" is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let db: Db;
  try {
    const file = join(dir, "gatehouse.db");
    // Password hashes and session digests: owner only. A new database file is made 0600 before SQLite
    // writes to it (SQLite gives its -wal and -shm the database's mode); one left by an older release
    // is narrowed.
    try {
      closeSync(createPrivateFile(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      for (const suffix of ["", "-wal", "-shm"])
        if (existsSync(file + suffix) && (statSync(file + suffix).mode & 0o077) !== 0) chmodSync(file + suffix, 0o600);
    }
    db = openDatabase(file, opts);
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
