import { constants as sqliteFlags, Database } from "bun:sqlite";
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  linkSync,
  copyFileSync,
  constants,
  mkdirSync,
  openSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { createPrivateFile, fsyncFolder, fsyncPath, tempPathBeside } from "../lib/files.ts";
import { openDatabase, type Db, closeDatabase } from "./client.ts";
import { applyMigrations } from "./drizzle-internals.ts";
import { loadMigrations, migrate } from "./migrate.ts";

/**
 * Restoring a backup treats the file as hostile until it has passed every check, and replaces the live
 * database only with a copy that passed them (see `restoreDatabase`). The checks, in order:
 *
 * 1. a regular file of at most `maxBackupBytes`, read once into a private (0600) temp file in the data
 *    dir: everything after this step looks at that copy, never at the file the admin named;
 * 2. the SQLite header: magic, a valid page size, a file of whole pages, UTF-8;
 * 3. opened read-only with `trusted_schema=OFF` and `cell_size_check=ON` (sqlite.org, "Defense against
 *    the dark arts"): no function in a planted view or trigger can run while we look;
 * 4. the migration history (`__drizzle_migrations`) is a prefix of this release's migrations, hash and
 *    timestamp alike (drizzle decides what to apply from the last timestamp, so a forged one would skip
 *    a migration); a longer history is a newer release's backup;
 * 5. `sqlite_master` equals, object by object (type, name, table, SQL with whitespace outside quotes
 *    collapsed), what those migrations produce in an empty in-memory database: no extra table, view,
 *    trigger or index, none missing, none altered;
 * 6. `PRAGMA integrity_check` and `PRAGMA foreign_key_check` find nothing;
 * 7. the copy is migrated to this release, checked again (quick_check, schema), and opened by the caller's
 *    `probe` (the CLI loads the core on it) before it becomes the live database.
 */
export const maxBackupBytes = 1024 ** 3;

/** RestoreRefused: the file failed a check; nothing was changed. */
export class RestoreRefused extends Error {
  override name = "RestoreRefused";
}

/** previousName: the live database before the last restore, kept until the appliance has started on the new one. */
export const previousName = "gatehouse.db.previous";
const liveName = "gatehouse.db";
/** companions: files SQLite keeps next to a database; -wal and -journal hold committed or rolled-back pages. */
const companions = ["-wal", "-journal", "-shm"] as const;

interface SchemaObject {
  type: string;
  name: string;
  tbl_name: string;
  sql: string | null;
}

function readSchema(sqlite: Database): Map<string, SchemaObject> {
  const rows = sqlite.query("SELECT type, name, tbl_name, sql FROM sqlite_master").all() as SchemaObject[];
  return new Map(rows.map((r) => [`${r.type} ${r.name}`, r]));
}

/** ColumnRule: a column as the reference schema declares it: its type and whether it may hold NULL. */
interface ColumnRule {
  name: string;
  type: string;
  notNull: boolean;
}

const references = new Map<number, { schema: Map<string, SchemaObject>; columns: Map<string, ColumnRule[]> }>();

function reference(level: number) {
  let ref = references.get(level);
  if (!ref) {
    const db = openDatabase(":memory:");
    try {
      applyMigrations(db, loadMigrations().slice(0, level));
      const schema = readSchema(db.$client);
      const columns = new Map<string, ColumnRule[]>();
      for (const o of schema.values()) {
        if (o.type !== "table" || o.name.startsWith("sqlite_")) continue;
        const info = db.$client.query(`PRAGMA table_info(${quoteIdentifier(o.name)})`).all() as {
          name: string;
          type: string;
          notnull: number;
          pk: number;
        }[];
        columns.set(
          o.name,
          info.map((c) => ({ name: c.name, type: c.type.toUpperCase(), notNull: c.notnull === 1 })),
        );
      }
      ref = { schema, columns };
    } finally {
      closeDatabase(db);
    }
    references.set(level, ref);
  }
  return ref;
}

