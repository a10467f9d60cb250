import { Database } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, renameSync, statSync } from "node:fs";
import { createPrivateFile } from "../../lib/files.ts";

/*
 * The broker's own database, broker.db: what the MQTT broker has acknowledged (retained messages, persistent sessions with their
 * subscriptions and queues, QoS 2 packets received, wills), in its own SQLite file beside gatehouse.db so
 * that its write rate never holds the lock admins and logins write under. The main thread reads it once at
 * start (`loadBrokerDb`); from then on a worker (`broker-db.worker.ts`) writes it, a batch of operations
 * per transaction (`BrokerJournal`), so no fsync ever stops the event loop.
 */

/** brokerDbVersion: this release's schema (PRAGMA user_version); 0 is a file nothing was written to yet. */
export const brokerDbVersion = 1;

const schema = `
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, packet BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, integration_id INTEGER NOT NULL, integration_created INTEGER NOT NULL,
  expiry INTEGER, offline_since INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, topic TEXT NOT NULL, options TEXT NOT NULL, PRIMARY KEY (client_id, topic)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, packet BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
  id INTEGER PRIMARY KEY, client_id TEXT NOT NULL, message INTEGER, packet_id INTEGER, pubrel INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_by_client ON queue (client_id);
CREATE TABLE IF NOT EXISTS incoming (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, packet BLOB NOT NULL, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wills (
  client_id TEXT PRIMARY KEY, integration_id INTEGER, integration_created INTEGER, packet BLOB NOT NULL) WITHOUT ROWID;
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
  reset: 19,
} as const;

/** statements: the SQL of each op code, in code order (the worker prepares them once). */
export const statements: string[] = [
  "INSERT OR REPLACE INTO retained (topic, packet) VALUES (?1, ?2)",
  "DELETE FROM retained WHERE topic = ?1",
  "INSERT OR REPLACE INTO sessions (client_id, integration_id, integration_created, expiry, offline_since) VALUES (?1, ?2, ?3, ?4, ?5)",
  "DELETE FROM sessions WHERE client_id = ?1",
  "INSERT OR REPLACE INTO subscriptions (client_id, topic, options) VALUES (?1, ?2, ?3)",
  "DELETE FROM subscriptions WHERE client_id = ?1 AND topic = ?2",
  "DELETE FROM subscriptions WHERE client_id = ?1",
  "INSERT OR REPLACE INTO messages (id, packet) VALUES (?1, ?2)",
  "DELETE FROM messages WHERE id = ?1",
  "INSERT OR REPLACE INTO queue (id, client_id, message, packet_id, pubrel) VALUES (?1, ?2, ?3, ?4, ?5)",
  "UPDATE queue SET packet_id = ?2 WHERE id = ?1",
  "UPDATE queue SET message = NULL, pubrel = 1, packet_id = ?2 WHERE id = ?1",
  "DELETE FROM queue WHERE id = ?1",
  "DELETE FROM queue WHERE client_id = ?1",
  "INSERT OR REPLACE INTO incoming (client_id, packet_id, packet) VALUES (?1, ?2, ?3)",
  "DELETE FROM incoming WHERE client_id = ?1 AND packet_id = ?2",
  "DELETE FROM incoming WHERE client_id = ?1",
  "INSERT OR REPLACE INTO wills (client_id, integration_id, integration_created, packet) VALUES (?1, ?2, ?3, ?4)",
  "DELETE FROM wills WHERE client_id = ?1",
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

export class BrokerDbError extends Error {
  override name = "BrokerDbError";
}

/** StoredPacket: a packet as aedes keeps it (a PUBLISH, a will, a PUBREL) with a Buffer payload. */
export type StoredPacket = Record<string, unknown> & { topic?: string; payload?: Buffer };

/** The fields of a packet worth keeping; aedes' own helpers (callbacks, client references) are not. */
const kept = [
  "cmd",
  "brokerId",
  "brokerCounter",
  "topic",
  "qos",
  "retain",
  "dup",
  "messageId",
  "messageExpiry",
  "clientId",
  "nl",
  "reasonCode",
] as const;

/**
 * encodePacket: `[u32 length of the JSON head][JSON head][payload]`. Correlation Data (the one binary
 * property of a PUBLISH or will) travels base64 in its own head field, so no property value can be
 * mistaken for a Buffer when read back.
 */
export function encodePacket(p: StoredPacket): Uint8Array {
  const head: Record<string, unknown> = {};
  for (const k of kept) if (p[k] !== undefined && p[k] !== null) head[k] = p[k];
  const props = p.properties as Record<string, unknown> | undefined;
  if (props) {
    const { correlationData, ...rest } = props;
    head.properties = rest;
    if (correlationData !== undefined)
      head.correlationData = Buffer.from(correlationData as Uint8Array).toString("base64");
  }
  const json = Buffer.from(JSON.stringify(head));
  const raw = p.payload as Buffer | string | undefined;
  const payload = raw === undefined ? Buffer.alloc(0) : typeof raw === "string" ? Buffer.from(raw) : raw;
  const out = Buffer.allocUnsafe(4 + json.length + payload.length);
  out.writeUInt32LE(json.length, 0);
  json.copy(out, 4);
  out.set(payload, 4 + json.length);
  return out;
}

/** decodePacket: the packet `encodePacket` wrote (its payload a Buffer over the same memory). */
export function decodePacket(blob: Uint8Array): StoredPacket {
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const n = buf.readUInt32LE(0);
  const head = JSON.parse(buf.toString("utf8", 4, 4 + n)) as StoredPacket & { correlationData?: string };
  const { correlationData, ...packet } = head;
  if (correlationData !== undefined)
    packet.properties = { ...(packet.properties as object), correlationData: Buffer.from(correlationData, "base64") };
  packet.payload = buf.subarray(4 + n);
  return packet;
}

/** The rows of broker.db, as read at start. */
export interface BrokerDbSnapshot {
  retained: { topic: string; packet: Uint8Array }[];
  sessions: {
    client_id: string;
    integration_id: number;
    integration_created: number;
    expiry: number | null;
    offline_since: number | null;
  }[];
  subscriptions: { client_id: string; topic: string; options: string }[];
  messages: { id: number; packet: Uint8Array }[];
  queue: { id: number; client_id: string; message: number | null; packet_id: number | null; pubrel: number }[];
  incoming: { client_id: string; packet_id: number; packet: Uint8Array }[];
  wills: { client_id: string; integration_id: number | null; integration_created: number | null; packet: Uint8Array }[];
}

/**
 * loadBrokerDb: opens `file` (made 0600 first if new: retained values and queued messages are plant data),
 * brings its schema to this release's and reads every row. A file of a newer release is refused (its data
 * stays as it is); one SQLite cannot read is moved aside as `broker.db.unreadable-<time>` and the broker
 * starts empty, saying so, because a damaged message store must not keep the appliance from starting.
 */
export function loadBrokerDb(
  file: string,
  warn: (msg: string, fields: Record<string, unknown>) => void,
): BrokerDbSnapshot {
  try {
    return readAll(file);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== "SQLITE_CORRUPT" && code !== "SQLITE_NOTADB") throw err;
    const aside = `${file}.unreadable-${Date.now()}`;
    for (const suffix of ["", "-wal", "-shm"]) if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
    warn("broker.db could not be read: moved aside, the broker starts without stored messages", { aside, err });
    return readAll(file);
  }
}

function readAll(file: string): BrokerDbSnapshot {
  try {
    closeSync(createPrivateFile(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    for (const suffix of ["", "-wal", "-shm"])
      if (existsSync(file + suffix) && (statSync(file + suffix).mode & 0o077) !== 0) chmodSync(file + suffix, 0o600);
  }
  const db = new Database(file, { strict: true });
  try {
    for (const p of writerPragmas) db.run(p);
    const { user_version: version } = db.query("PRAGMA user_version").get() as { user_version: number };
    if (version > brokerDbVersion)
      throw new BrokerDbError(
        `broker.db has schema ${version}, this release knows ${brokerDbVersion}: it was written by a newer release`,
      );
    if (version < brokerDbVersion) {
      // 0: new (or left by a release without a broker store). Later versions migrate here, in order.
      db.transaction(() => {
        db.run(schema);
        db.run(`PRAGMA user_version = ${brokerDbVersion}`);
      }).immediate();
    }
    const all = <T>(sql: string) => db.query(sql).all() as T[];
    return {
      retained: all("SELECT topic, packet FROM retained"),
      sessions: all("SELECT client_id, integration_id, integration_created, expiry, offline_since FROM sessions"),
      subscriptions: all("SELECT client_id, topic, options FROM subscriptions"),
      messages: all("SELECT id, packet FROM messages"),
      queue: all("SELECT id, client_id, message, packet_id, pubrel FROM queue ORDER BY id"),
      incoming: all("SELECT client_id, packet_id, packet FROM incoming"),
      wills: all("SELECT client_id, integration_id, integration_created, packet FROM wills"),
    };
  } finally {
    db.close();
  }
}

/** WorkerRequest / WorkerReply: what the main thread and the writer say to each other. */
export type WorkerRequest =
  | { t: "open"; file: string; maxPageCount?: number }
  | { t: "batch"; id: number; ops: Op[] }
  | { t: "close" };

export type WorkerReply =
  | { t: "opened" }
  | { t: "done"; id: number; ok: true; fileBytes: number }
  | { t: "done"; id: number; ok: false; error: string; code?: string }
  | { t: "closed" }
  | { t: "failed"; error: string };
