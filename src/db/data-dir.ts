import { Database, constants as sqliteFlags } from "bun:sqlite";
import {
  accessSync,
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  readdirSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { isBusy, isDiskFull } from "../lib/errors.ts";
import { createPrivateFile, diskSpace, narrowToPrivate, openRegularNoFollow, TargetError } from "../lib/files.ts";
import { openDatabase, type Db, closeDatabase } from "./client.ts";
import { migrate } from "./migrate.ts";

export class DataDirError extends Error {
  override name = "DataDirError";
}

/**
 * DataDirSystemError: the data dir cannot be used for a failure of the system (a full disk, an I/O error), not
 * for its configuration: `serve` exits 1 on it, which the shipped unit restarts on (a boot on a disk that logs
 * filled must come back once space is freed), where a DataDirError is 2 (a person must act).
 */
export class DataDirSystemError extends DataDirError {
  override name = "DataDirSystemError";
}

const systemCodes = /^(SQLITE_FULL|SQLITE_IOERR.*|ENOSPC|EIO|EDQUOT|ENOMEM)$/;

/** nearlyFull: less free than this on the data dir's file system, a failure of the system is the full disk's */
const nearlyFull = 1024 * 1024;

/**
 * dataDirError: a DataDirError for `err`, a DataDirSystemError when `err` is a failure of the system. One on a
 * full disk says so: found from outside, at 0 bytes free SQLite answers only "disk I/O error" (it cannot make the
 * -shm), which gave no hint; `dir`'s file system is asked how much is free.
 */
function dataDirError(message: string, err: unknown, dir?: string): DataDirError {
  if (!isSystemFailure(err)) return new DataDirError(message);
  const full = diskFull(err, dir);
  return new DataDirSystemError(full ? `${message} (${full})` : message);
}

/** isSystemFailure: `err` is a failure of the system (a full disk, an I/O error, no memory), not a person's. */
export function isSystemFailure(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown };
  const code = typeof e?.code === "string" ? e.code : "";
  const text = typeof e?.message === "string" ? e.message : "";
  return systemCodes.test(code) || /disk is full|disk I\/O error|no space left/i.test(text);
}

/**
 * diskFull: "the data dir's disk is full: N bytes free; free some space" when `err`, a failure of the system, is
 * the full disk's: SQLite says so, or `dir`'s file system has less than 1 MiB free (near it SQLite answers "disk
 * I/O error", SQLITE_IOERR_SHMSIZE: it cannot make a -shm); else undefined. For every door that opens a file of
 * the data dir (found from outside: the outbox's and the broker's said only "disk I/O error").
 */
export function diskFull(err: unknown, dir?: string): string | undefined {
  if (!isSystemFailure(err)) return undefined;
  const free = dir === undefined ? undefined : freeBytes(dir);
  if (!isDiskFull(err) && (free === undefined || free >= nearlyFull)) return undefined;
  return `the data dir's disk is full${free === undefined ? "" : `: ${free} bytes free`}; free some space`;
}

/** freeBytes: what `dir`'s file system has available (`df`'s Avail), if it answers. */
function freeBytes(dir: string): number | undefined {
  return diskSpace(dir)?.free;
}

/** DataDirBusy: another process (a serving appliance, a restore, an import --full) holds the data dir's lock. */
export class DataDirBusy extends DataDirError {
  override name = "DataDirBusy";
}

/** databaseName: the appliance's database in the data dir. */
export const databaseName = "gatehouse.db";
/** lockName: the file whose lock says "a process has this data dir to itself" (see `lockDataDir`). */
export const lockName = "gatehouse.lock";
/** pidFileName: `serve` writes its pid there while it runs, for people and messages; the lock is the safety. */
export const pidFileName = "gatehouse.pid";
/** databaseFiles: the database and the files SQLite keeps beside it; each must be a regular file when present. */
const databaseFiles = ["", "-wal", "-shm", "-journal"].map((suffix) => databaseName + suffix);

/** serviceDataDir: where the systemd unit keeps the data (StateDirectory=gatehouse). */
export const serviceDataDir = "/var/lib/gatehouse";

/**
 * noDatabase: what a CLI verb says about a data dir without a database (a typo, the default ./data in
 * the wrong folder): it never creates one there and reports success on an empty database.
 */