/** referenceSchema: `sqlite_master` as the first `level` migrations leave an empty database (built in memory, cached). */
export function referenceSchema(level: number): Map<string, SchemaObject> {
  return reference(level).schema;
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * storageClasses: what `typeof()` may say of a value in a column of this declared type (sqlite.org,
 * "Datatypes In SQLite" §3.1: affinity by the declared type's name). SQLite stores what it is given
 * where affinity cannot convert it: a BLOB username, the text "yesterday" in created_at.
 */
function storageClasses(type: string): string[] {
  if (type.includes("INT")) return ["integer"];
  if (type.includes("CHAR") || type.includes("CLOB") || type.includes("TEXT")) return ["text"];
  if (type.includes("BLOB") || type === "") return ["blob"];
  if (type.includes("REAL") || type.includes("FLOA") || type.includes("DOUB")) return ["real"];
  return ["integer", "real"]; // NUMERIC
}

/** timeColumn: an integer column holding a time in ms (`created_at`, `last_seen`, `open_until`): a Date must show it. */
const timeColumn = /(_at|_seen|_until)$/;
/** maxTime: the largest time a JavaScript Date holds (ECMA-262 §21.4.1.22: ±8.64e15 ms). */
const maxTime = 8.64e15;

/**
 * contentProblems: every value of every table the reference schema has, checked in SQL (one scan per
 * table, no row loaded into JavaScript): its storage class is the one its declared type makes (NULL
 * only where the column may be NULL), and a time column's value is one a Date can show.
 */
function contentProblems(sqlite: Database, level: number): string[] {
  const problems: string[] = [];
  for (const [table, columns] of reference(level).columns) {
    const checks = columns.map((c) => {
      const id = quoteIdentifier(c.name);
      const allowed = [...storageClasses(c.type), ...(c.notNull ? [] : ["null"])];
      const kind = `typeof(${id}) NOT IN (${allowed.map((a) => `'${a}'`).join(", ")})`;
      const range =
        timeColumn.test(c.name) && allowed.includes("integer") ? ` OR (${id} NOT BETWEEN 0 AND ${maxTime})` : "";
      return `coalesce(sum(${kind}${range}), 0)`;
    });
    const row = sqlite.query(`SELECT ${checks.join(", ")} FROM ${quoteIdentifier(table)}`).values()[0] ?? [];
    columns.forEach((c, i) => {
      const n = Number(row[i] ?? 0);
      if (n > 0)
        problems.push(
          `${table}.${c.name}: ${n} value(s) that are not ${storageClasses(c.type).join(" or ")}${c.notNull ? "" : " or NULL"}${timeColumn.test(c.name) ? " (a time in ms a date can show)" : ""}`,
        );
    });
  }
  return problems;
}

/**
 * normalisedSql: whitespace runs outside quotes become one space; quoted text (string literals,
 * identifiers in "", ``, []) stays exact, so `DEFAULT 'a  b'` never equals `DEFAULT 'a b'`.
 */
export function normalisedSql(sql: string | null): string | null {
  if (sql === null) return null;
  let out = "";
  let quote: string | undefined;
  let space = false;
  for (const ch of sql) {
    if (quote) {
      out += ch;
      if (ch === quote) quote = undefined; // a doubled quote closes and reopens: still exact
      continue;
    }
    if (/\s/.test(ch)) {
      space = true;
      continue;
    }
    if (space && out) out += " ";
    space = false;
    if (ch === "'" || ch === '"' || ch === "`") quote = ch;
    else if (ch === "[") quote = "]";
    out += ch;
  }
  return out;
}

function describe(o: SchemaObject): string {
  return o.type === "table" || o.type === "view" ? `${o.type} "${o.name}"` : `${o.type} "${o.name}" on ${o.tbl_name}`;
}

/** schemaDifferences: what in `actual` is not exactly the reference (extra, missing, altered), in words. */
export function schemaDifferences(actual: Map<string, SchemaObject>, expected: Map<string, SchemaObject>): string[] {
  const out: string[] = [];
  for (const [key, o] of actual) {
    const e = expected.get(key);
    if (!e) out.push(`extra ${describe(o)}`);
    else if (e.tbl_name !== o.tbl_name || normalisedSql(e.sql) !== normalisedSql(o.sql))
      out.push(`${describe(o)} differs from this release's definition`);
  }
  for (const [key, e] of expected) if (!actual.has(key)) out.push(`missing ${describe(e)}`);
  return out;
}

/** checkHeader: the first 100 bytes and the size of a SQLite database file (sqlite.org/fileformat.html §1.3). */
function checkHeader(header: Buffer, size: number): void {
  if (header.length < 100 || header.subarray(0, 16).toString("latin1") !== "SQLite format 3\0")
    throw new RestoreRefused("not a SQLite database (no SQLite header)");
  const raw = header.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0)
    throw new RestoreRefused(`damaged SQLite header (page size ${raw})`);
  if (![1, 2].includes(header[18]!) || ![1, 2].includes(header[19]!))
    throw new RestoreRefused("damaged SQLite header (file format version)");
  if (header[21] !== 64 || header[22] !== 32 || header[23] !== 32)
    throw new RestoreRefused("damaged SQLite header (payload fractions)");
  if (size % pageSize !== 0)
    throw new RestoreRefused(`truncated or padded: ${size} bytes is not a whole number of ${pageSize}-byte pages`);
  // The page count in the header is valid when its "version valid for" equals the change counter.
  const pages = header.readUInt32BE(28);
  if (pages !== 0 && header.readUInt32BE(92) === header.readUInt32BE(24) && pages * pageSize !== size) {
    throw new RestoreRefused(
      `truncated or padded: the header says ${pages} pages of ${pageSize} bytes, the file has ${size} bytes`,
    );
  }
  if (header.readUInt32BE(56) !== 1) throw new RestoreRefused("not UTF-8 (every Gatehouse database is)");
}

/**
 * copyBounded: reads `file` (a regular file of at most `max` bytes, however it grows meanwhile) into a
 * new 0600 file at `to`, fsynced; returns the first 100 bytes and the size.
 */
function copyBounded(file: string, to: string, max: number): { header: Buffer; size: number } {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new RestoreRefused(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!st.isFile()) throw new RestoreRefused(`${file} is not a regular file`);
  if (st.size > max) throw new RestoreRefused(`${file} has ${st.size} bytes; a backup may have at most ${max}`);
  const src = openSync(file, constants.O_RDONLY);
  try {
    if (!fstatSync(src).isFile()) throw new RestoreRefused(`${file} is not a regular file`);
    const dst = createPrivateFile(to);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      const header = Buffer.alloc(100);
      let size = 0;
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, null);
        if (n === 0) break;
        if (size < 100) buf.copy(header, size, 0, Math.min(n, 100 - size));
        size += n;
        if (size > max) throw new RestoreRefused(`${file} grew past ${max} bytes while being read`);
        for (let off = 0; off < n; ) off += writeSync(dst, buf, off, n - off);
      }
      fsyncSync(dst);
      return { header: header.subarray(0, Math.min(size, 100)), size };
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
}

