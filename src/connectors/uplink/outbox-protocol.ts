/**
 * What the outbox (outbox.ts, the event loop's side) and its writer (outbox.worker.ts, a thread of its
 * own) say to each other, and the file's schema. One row per (uplink, message): `id` is one sequence for
 * the whole file, so each uplink's rows in `id` order are its FIFO.
 */
import { constants, Database } from "bun:sqlite";
/** outboxIndexes: the indexes the outbox makes, as SQLite keeps their definitions (sqlite_master's `sql`) */
export const outboxIndexes = {
  messages_retained: "CREATE INDEX messages_retained ON messages (uplink, topic) WHERE retain = 1 AND superseded = 0",
  messages_uplink: "CREATE INDEX messages_uplink ON messages (uplink, id)",
} as const;

const ifNew = (name: keyof typeof outboxIndexes) =>
  outboxIndexes[name].replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS");

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
${ifNew("messages_retained")};
CREATE TABLE IF NOT EXISTS status (uplink INTEGER PRIMARY KEY, json TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owners (uplink INTEGER PRIMARY KEY, created_at INTEGER NOT NULL);
`;

/**
 * uplinkIndex: the index that finds one uplink's rows among another's. Only while rows of two uplinks or more
 * may be in the file (the writer makes it then, `outbox.worker.ts`): with one uplink's rows alone its rowid
 * order is the table's, and keeping the index cost every write about a third more pages in the log (11
 * against 7 per group commit of 45 messages, ~1 µs a message of the writer thread's CPU).
 */
export const uplinkIndex = ifNew("messages_uplink");

/** outboxColumns: what each table of `outboxSchema` must have (a file of another shape is not an outbox) */
export const outboxColumns = {
  messages: ["id", "uplink", "at", "topic", "payload", "retain", "superseded", "size", "props"],
  status: ["uplink", "json", "at"],
  owners: ["uplink", "created_at"],
};

/** notAnOutbox: the code of the error for a SQLite file whose tables are not an outbox's */
export const notAnOutbox = "GATEHOUSE_NOT_AN_OUTBOX";

/**
 * unreadable: the file cannot serve as the outbox: SQLite says it is not a database or is damaged, or its
 * tables are of another shape (not a passing condition: a full disk, a lock, a permission).
 */
export function unreadable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB" || code === notAnOutbox;
}

/**
 * checkColumns: the outbox's tables, those that exist, have the columns this build reads and writes;
 * throws an error with the code `notAnOutbox` naming the first one missing.
 */
export function checkColumns(d: Database): void {
  for (const [table, columns] of Object.entries(outboxColumns)) {
    const have = new Set((d.query(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
    const missing = have.size > 0 && columns.find((c) => !have.has(c));
    if (missing)
      throw Object.assign(new Error(`not an outbox: its table ${table} has no column ${missing}`), {
        code: notAnOutbox,
      });
  }
}

/** canonical: each object the outbox makes, by its name in lower case (SQLite's names ignore case), as SQLite keeps it */
let canonical: Map<string, { type: string; name: string; sql: string }> | undefined;
function outboxObjects() {
  if (canonical) return canonical;
  const d = new Database(":memory:");
  try {
    d.exec(outboxSchema);
    d.run(uplinkIndex);
    const rows = d.query("SELECT type, name, sql FROM sqlite_master").all() as {
      type: string;
      name: string;
      sql: string;
    }[];
    canonical = new Map(rows.map((r) => [r.name.toLowerCase(), r]));
    return canonical;
  } finally {
    d.close();
  }
}

/** the most objects an outbox file may hold that it did not make (each is removed by rewriting the schema) */
const maxForeignObjects = 100;

/**
 * tidySchema: the file's schema made the outbox's before it is used. Its tables must be exactly the ones it
 * makes (a CHECK constraint, a generated column, a UNIQUE column would refuse or lose rows), and an object of
 * another kind under one of its names (in any case: SQLite's names ignore it), an index SQLite made for a
 * constraint the outbox does not have, or more than a hundred objects it did not make, make the file not an
 * outbox (set aside, as a table of another shape). An index under one of its names with another definition,
 * any other index, trigger or view, and SQLite's statistics are removed (found from outside: a planted index
 * under its name had every read of a backlog sort it on the event loop, a UNIQUE one refused every write):
 * none of it is data, and its indexes are made again. Returns what was removed.
 */
export function tidySchema(d: Database): string[] {
  const ours = outboxObjects();
  const objects = d.query("SELECT type, name, tbl_name AS tbl, sql FROM sqlite_master").all() as {
    type: string;
    name: string;
    tbl: string;
    sql: string | null;
  }[];
  const notOurs = (why: string) => Object.assign(new Error(`not an outbox: ${why}`), { code: notAnOutbox });
  const drop: { type: string; name: string }[] = [];
  for (const o of objects) {
    const name = o.name.toLowerCase();
    const mine = ours.get(name);
    if (name.startsWith("sqlite_stat"))
      drop.push({ type: "table", name: o.name }); // plans are SQLite's own
    else if (name.startsWith("sqlite_")) {
      // an index SQLite made for a UNIQUE or PRIMARY KEY constraint: the outbox's tables have none
      if (o.type === "index" && ours.has(o.tbl.toLowerCase()))
        throw notOurs(`an index for a constraint it does not have (${o.name})`);
    } else if (mine) {
      if (o.type !== mine.type) throw notOurs(`its ${mine.name} is a ${o.type}, not a ${mine.type}`);
      if (o.sql !== mine.sql || o.name !== mine.name) {
        if (o.type === "table") throw notOurs(`its table ${mine.name} is not as the outbox makes it`);
        drop.push(o); // an index of its name with another definition (made again)
      }
    } else if (o.type === "index" || o.type === "trigger" || o.type === "view") drop.push(o);
  }
  if (drop.length > maxForeignObjects) throw notOurs(`it holds ${drop.length} objects the outbox does not make`);
  for (const o of drop) d.run(`DROP ${o.type.toUpperCase()} IF EXISTS "${o.name.replaceAll('"', '""')}"`);
  return drop.map((o) => `${o.type} ${o.name}`);
}