function noDatabase(dir: string): DataDirError {
  return new DataDirError(
    `no Gatehouse database at ${join(dir, databaseName)}: name the appliance's data dir with --data-dir DIR ` +
      `or GATEHOUSE_DATA_DIR (the systemd service's is ${serviceDataDir}; the default is ./data)`,
  );
}

/**
 * realDataDir: the data dir with every symlink in its path resolved. The path to the data dir is the
 * admin's (systemd's DynamicUser makes /var/lib/gatehouse a link to /var/lib/private/gatehouse); what is
 * inside it belongs to the service's user, so every file in it is then opened without following links.
 */
function realDataDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch (err) {
    throw new DataDirError(`data dir "${dir}" is not usable: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

/**
 * checkDatabaseFiles: the database and its -wal, -shm and -journal are regular files (or absent), and
 * those others can read are narrowed to 0600 through their descriptor. SQLite itself opens them with
 * O_NOFOLLOW (and the database with SQLITE_OPEN_NOFOLLOW, see client.ts); this check gives the reason.
 */
function checkDatabaseFiles(real: string): void {
  for (const name of databaseFiles) {
    const path = join(real, name);
    try {
      narrowToPrivate(path);
    } catch (err) {
      if (err instanceof TargetError) throw new DataDirError(err.message);
      throw dataDirError(
        `cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        err,
        real,
      );
    }
  }
}

function openChecked(real: string, opts: { busyTimeoutMs?: number }): Db {
  const file = join(real, databaseName);
  checkDatabaseFiles(real);
  let db: Db;
  try {
    db = openDatabase(file, { ...opts, noFollow: true });
  } catch (err) {
    throw dataDirError(`cannot open database ${file}: ${(err as Error).message}`, err, real);
  }
  try {
    migrate(db);
  } catch (err) {
    closeDatabase(db);
    throw err;
  }
  return db;
}

/**
 * prepareDataDir: creates the folder if needed (0700) and proves it is readable and writable; returns
 * its real path. `serve` and the tests' apps start on a new data dir this way.
 */