/** migrationLevel: how many of this release's migrations the history records; refuses any other history. */
function migrationLevel(sqlite: Database, schema: Map<string, SchemaObject>): number {
  if (!schema.has("table __drizzle_migrations"))
    throw new RestoreRefused("not a Gatehouse backup (no migration history)");
  const rows = sqlite.query("SELECT hash, created_at FROM __drizzle_migrations ORDER BY rowid").all() as {
    hash: unknown;
    created_at: unknown;
  }[];
  const known = loadMigrations();
  const knownHashes = new Set(known.map((m) => m.hash));
  for (const [i, row] of rows.entries()) {
    const m = known[i];
    if (m && row.hash === m.hash && Number(row.created_at) === m.folderMillis) continue;
    // Our history, then only changes this release does not know: a newer release made it.
    if (rows.slice(i).every((r) => typeof r.hash === "string" && !knownHashes.has(r.hash))) {
      throw new RestoreRefused(
        `made by a newer release (${rows.length - i} unknown schema change(s)); restore it with that release`,
      );
    }
    throw new RestoreRefused(
      `not a Gatehouse backup: its migration history differs from this release's at entry ${i + 1}`,
    );
  }
  if (rows.length === 0) throw new RestoreRefused("not a Gatehouse backup (empty migration history)");
  return rows.length;
}