/**
 * sizeOfRow: a row's `size` (the bytes of its topic and payload) from its record's header, without reading
 * its payload: the column `size` lies after the payload, so reading it walks the payload's overflow pages.
 */
export const sizeOfRow = "length(CAST(topic AS BLOB)) + length(payload)";

/** OutboxRow: id, uplink, at (ms), topic, payload, retain (0/1), size (bytes of topic and payload), properties (JSON). */
export type OutboxRow = [number, number, number, string, Uint8Array, 0 | 1, number, string | null];

/**
 * A write's rows travel to the writer as one binary buffer, transferred (not copied): per row a fixed head
 * (`rowHead` bytes: id, uplink, at, size as float64; the lengths of topic, properties and payload as uint32;
 * retain; whether it has properties), then the topic and properties in UTF-8 and the payload. Posted as JS
 * arrays, every row would be structured-cloned, and a payload parsed from a socket is a view of the chunk it
 * came in, which a clone copies whole for every message.
 */
const rowHead = 8 * 4 + 4 * 3 + 2;

/**
 * spareBytes: the largest buffer the writer gives back for the next write (one write is in flight at a
 * time, so one buffer goes back and forth); a larger one, from a burst of large payloads, is left to the
 * collector. New ones are at least `minRowsBuffer`, so a quiet write and the next busy one share one.
 */
export const spareBytes = 1024 * 1024;
const minRowsBuffer = 64 * 1024;

/**
 * encodeWrite: the rows of a write (see above) and then, at the next multiple of 8, the ids to delete as
 * [first, last] runs of consecutive ids (float64), in one buffer to be transferred to the writer: `spare`
 * (a buffer the writer gave back) when they fit in it, else a new one. `deletes` is sorted in place:
 * acknowledgements come in FIFO order, so a write's deletes are a few runs (one statement each) rather than
 * one statement per message.
 * `rowsLength`: the bytes of the rows; `ranges`: how many runs follow them.
 */
