import { constants as sqliteFlags, Database } from "bun:sqlite";
import { closeSync, lstatSync, readdirSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { StartRefused } from "../../lib/errors.ts";
import { createPrivateFile, narrowToPrivate, TargetError } from "../../lib/files.ts";

/*
 * The broker's own database, broker.db: what the MQTT broker has acknowledged (retained messages, persistent sessions with their
 * subscriptions and queues, QoS 2 packets received, wills), in its own SQLite file beside gatehouse.db so
 * that its write rate never holds the lock admins and logins write under. The main thread reads it once at
 * start (`loadBrokerDb`); from then on a worker (`broker-db.worker.ts`) writes it, a batch of operations
 * per transaction (`BrokerJournal`), so no fsync ever stops the event loop.
 */

/**
 * brokerDbVersion: this release's schema (PRAGMA user_version); 0 is a file nothing was written to yet.
 * 2: a session carries `integration_updated`, its integration's `updated_at` when it was stored (see
 * `restoreOwners`); a file of 1 gains the column, null in its rows (kept, stamped at the next start).
 * 3: a retained message carries `owner` and `owner_created`, the integration that published it (charged for it
 * in `--mqtt-store-max-integration-bytes`); a file of 1 or 2 gains the columns, null in its rows: nobody's.
 */
export const brokerDbVersion = 3;

/**
 * A packet is stored as columns, the same in every table that holds one (retained messages, queued messages,
 * QoS 2 packets received, wills): reading one back needs no parsing, and a restart with 100 000 queued
 * messages stays short. `extra` is JSON for what few packets have (MQTT 5 properties, a PUBREL, no-local), and
 * for a retained value the time it was stored (`at`, ms; `retainedAt` on the packet in memory).
 */
const packetColumns = `topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
  broker_id TEXT, broker_counter INTEGER, origin TEXT, expiry INTEGER, extra TEXT`;
const packetNames = "topic, payload, qos, retain, broker_id, broker_counter, origin, expiry, extra";
const packetParams = (from: number) => Array.from({ length: 9 }, (_, i) => `?${from + i}`).join(", ");

const schema = `
CREATE TABLE IF NOT EXISTS retained (
  ${packetColumns}, owner INTEGER, owner_created INTEGER, PRIMARY KEY (topic)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, integration_id INTEGER NOT NULL, integration_created INTEGER NOT NULL,
  expiry INTEGER, offline_since INTEGER, integration_updated INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, topic TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (client_id, topic)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, ${packetColumns});
CREATE TABLE IF NOT EXISTS queue (
  id INTEGER PRIMARY KEY, client_id TEXT NOT NULL, message INTEGER, packet_id INTEGER, pubrel INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_by_client ON queue (client_id);
CREATE TABLE IF NOT EXISTS incoming (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, ${packetColumns}, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wills (
  client_id TEXT PRIMARY KEY, integration_id INTEGER, integration_created INTEGER, ${packetColumns}) WITHOUT ROWID;
`;

/**
 * Op: one write, `[code, ...parameters]`; `statements[code]` is its SQL. Every op is idempotent (rows
 * carry their keys, inserts replace), so a batch written again over a state that already has it
 * changes nothing: that is what lets a failed batch be healed by writing the whole state (`Op.reset`).
 */
export type Op = [number, ...(string | number | bigint | Uint8Array | null)[]];

export const op = {
  retainedPut: 0,
  retainedDel: 1,
  sessionPut: 2,
  sessionDel: 3,
  subPut: 4,
  subDel: 5,
  subsClear: 6,
  messagePut: 7,
  messageDel: 8,
  queuePut: 9,
  queuePacketId: 10,
  queuePubrel: 11,
  queueDel: 12,
  queueClear: 13,
  incomingPut: 14,
  incomingDel: 15,
  incomingClear: 16,
  willPut: 17,
  willDel: 18,
  retainedDisown: 19,
  reset: 20,
} as const;

/** statements: the SQL of each op code, in code order (the worker prepares them once). */
export const statements: string[] = [
  `INSERT OR REPLACE INTO retained (${packetNames}, owner, owner_created) VALUES (${packetParams(1)}, ?10, ?11)`,
  "DELETE FROM retained WHERE topic = ?1",
  "INSERT OR REPLACE INTO sessions (client_id, integration_id, integration_created, expiry, offline_since, integration_updated) " +
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
  "DELETE FROM sessions WHERE client_id = ?1",
  "INSERT OR REPLACE INTO subscriptions (client_id, topic, options) VALUES (?1, ?2, ?3)",
  "DELETE FROM subscriptions WHERE client_id = ?1 AND topic = ?2",
  "DELETE FROM subscriptions WHERE client_id = ?1",
  `INSERT OR REPLACE INTO messages (id, ${packetNames}) VALUES (?1, ${packetParams(2)})`,
  "DELETE FROM messages WHERE id = ?1",
  "INSERT OR REPLACE INTO queue (id, client_id, message, packet_id, pubrel) VALUES (?1, ?2, ?3, ?4, ?5)",
  "UPDATE queue SET packet_id = ?2 WHERE id = ?1",
  "UPDATE queue SET message = NULL, pubrel = 1, packet_id = ?2 WHERE id = ?1",
  "DELETE FROM queue WHERE id = ?1",
  "DELETE FROM queue WHERE client_id = ?1",
  `INSERT OR REPLACE INTO incoming (client_id, packet_id, ${packetNames}) VALUES (?1, ?2, ${packetParams(3)})`,
  "DELETE FROM incoming WHERE client_id = ?1 AND packet_id = ?2",
  "DELETE FROM incoming WHERE client_id = ?1",
  `INSERT OR REPLACE INTO wills (client_id, integration_id, integration_created, ${packetNames}) VALUES (?1, ?2, ?3, ${packetParams(4)})`,
  "DELETE FROM wills WHERE client_id = ?1",
  "UPDATE retained SET owner = NULL, owner_created = NULL WHERE owner = ?1",
];

/** resetTables: `op.reset` empties every table (the state written right behind it replaces it whole). */
export const resetTables = ["retained", "sessions", "subscriptions", "messages", "queue", "incoming", "wills"];

/** writerPragmas: the writer's connection: WAL, and every commit fsynced (FULL) before a batch is reported done. */
export const writerPragmas = [
  "PRAGMA busy_timeout = 5000",
  "PRAGMA journal_mode = WAL",
  "PRAGMA synchronous = FULL",
  // a burst leaves a long WAL behind; after each checkpoint it is cut back to this
  "PRAGMA journal_size_limit = 16777216",
];

/**
 * BrokerDbError: broker.db cannot be used as it is and must not be touched (a newer release's file, a link):
 * `serve` refuses to start with exit 2 (bad configuration: a person must act) instead of a restart loop.
 */
export class BrokerDbError extends StartRefused {
  override name = "BrokerDbError";
}

/** UnreadableBrokerDb: broker.db is an SQLite file without this release's tables: moved aside like a damaged one. */
class UnreadableBrokerDb extends Error {
  override name = "UnreadableBrokerDb";
}

/** brokerDbSuffixes: the database and the files SQLite keeps beside it. */
const brokerDbSuffixes = ["", "-wal", "-shm", "-journal"];

/** noFollowFlags: broker.db is opened as gatehouse.db is: a symlink in its path is refused (SQLITE_OPEN_NOFOLLOW). */
export const noFollowFlags =
  sqliteFlags.SQLITE_OPEN_READWRITE | sqliteFlags.SQLITE_OPEN_CREATE | sqliteFlags.SQLITE_OPEN_NOFOLLOW;

/** StoredPacket: a packet as aedes keeps it (a PUBLISH, a will, a PUBREL) with a Buffer payload. */
export type StoredPacket = Record<string, unknown> & { topic?: string; payload?: Buffer };

/** PacketRow: a packet's columns as SQLite gives them back. */
export interface PacketRow {
  topic: string;
  payload: Uint8Array;
  qos: number;
  retain: number;
  broker_id: string | null;
  broker_counter: number | null;
  origin: string | null;
  expiry: number | null;
  extra: string | null;
}

/** Cells: a packet's column values, in `packetNames` order. */
export type Cells = [
  string,
  Uint8Array,
  number,
  number,
  string | null,
  number | null,
  string | null,
  number | null,
  string | null,
];

/**
 * packetCells: the columns of a packet. MQTT 5 properties go to `extra` as JSON, their one binary value
 * (Correlation Data) as base64 in a field of its own, so no property can be mistaken for a Buffer.
 */
export function packetCells(p: StoredPacket): Cells {
  let extra: Record<string, unknown> | undefined;
  const props = p.properties as Record<string, unknown> | undefined;
  if (props) {
    const { correlationData, ...rest } = props;
    extra = { properties: rest };
    if (correlationData !== undefined)
      extra.correlationData = Buffer.from(correlationData as Uint8Array).toString("base64");
  }
  if (p.cmd !== undefined && p.cmd !== "publish") (extra ??= {}).cmd = p.cmd;
  if (p.nl !== undefined) (extra ??= {}).nl = p.nl;
  // a retained value's time, as the HTTP data API shows it: kept in `extra` (no schema change for it)
  if (typeof p.retainedAt === "number") (extra ??= {}).at = p.retainedAt;
  const raw = p.payload as Buffer | string | undefined;
  const payload = raw === undefined ? Buffer.alloc(0) : typeof raw === "string" ? Buffer.from(raw) : raw;
  return [
    p.topic ?? "",
    payload,
    (p.qos as number | undefined) ?? 0,
    p.retain ? 1 : 0,
    (p.brokerId as string | undefined) ?? null,
    (p.brokerCounter as number | undefined) ?? null,
    (p.clientId as string | undefined) ?? null,
    (p.messageExpiry as number | undefined) ?? null,
    extra ? JSON.stringify(extra) : null,
  ];
}

/** cellsBytes: what a stored packet counts for in `--mqtt-store-max-bytes`: its bytes and a row's upkeep. */
export const cellsBytes = (c: Cells) => c[0].length + c[1].length + (c[8]?.length ?? 0) + rowBytes;

/**
 * rowBytes: what a stored packet costs beyond its topic, payload and properties, so the budget bounds memory
 * as well as disk: ~600 bytes a queued message of 64 bytes held in the heap (100 000 queued: 64 MiB after
 * GC, measured with bench/durable.ts' server); broker.db itself takes ~270 bytes for one.
 */
export const rowBytes = 512;

/** packetFromRow: the packet `packetCells` stored (its payload a Buffer over SQLite's bytes). */
export function packetFromRow(r: PacketRow): StoredPacket {
  const payload = r.payload;
  const p: StoredPacket = {
    cmd: "publish",
    topic: r.topic,
    payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
    qos: r.qos,
    retain: r.retain === 1,
    dup: false,
  };
  if (r.broker_id !== null) {
    p.brokerId = r.broker_id;
    p.brokerCounter = r.broker_counter ?? 0;
  }
  if (r.origin !== null) p.clientId = r.origin;
  if (r.expiry !== null) p.messageExpiry = r.expiry;
  if (r.extra !== null) {
    const { properties, correlationData, at, ...rest } = JSON.parse(r.extra) as Record<string, unknown>;
    Object.assign(p, rest);
    if (goodStamp(at)) p.retainedAt = at;
    if (properties || correlationData !== undefined)
      p.properties = {
        ...(properties as object),
        ...(correlationData !== undefined ? { correlationData: Buffer.from(correlationData as string, "base64") } : {}),
      };
  }
  return p;
}

/** The rows of broker.db, as read at start. */
export interface BrokerDbSnapshot {
  /** retained: each with its owner, the integration that published it (null: nobody's, a row of a file before 3) */
  retained: (PacketRow & { owner: number | null; owner_created: number | null })[];
  sessions: {
    client_id: string;
    integration_id: number;
    integration_created: number;
    expiry: number | null;
    offline_since: number | null;
    /** null in a row a file of version 1 holds */
    integration_updated: number | null;
  }[];
  subscriptions: { client_id: string; topic: string; options: string }[];
  messages: (PacketRow & { id: number })[];
  queue: { id: number; client_id: string; message: number | null; packet_id: number | null; pubrel: number }[];
  incoming: (PacketRow & { client_id: string; packet_id: number })[];
  wills: (PacketRow & { client_id: string; integration_id: number | null; integration_created: number | null })[];
}

/**
 * loadBrokerDb: opens `file` (made 0600 first if new: retained values and queued messages are plant data),
 * brings its schema to this release's and reads every row. Like gatehouse.db, neither it nor its -wal, -shm
 * and -journal is followed through a link or narrowed by path (fchmod on the descriptor): a link, or a file of
 * a newer release, is refused with a BrokerDbError (`serve` exits 2, the file stays as it is). One SQLite cannot
 * read, or without this release's tables, is moved aside as `broker.db.unreadable-<time>` and the broker starts
 * empty, saying so, because a damaged message store must not keep the appliance from starting; of those moved
 * aside, the newest `keepUnreadable` are kept. Bad rows are skipped at load (`BrokerStore`), not fatal.
 */
export function loadBrokerDb(
  file: string,
  warn: (msg: string, fields: Record<string, unknown>) => void,
): BrokerDbSnapshot {
  try {
    return readAll(file);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== "SQLITE_CORRUPT" && code !== "SQLITE_NOTADB" && !(err instanceof UnreadableBrokerDb)) throw err;
    const aside = `${file}.unreadable-${Date.now()}`;
    for (const suffix of brokerDbSuffixes) if (exists(file + suffix)) renameSync(file + suffix, aside + suffix);
    warn("broker.db could not be read: moved aside, the broker starts without stored messages", { aside, err });
    pruneUnreadable(file, warn);
    return readAll(file);
  }
}