/** checkCopy: steps 3 to 6 on the private copy; returns its migration level. */
function checkCopy(path: string): number {
  let sqlite: Database;
  try {
    sqlite = new Database(path, sqliteFlags.SQLITE_OPEN_READONLY | sqliteFlags.SQLITE_OPEN_NOFOLLOW);
  } catch (err) {
    throw new RestoreRefused(`not a readable SQLite database: ${(err as Error).message}`);
  }
  try {
    let schema: Map<string, SchemaObject>;
    try {
      sqlite.run("PRAGMA trusted_schema = OFF");
      sqlite.run("PRAGMA cell_size_check = ON");
      sqlite.run("PRAGMA mmap_size = 0");
      schema = readSchema(sqlite);
    } catch (err) {
      throw new RestoreRefused(`not a readable SQLite database: ${(err as Error).message}`);
    }
    let level: number;
    try {
      level = migrationLevel(sqlite, schema);
    } catch (err) {
      if (err instanceof RestoreRefused) throw err;
      throw new RestoreRefused(`not a Gatehouse backup: ${(err as Error).message}`);
    }
    const differences = schemaDifferences(schema, referenceSchema(level));
    if (differences.length) {
      const shown =
        differences.slice(0, 10).join("; ") + (differences.length > 10 ? `; and ${differences.length - 10} more` : "");
      throw new RestoreRefused(`its schema is not the one Gatehouse's migrations make: ${shown}`);
    }
    let problems: string[];
    try {
      problems = (sqlite.query("PRAGMA integrity_check(20)").all() as { integrity_check: string }[]).map(
        (r) => r.integrity_check,
      );
    } catch (err) {
      problems = [(err as Error).message];
    }
    if (problems.length !== 1 || problems[0] !== "ok")
      throw new RestoreRefused(`damaged: integrity check failed: ${problems.slice(0, 3).join("; ")}`);
    let orphans: { table: string }[];
    try {
      orphans = sqlite.query("PRAGMA foreign_key_check").all() as { table: string }[];
    } catch (err) {
      throw new RestoreRefused(`damaged: foreign key check failed: ${(err as Error).message}`);
    }
    if (orphans.length)
      throw new RestoreRefused(
        `damaged: ${orphans.length} row(s) refer to rows that do not exist (in ${[...new Set(orphans.map((o) => o.table))].join(", ")})`,
      );
    let content: string[];
    try {
      content = contentProblems(sqlite, level);
    } catch (err) {
      content = [(err as Error).message];
    }
    if (content.length)
      throw new RestoreRefused(
        `values of the wrong kind: ${content.slice(0, 10).join("; ")}${content.length > 10 ? `; and ${content.length - 10} more` : ""}`,
      );
    return level;
  } finally {
    sqlite.close();
  }
}

function removeWithCompanions(path: string): void {
  for (const suffix of ["", ...companions]) rmSync(path + suffix, { force: true });
}

/**
 * setAside: the live database becomes `gatehouse.db.previous` while `gatehouse.db` keeps pointing at it
 * until the rename of the new one (a hard link, else a copy). Its write-ahead log is merged first; if
 * it cannot be (a damaged database), the log moves along with it, so it is never applied to the new file.
 */