export function encodeWrite(
  rows: readonly OutboxRow[],
  deletes: number[],
  spare?: ArrayBuffer,
): { buffer: ArrayBuffer; rowsLength: number; ranges: number } {
  let total = 0;
  for (const r of rows)
    total += rowHead + Buffer.byteLength(r[3]) + (r[7] === null ? 0 : Buffer.byteLength(r[7])) + r[4].byteLength;
  deletes.sort((a, b) => a - b);
  const rangesAt = rangesOffset(total);
  const size = rangesAt + deletes.length * 16;
  // an ArrayBuffer of its own (not Buffer's shared pool): it is transferred
  const buffer =
    spare && spare.byteLength >= size && !spare.detached ? spare : new ArrayBuffer(Math.max(size, minRowsBuffer));
  const runs = new Float64Array(buffer, rangesAt, deletes.length * 2);
  let ranges = 0;
  for (let i = 0; i < deletes.length; ) {
    const first = deletes[i]!;
    let last = first;
    while (++i < deletes.length && deletes[i]! <= last + 1) last = deletes[i]!;
    runs[ranges * 2] = first;
    runs[ranges * 2 + 1] = last;
    ranges++;
  }
  const buf = Buffer.from(buffer, 0, total);
  let at = 0;
  for (const [id, uplink, time, topic, payload, retain, size, props] of rows) {
    const head = at;
    at += rowHead;
    const topicLength = buf.write(topic, at, "utf8");
    at += topicLength;
    const propsLength = props === null ? 0 : buf.write(props, at, "utf8");
    at += propsLength;
    buf.set(payload, at);
    at += payload.byteLength;
    buf.writeDoubleLE(id, head);
    buf.writeDoubleLE(uplink, head + 8);
    buf.writeDoubleLE(time, head + 16);
    buf.writeDoubleLE(size, head + 24);
    buf.writeUInt32LE(topicLength, head + 32);
    buf.writeUInt32LE(propsLength, head + 36);
    buf.writeUInt32LE(payload.byteLength, head + 40);
    buf[head + 44] = retain;
    buf[head + 45] = props === null ? 0 : 1;
  }
  return { buffer, rowsLength: total, ranges };
}

/** rangesOffset: where a write's delete runs begin, after `rowsLength` bytes of rows (float64-aligned). */
export function rangesOffset(rowsLength: number): number {
  return Math.ceil(rowsLength / 8) * 8;
}

/** decodeRows: the rows of `encodeWrite` (its first `length` bytes), each payload a view into `buffer` (no copy). */
export function decodeRows(buffer: ArrayBuffer, length: number): OutboxRow[] {
  const buf = Buffer.from(buffer, 0, length);
  const rows: OutboxRow[] = [];
  let at = 0;
  while (at < buf.length) {
    const head = at;
    const topicLength = buf.readUInt32LE(head + 32);
    const propsLength = buf.readUInt32LE(head + 36);
    const payloadLength = buf.readUInt32LE(head + 40);
    at += rowHead;
    const topic = buf.toString("utf8", at, at + topicLength);
    at += topicLength;
    const props = buf[head + 45] === 1 ? buf.toString("utf8", at, at + propsLength) : null;
    at += propsLength;
    const payload = new Uint8Array(buffer, at, payloadLength);
    at += payloadLength;
    rows.push([
      buf.readDoubleLE(head),
      buf.readDoubleLE(head + 8),
      buf.readDoubleLE(head + 16),
      topic,
      payload,
      buf[head + 44] === 1 ? 1 : 0,
      buf.readDoubleLE(head + 24),
      props,
    ]);
  }
  return rows;
}

export type WorkerRequest =
  | { op: "open"; path: string; cacheKiB: number; walLimit: number }
  /** copy what the log holds into the file now (short of room: the log then starts over, cut back) */
  | { op: "checkpoint" }
  | {
      op: "write";
      batch: number;
      /**
       * `encodeWrite`'s buffer (transferred): the rows to insert (its first `rowsLength` bytes), then `ranges`
       * runs of ids acknowledged upstream or dropped by the bounds
       */
      buffer: ArrayBuffer;
      rowsLength: number;
      ranges: number;
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
      /** what was in the file that the outbox did not make, removed (`tidySchema`) */
      removed: string[];
    }
  /** `spare`: the write's buffer, given back for the next write (unless larger than `spareBytes`) */
  | { op: "written"; batch: number; spare?: ArrayBuffer }
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