export function prepareDataDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (err) {
    throw dataDirError(
      `data dir "${dir}" is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      err,
      dir,
    );
  }
  return realDataDir(dir);
}

/**
 * openDataDir: for `serve`: creates the folder and `gatehouse.db` if needed, opens it and applies
 * pending migrations. A new database file is made 0600 before SQLite writes to it (SQLite gives its
 * -wal and -shm the database's mode): password hashes and session digests are the owner's only.
 */
export function openDataDir(dir: string, opts: { busyTimeoutMs?: number } = {}): Db {
  const real = prepareDataDir(dir);
  try {
    closeSync(createPrivateFile(join(real, databaseName))); // O_EXCL: a planted symlink is not followed
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST")
      throw dataDirError(
        `cannot create database in "${dir}": ${(err as NodeJS.ErrnoException).code ?? err}`,
        err,
        real,
      );
  }
  return openChecked(real, opts);
}

/**
 * openExistingDataDir: for every CLI verb: the data dir must hold a Gatehouse database already; a
 * missing one is refused (exit 2) instead of made, so a typo or the wrong working folder never
 * reports success on a new, empty database.
 */
export function openExistingDataDir(dir: string, opts: { busyTimeoutMs?: number } = {}): Db {
  return openChecked(existingDataDir(dir), opts);
}

/** existingDataDir: the real path of a data dir that holds a database (see openExistingDataDir). */
export function existingDataDir(dir: string): string {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw noDatabase(dir);
  }
  if (!st.isDirectory()) throw new DataDirError(`data dir "${dir}" is not a folder`);
  const real = realDataDir(dir);
  try {
    lstatSync(join(real, databaseName));
  } catch {
    throw noDatabase(dir);
  }
  return real;
}

/** dataDirOf: the data dir a CLI verb works on: its flag, then GATEHOUSE_DATA_DIR, then ./data. */
export function dataDirOf(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag || env.GATEHOUSE_DATA_DIR || "./data";
}

// ------------------------------------------------------------------------------ the data dir's lock

/** DataDirLock: held until `release` or the end of the process, however it ends. */
export interface DataDirLock {
  release(): void;
}

/** held: a strong reference to each lock's connection: a collected Database closes its file and drops the lock. */
const held = new Set<Database>();

/**
 * lockDataDir: this process has the data dir to itself until `release` or its end, kill -9 included.
 * `serve` holds it from before it opens the database until it exits; `restore` and `import --full`
 * hold it while they work; every other CLI verb works beside a running appliance without it.
 *
 * The lock is SQLite's own on `gatehouse.lock` (an empty file): an open `BEGIN EXCLUSIVE` holds a
 * POSIX advisory write lock (fcntl) on it, which the kernel drops when the process ends, however it
 * ends, so a crash never leaves a stale lock (a pid file did: it was checked by `restore` only once
 * `serve` had written it, after start-up, and a second `serve` deleted the first one's). With
 * busy_timeout 0 another process's attempt fails at once. Nothing is written to the file, so no
 * crash can leave it damaged. POSIX locks belong to the process: nothing in a holding process may
 * open and close `gatehouse.lock` through node:fs (closing any descriptor of it drops the lock).
 * Throws DataDirBusy, naming the holder's pid when its pid file says it.
 */
export function lockDataDir(dir: string): DataDirLock {
  const real = realDataDir(dir);
  const path = join(real, lockName);
  let sqlite: Database;
  try {
    sqlite = new Database(
      path,
      sqliteFlags.SQLITE_OPEN_READWRITE | sqliteFlags.SQLITE_OPEN_CREATE | sqliteFlags.SQLITE_OPEN_NOFOLLOW,
    );
  } catch (err) {
    const link = isLink(path) ? " (it is a symlink; remove it)" : "";
    throw dataDirError(`cannot open the data dir's lock ${path}${link}: ${(err as Error).message}`, err, real);
  }
  try {
    sqlite.run("PRAGMA busy_timeout = 0");
    // the rollback journal in memory: the lock writes nothing (BEGIN EXCLUSIVE wrote gatehouse.lock-journal's
    // header, so taking the lock needed free disk and a boot on a full disk failed here, SQLITE_FULL). OFF is
    // refused by Bun's SQLite (defensive mode) and stays "delete"; MEMORY takes (measured on a full tmpfs).
    sqlite.run("PRAGMA journal_mode = MEMORY");
    sqlite.run("BEGIN EXCLUSIVE");
  } catch (err) {
    sqlite.close();
    if (!isBusy(err)) throw dataDirError(`cannot lock ${path}: ${(err as Error).message}`, err, real);
    const pid = servePid(real);
    throw new DataDirBusy(
      `the data dir ${dir} is in use by another Gatehouse process${pid ? ` (pid ${pid})` : ""}: ` +
        "a running appliance, a restore or an import --full; stop it first (systemctl stop gatehouse)",
    );
  }
  held.add(sqlite);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      held.delete(sqlite);
      try {
        sqlite.run("ROLLBACK");
      } finally {
        sqlite.close();
      }
    },
  };
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * servePid: the pid in `gatehouse.pid`, if that process lives (information for messages only: the lock
 * decides). Read without following a link, at most 32 bytes.
 */
export function servePid(dir: string): number | undefined {
  try {
    const fd = openRegularNoFollow(join(dir, pidFileName));
    let text: string;
    try {
      const buf = Buffer.alloc(32);
      text = buf.subarray(0, readSync(fd, buf, 0, 32, 0)).toString("latin1");
    } finally {
      closeSync(fd);
    }
    const pid = Number(text.trim());
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0); // throws when no such process
    return pid;
  } catch {
    return undefined;
  }
}

/**
 * removeStaleTemps: what an interrupted restore left in the data dir (its private copy
 * `.gatehouse.db.restore-<hex>` with -wal/-shm/-journal). Called with the lock held (no restore runs).
 * Returns the names removed. A link among them is removed as a link (unlink never follows).
 */
export function removeStaleTemps(dir: string): string[] {
  const real = realDataDir(dir);
  const removed: string[] = [];
  for (const name of readdirSync(real)) {
    if (!/^\.gatehouse\.db\.restore-[0-9a-f]+(-wal|-shm|-journal)?$/.test(name)) continue;
    try {
      rmSync(join(real, name), { force: true });
      removed.push(name);
    } catch {
      // a folder of that name is not ours to remove
    }
  }
  return removed;
}
