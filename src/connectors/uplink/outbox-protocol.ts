/**
 * What the outbox (outbox.ts, the event loop's side) and its writer (outbox.worker.ts, a thread of its
 * own) say to each other, and the file's schema. One row per (uplink, message): `id` is one sequence for
 * the whole file, so each uplink's rows in `id` order are its FIFO.
 */
import { constants, Database } from "bun:sqlite";
export const outboxSchema = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY,
  uplink INTEGER NOT NULL,
  at INTEGER NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  retain INTEGER NOT NULL,
  superseded INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL,
  props TEXT
);
CREATE INDEX IF NOT EXISTS messages_uplink ON messages (uplink, id);
CREATE INDEX IF NOT EXISTS messages_retained ON messages (uplink, topic) WHERE retain = 1 AND superseded = 0;
CREATE TABLE IF NOT EXISTS status (uplink INTEGER PRIMARY KEY, json TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owners (uplink INTEGER PRIMARY KEY, created_at INTEGER NOT NULL);
`;

/** OutboxRow: id, uplink, at (ms), topic, payload, retain (0/1), size (bytes of topic and payload), properties (JSON). */
export type OutboxRow = [number, number, number, string, Uint8Array, 0 | 1, number, string | null];

/**
 * WireRow: an OutboxRow on its way to the writer: its payload is `length` bytes at `offset` of the write's
 * `payloads`. A payload parsed from a socket is a view of the whole chunk it arrived in; posted as it is,
 * structured clone copies that chunk (64 KiB) for every message: measured, that was the uplink's bottleneck.
 */
export type WireRow = [number, number, number, string, number, number, 0 | 1, number, string | null];

export type WorkerRequest =
  | { op: "open"; path: string; cacheKiB: number }
  | {
      op: "write";
      batch: number;
      rows: WireRow[];
      /** every payload of `rows`, one after another (transferred, not copied) */
      payloads: ArrayBuffer;
      /** ids acknowledged upstream or dropped by the bounds */
      deletes: number[];
      /** uplinks removed: their rows, status and owner go */
      purge: number[];
      /** [uplink id, its created-at]: whose rows these are (a restored admin database may reuse an id) */
      owners: [number, number][];
      /** [uplink id, status JSON] for `gatehouse uplinks status` */
      status: [number, string][];
    }
  | { op: "close" };

export type WorkerReply =
  | {
      op: "opened";
      maxId: number;
      stats: { uplink: number; count: number; bytes: number; firstId: number }[];
      status: { uplink: number; json: string }[];
      owners: { uplink: number; createdAt: number }[];
    }
  | { op: "written"; batch: number }
  | { op: "failed"; batch: number; error: string; code: string }
  | { op: "closed" };

/**
 * openOutboxDb: SQLITE_OPEN_NOFOLLOW (a link at the outbox's name is refused; SQLite opens its -wal and
 * -shm with O_NOFOLLOW in any case). Flags as a number cannot carry `strict`: only positional parameters here.
 */
export function openOutboxDb(path: string, mode: "read" | "write"): Database {
  return new Database(
    path,
    (mode === "read" ? constants.SQLITE_OPEN_READONLY : constants.SQLITE_OPEN_READWRITE) |
      constants.SQLITE_OPEN_NOFOLLOW,
  );
}