function setAside(live: string, previous: string): void {
  try {
    const old = new Database(live, sqliteFlags.SQLITE_OPEN_READWRITE | sqliteFlags.SQLITE_OPEN_NOFOLLOW);
    try {
      old.run("PRAGMA busy_timeout = 5000");
      old.run("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      old.close();
    }
  } catch {
    // damaged or locked: its -wal/-journal move along below
  }
  removeWithCompanions(previous);
  try {
    linkSync(live, previous);
  } catch {
    copyFileSync(live, previous, constants.COPYFILE_EXCL);
  }
  for (const suffix of ["-wal", "-journal"] as const)
    if (existsSync(live + suffix)) renameSync(live + suffix, previous + suffix);
  rmSync(`${live}-shm`, { force: true });
}

export interface RestoreResult {
  /** migrations the backup had */
  level: number;
  /** migrations this release has (level < latest: the copy was migrated) */
  latest: number;
  /** the replaced database, kept until the appliance starts (undefined: there was none) */
  previous?: string;
}

/**
 * restoreDatabase: replaces `<dataDir>/gatehouse.db` with `file` once a private copy of it has passed
 * every check (see the top of this file), was migrated to this release and opened by `probe`. Throws
 * RestoreRefused (nothing changed) or an I/O error. The caller makes sure the appliance is stopped.
 */
export function restoreDatabase(
  dataDir: string,
  file: string,
  probe: (db: Db) => void = () => {},
  maxBytes = maxBackupBytes,
): RestoreResult {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Its real path: every file in it is opened without following links (SQLITE_OPEN_NOFOLLOW refuses
  // a link anywhere in the path, and the path to the data dir is the admin's own).
  dataDir = realpathSync(dataDir);
  const live = join(dataDir, liveName);
  const temp = tempPathBeside(live, "restore");
  let swapped = false;
  try {
    const { header, size } = copyBounded(file, temp, maxBytes);
    checkHeader(header, size);
    // A backup of a WAL database (header bytes 18-19 = 2) whose log is not with it: the copy has no
    // log either, so marking it rollback-journal (1) is exact and lets it open read-only without one.
    if (header[18] === 2 || header[19] === 2) {
      const fd = openSync(temp, constants.O_WRONLY);
      try {
        writeSync(fd, Buffer.from([1, 1]), 0, 2, 18);
      } finally {
        closeSync(fd);
      }
    }
    const level = checkCopy(temp);
    const latest = loadMigrations().length;
    const db = openDatabase(temp, { noFollow: true });
    try {
      migrate(db);
      const after = schemaDifferences(readSchema(db.$client), referenceSchema(latest));
      if (after.length)
        throw new RestoreRefused(
          `migrating it to this release left a schema that differs: ${after.slice(0, 5).join("; ")}`,
        );
      const quick = db.$client.query("PRAGMA quick_check").all() as { quick_check: string }[];
      if (quick.length !== 1 || quick[0]!.quick_check !== "ok")
        throw new RestoreRefused(`damaged after migration: ${quick.map((q) => q.quick_check).join("; ")}`);
      try {
        probe(db);
      } catch (err) {
        throw new RestoreRefused(`the appliance cannot load its data: ${(err as Error).message}`);
      }
      // A self-contained file: the log merged and gone, so the rename below moves everything.
      db.$client.run("PRAGMA wal_checkpoint(TRUNCATE)");
      db.$client.run("PRAGMA journal_mode = DELETE");
    } finally {
      closeDatabase(db);
    }
    fsyncPath(temp);
    let previous: string | undefined;
    if (existsSync(live)) {
      previous = join(dataDir, previousName);
      setAside(live, previous);
    }
    renameSync(temp, live);
    swapped = true;
    fsyncFolder(dataDir);
    return { level, latest, previous };
  } finally {
    if (!swapped) removeWithCompanions(temp);
  }
}

/**
 * discardPrevious: the appliance has started on the restored database; the one it replaced goes.
 * Returns whether there was one.
 */
export function discardPrevious(dataDir: string): boolean {
  const previous = join(dataDir, previousName);
  if (!existsSync(previous)) return false;
  removeWithCompanions(previous);
  return true;
}