/** keepUnreadable: how many broker.db files moved aside are kept (the newest); older ones are removed. */
export const keepUnreadable = 3;

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function pruneUnreadable(file: string, warn: (msg: string, fields: Record<string, unknown>) => void): void {
  const prefix = `${basename(file)}.unreadable-`;
  const stamps = new Set<number>();
  for (const name of readdirSync(dirname(file))) {
    const m = name.startsWith(prefix) ? /^(\d+)(-wal|-shm|-journal)?$/.exec(name.slice(prefix.length)) : null;
    if (m) stamps.add(Number(m[1]));
  }
  const old = [...stamps].sort((a, b) => b - a).slice(keepUnreadable);
  for (const t of old)
    for (const suffix of brokerDbSuffixes) {
      try {
        rmSync(join(dirname(file), `${prefix}${t}${suffix}`), { force: true });
      } catch (err) {
        warn("cannot remove an old unreadable broker.db", { err });
      }
    }
}

function readAll(file: string): BrokerDbSnapshot {
  try {
    try {
      closeSync(createPrivateFile(file)); // O_EXCL: a planted link is not followed
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    // each present one a regular file, not a link; one others can read narrowed through its descriptor
    for (const suffix of brokerDbSuffixes) narrowToPrivate(file + suffix);
  } catch (err) {
    if (err instanceof TargetError) throw new BrokerDbError(`broker.db: ${err.message}`);
    throw err;
  }
  let db: Database;
  try {
    db = new Database(file, noFollowFlags);
  } catch (err) {
    throw new BrokerDbError(`cannot open ${file}: ${(err as Error).message}`);
  }
  try {
    for (const p of writerPragmas) db.run(p);
    const { user_version: version } = db.query("PRAGMA user_version").get() as { user_version: number };
    if (version > brokerDbVersion)
      throw new BrokerDbError(
        `${file} has schema ${version}, this release knows ${brokerDbVersion}: it was written by a newer release. ` +
          "Start that release again, or move the file away to start this one without stored MQTT messages",
      );
    if (version < brokerDbVersion) {
      // 0: new (or left by a release without a broker store); 1: sessions gain their integration's stamp;
      // 1 and 2: retained messages gain their owner (every row kept, nobody's)
      try {
        db.transaction(() => {
          if (version === 0) db.run(schema);
          if (version === 1) db.run("ALTER TABLE sessions ADD COLUMN integration_updated INTEGER");
          if (version === 1 || version === 2) {
            db.run("ALTER TABLE retained ADD COLUMN owner INTEGER");
            db.run("ALTER TABLE retained ADD COLUMN owner_created INTEGER");
          }
          db.run(`PRAGMA user_version = ${brokerDbVersion}`);
        }).immediate();
      } catch (err) {
        // a file of 1 or 2 without its sessions or retained table (someone changed it): unreadable, like a damaged one
        if ((err as { code?: string }).code === "SQLITE_ERROR") throw new UnreadableBrokerDb((err as Error).message);
        throw err;
      }
    }
    const all = <T>(sql: string) => {
      try {
        return db.query(sql).all() as T[];
      } catch (err) {
        // a table or column missing (a file of this version someone changed): unreadable, like a damaged one
        if ((err as { code?: string }).code === "SQLITE_ERROR") throw new UnreadableBrokerDb((err as Error).message);
        throw err;
      }
    };
    return {
      retained: all(`SELECT ${packetNames}, owner, owner_created FROM retained`),
      sessions: all(
        "SELECT client_id, integration_id, integration_created, expiry, offline_since, integration_updated FROM sessions",
      ),
      subscriptions: all("SELECT client_id, topic, options FROM subscriptions"),
      messages: all(`SELECT id, ${packetNames} FROM messages`),
      queue: all("SELECT id, client_id, message, packet_id, pubrel FROM queue ORDER BY id"),
      incoming: all(`SELECT client_id, packet_id, ${packetNames} FROM incoming`),
      wills: all(`SELECT client_id, integration_id, integration_created, ${packetNames} FROM wills`),
    };
  } finally {
    db.close();
  }
}

/** WorkerRequest / WorkerReply: what the main thread and the writer say to each other. */
export type WorkerRequest =
  | { t: "open"; file: string; maxPageCount?: number }
  | { t: "batch"; id: number; ops: ArrayBuffer; length: number }
  | { t: "close" };

export type WorkerReply =
  | { t: "opened" }
  | { t: "done"; id: number; ok: true; fileBytes: number }
  | { t: "done"; id: number; ok: false; error: string; code?: string }
  | { t: "closed" }
  | { t: "failed"; error: string };

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * encodeOps: a batch as one buffer, handed to the writer without a copy (transferred). Structured clone of
 * the ops themselves cost ~20 µs an op, and copied the whole memory behind each payload (mostly a view into
 * a socket's read). `[u32 count] ([u8 code][u8 n] n × ([u8 tag] value))*`; tags: 0 null, 1 number (f64),
 * 2 string (u32 length, UTF-8), 3 bytes (u32 length).
 */
export function encodeOps(ops: Op[]): { buffer: ArrayBuffer; length: number } {
  let buf = new Uint8Array(64 * 1024);
  let view = new DataView(buf.buffer);
  let at = 0;
  const room = (n: number) => {
    if (at + n <= buf.length) return;
    let size = buf.length * 2;
    while (size < at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(buf.subarray(0, at));
    buf = next;
    view = new DataView(buf.buffer);
  };
  view.setUint32(0, ops.length);
  at = 4;
  for (const o of ops) {
    room(2);
    buf[at++] = o[0];
    buf[at++] = o.length - 1;
    for (let i = 1; i < o.length; i++) {
      const v = o[i];
      if (v === null || v === undefined) {
        room(1);
        buf[at++] = 0;
      } else if (typeof v === "number" || typeof v === "bigint") {
        room(9);
        buf[at++] = 1;
        view.setFloat64(at, Number(v));
        at += 8;
      } else if (typeof v === "string") {
        room(5 + v.length * 3);
        buf[at++] = 2;
        const { written } = utf8.encodeInto(v, buf.subarray(at + 4));
        view.setUint32(at, written);
        at += 4 + written;
      } else {
        room(5 + v.byteLength);
        buf[at++] = 3;
        view.setUint32(at, v.byteLength);
        buf.set(v, at + 4);
        at += 4 + v.byteLength;
      }
    }
  }
  return { buffer: buf.buffer, length: at };
}

/** decodeOps: the ops `encodeOps` wrote. */
export function decodeOps(buffer: ArrayBuffer, length: number): Op[] {
  const buf = new Uint8Array(buffer, 0, length);
  const view = new DataView(buffer, 0, length);
  const ops: Op[] = [];
  const count = view.getUint32(0);
  let at = 4;
  for (let k = 0; k < count; k++) {
    const o: Op = [buf[at++]!];
    const n = buf[at++]!;
    for (let i = 0; i < n; i++) {
      const tag = buf[at++];
      if (tag === 0) o.push(null);
      else if (tag === 1) {
        o.push(view.getFloat64(at));
        at += 8;
      } else {
        const len = view.getUint32(at);
        at += 4;
        o.push(tag === 2 ? fromUtf8.decode(buf.subarray(at, at + len)) : buf.slice(at, at + len));
        at += len;
      }
    }
    ops.push(o);
  }
  return ops;
}

const isInt = (v: unknown, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
const isText = (v: unknown): v is string => typeof v === "string";
const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isNullOr = (v: unknown, test: (v: unknown) => boolean) => v === null || test(v);

/**
 * badText: a topic or client id MQTT would not have carried: not text, empty, longer than 65 535, with
 * U+0000, U+FFFD (what the parser makes of bad UTF-8) or an unpaired surrogate [MQTT-1.5.3].
 */
function badText(v: unknown): boolean {
  return (
    !isText(v) ||
    v.length === 0 ||
    v.length > 65535 ||
    /[\u0000\uFFFD]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(v)
  );
}

/**
 * goodStamp: a stored time this release could have written: a whole number of ms in Date's range, not negative and
 * not more than a day ahead (attack4 F2: 99999999999999999 made `GET /api/v1/data/{topic}` answer 500). A row with
 * another number loads without a time.
 */
export function goodStamp(at: unknown): at is number {
  return Number.isSafeInteger(at) && (at as number) >= 0 && (at as number) <= Date.now() + 86_400_000;
}

/** maxExtraBytes: the longest `extra` JSON a row may carry at load (properties of one packet; a sane bound) */
export const maxExtraBytes = 64 * 1024;

/**
 * packetOfRow: the packet a row holds, or a reason it is not one this release wrote: every column's type, a
 * topic a PUBLISH may carry (no wildcard), QoS 0-2, `extra` JSON of an object. broker.db is the appliance's
 * own file, yet a damaged or hand-edited row must cost that row (skipped, counted, logged), not the start.
 * `maxPayload` (--mqtt-max-packet):
 * a payload no client could have sent is not loaded, nor an `extra` past `maxExtraBytes` (attack4 F6: a 30 MiB
 * value planted in a copied-in file was served past the packet limit and the store's cap).
 */
export function packetOfRow(r: PacketRow, maxPayload = Number.POSITIVE_INFINITY): StoredPacket | string {
  if (badText(r.topic) || r.topic.includes("+") || r.topic.includes("#")) return "topic";
  if (!(r.payload instanceof Uint8Array)) return "payload";
  if (r.payload.length > maxPayload) return "payload-size";
  if (typeof r.extra === "string" && r.extra.length > maxExtraBytes) return "extra-size";
  if (!isInt(r.qos, 0, 2)) return "qos";
  if (r.retain !== 0 && r.retain !== 1) return "retain";
  if (!isNullOr(r.broker_id, isText) || !isNullOr(r.broker_counter, (v) => isInt(v, 0))) return "broker";
  if (!isNullOr(r.origin, isText) || !isNullOr(r.expiry, isNum)) return "origin";
  if (r.extra !== null) {
    if (!isText(r.extra)) return "extra";
    try {
      const x = JSON.parse(r.extra) as unknown;
      if (typeof x !== "object" || x === null || Array.isArray(x)) return "extra";
      const { properties, correlationData } = x as Record<string, unknown>;
      if (properties !== undefined && (typeof properties !== "object" || properties === null)) return "extra";
      if (correlationData !== undefined && !isText(correlationData)) return "extra";
      const { at } = x as Record<string, unknown>;
      if (at !== undefined && !isNum(at)) return "extra";
    } catch {
      return "extra";
    }
  }
  return packetFromRow(r);
}

/** badSessionRow: why a `sessions` row is not one this release wrote (undefined: it is). */
export function badSessionRow(r: BrokerDbSnapshot["sessions"][number]): string | undefined {
  if (badText(r.client_id)) return "client_id";
  if (!isInt(r.integration_id, 1) || !isNum(r.integration_created)) return "integration";
  if (!isNullOr(r.expiry, isNum) || !isNullOr(r.offline_since, isNum)) return "expiry";
  if (!isNullOr(r.integration_updated, isNum)) return "integration";
  return undefined;
}

/** subscriptionOfRow: a `subscriptions` row's options, or why it is not one this release wrote. */
export function subscriptionOfRow(r: BrokerDbSnapshot["subscriptions"][number]): Record<string, unknown> | string {
  if (badText(r.client_id) || badText(r.topic)) return "topic";
  if (!isText(r.options)) return "options";
  try {
    const o = JSON.parse(r.options) as unknown;
    if (typeof o !== "object" || o === null || Array.isArray(o)) return "options";
    if (!isInt((o as { qos?: unknown }).qos, 0, 2)) return "qos";
    return o as Record<string, unknown>;
  } catch {
    return "options";
  }
}

/** badQueueRow: why a `queue` row is not one this release wrote. */
export function badQueueRow(r: BrokerDbSnapshot["queue"][number]): string | undefined {
  if (!isInt(r.id, 1) || badText(r.client_id)) return "id";
  if (!isNullOr(r.message, (v) => isInt(v, 1)) || !isNullOr(r.packet_id, (v) => isInt(v, 1, 65535))) return "message";
  if (r.pubrel !== 0 && r.pubrel !== 1) return "pubrel";
  return undefined;
}
