/**
 * outbox.worker: the outbox's writer, on a thread of its own. Each write (a group commit: every message
 * appended while the previous write ran, the acknowledged ones deleted, the uplinks' status) is one
 * transaction with synchronous=FULL: one fsync of the write-ahead log, on this thread, so the event loop
 * that serves devices, logins and the page never waits on the disk. The appliance answers publishers
 * only once the write that holds their message is reported back.
 */
import type { Database } from "bun:sqlite";
import {
  checkColumns,
  decodeRows,
  notAnOutbox,
  openOutboxDb,
  outboxSchema,
  rangesOffset,
  sizeOfRow,
  spareBytes,
  tidySchema,
  type WorkerReply,
  type WorkerRequest,
  uplinkIndex,
  unreadable,
} from "./outbox-protocol.ts";

declare const self: Worker;

let db: Database | undefined;
/** the write's statements, prepared once per open (a write is a few milliseconds apart from the next) */
let statements: ReturnType<typeof prepare> | undefined;
/** the largest id the outbox gives (2^52: a hundred thousand messages a second for 1 400 years) */
const maxOutboxId = 2 ** 52;

/**
 * the uplinks whose rows may be in the file (they had rows at the open, or some were written since), and
 * whether `uplinkIndex` is there: it is made once a second uplink's rows come (in the write that brings them,
 * before the event loop can read them), and left out at an open that finds one uplink's rows or none
 */
const withRows = new Set<number>();
let indexed = false;

function prepare(d: Database) {
  return {
    insert: d.prepare(
      "INSERT INTO messages (id, uplink, at, topic, payload, retain, size, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    // the newest retained message per topic is never dropped by the bounds; an older one may be
    supersede: d.prepare(
      "UPDATE messages SET superseded = 1 WHERE uplink = ? AND topic = ? AND retain = 1 AND superseded = 0",
    ),
    remove: d.prepare("DELETE FROM messages WHERE id BETWEEN ?1 AND ?2"),
    purge: d.prepare("DELETE FROM messages WHERE uplink = ?"),
    status: d.prepare("INSERT OR REPLACE INTO status (uplink, json, at) VALUES (?, ?, ?)"),
    forget: d.prepare("DELETE FROM status WHERE uplink = ?"),
    own: d.prepare("INSERT OR REPLACE INTO owners (uplink, created_at) VALUES (?, ?)"),
    disown: d.prepare("DELETE FROM owners WHERE uplink = ?"),
  };
}

function open(path: string, cacheKiB: number, walLimit: number): WorkerReply {
  const d = openOutboxDb(path, "write"); // made 0600 by Outbox.open before (O_EXCL), never through a link
  d.run("PRAGMA busy_timeout = 5000");
  d.run("PRAGMA journal_mode = WAL");
  // FULL: a commit is on disk (the WAL fsynced) before it is reported; that is what a PUBACK promises.
  d.run("PRAGMA synchronous = FULL");
  d.run(`PRAGMA cache_size = -${Math.max(256, Math.floor(cacheKiB))}`);
  d.run("PRAGMA temp_store = MEMORY");
  // the log is cut back to `walLimit` each time a checkpoint lets it start over, so that what the outbox's
  // room for new rows counts as taken (outbox.ts `roomFor`) is near what is not in the file yet (found from
  // outside: a log left at its largest after an outage refused every message for good). Not to nothing: a
  // log that grows again at every start over made each commit's fsync ~50 % dearer (the file's size changes)
  d.run(`PRAGMA journal_size_limit = ${Math.max(0, Math.floor(walLimit))}`);
  // and it is checkpointed at that size: on a small disk SQLite's ~1000 pages (4 MiB) were more than the
  // reserve left, the log was never checkpointed, and every message was refused for good (found from outside)
  const pageSize = (d.query("PRAGMA page_size").get() as { page_size: number }).page_size;
  d.run(`PRAGMA wal_autocheckpoint = ${Math.max(64, Math.floor(walLimit / pageSize))}`);
  let removed: string[];
  let ids: { lo: number | null; hi: number | null };
  try {
    // before the schema's indexes are made on columns that may not be there (tables it makes are right)
    checkColumns(d);
    removed = tidySchema(d);
    d.exec(outboxSchema);
    // ids are 1, 2, 3, ... from the largest in the file, counted in JavaScript (exact up to 2^53): a row planted
    // with 0 or less was never sent, one near 2^63 failed every write after it (found from outside)
    ids = d.query("SELECT MIN(id) AS lo, MAX(id) AS hi FROM messages").get() as typeof ids;
    if (ids.lo !== null && (ids.lo < 1 || (ids.hi ?? 0) > maxOutboxId))
      throw Object.assign(new Error(`not an outbox: it holds ids ${ids.lo} to ${ids.hi}`), { code: notAnOutbox });
  } catch (err) {
    d.close();
    // a file that is SQLite but not an outbox (found from outside: tables of another shape stopped every
    // uplink for good, "no such column"): as unreadable, the appliance sets it aside. Only SQLite's plain
    // error says that; a full disk, a lock or an I/O error goes on as it is (nothing is set aside for it).
    if ((err as { code?: unknown }).code !== "SQLITE_ERROR" || unreadable(err)) throw err;
    throw Object.assign(new Error(`not an outbox: ${(err as Error).message}`), { code: notAnOutbox });
  }
  db = d;
  statements = prepare(d);
  const stats = d
    .query(
      // the sizes from the rows' headers: `size` lies after the payload (a backlog of large messages was read whole)
      `SELECT uplink, COUNT(*) AS count, COALESCE(SUM(${sizeOfRow}), 0) AS bytes, MIN(id) AS firstId FROM messages GROUP BY uplink`,
    )
    .all() as { uplink: number; count: number; bytes: number; firstId: number }[];
  withRows.clear();
  for (const s of stats) withRows.add(s.uplink);
  indexed = withRows.size >= 2;
  d.run(indexed ? uplinkIndex : "DROP INDEX IF EXISTS messages_uplink");
  const maxId = ids.hi ?? 0; // the next id is counted from it
  const status = d.query("SELECT uplink, json FROM status").all() as { uplink: number; json: string }[];
  const owners = d.query("SELECT uplink, created_at AS createdAt FROM owners").all() as {
    uplink: number;
    createdAt: number;
  }[];
  return { op: "opened", maxId, stats, status, owners, removed };
}

function write(req: Extract<WorkerRequest, { op: "write" }>): void {
  const d = db!;
  const { insert, supersede, remove, purge, status, forget, own, disown } = statements!;
  const rows = decodeRows(req.buffer, req.rowsLength);
  const deletes = new Float64Array(req.buffer, rangesOffset(req.rowsLength), req.ranges * 2);
  let index = false;
  d.transaction(() => {
    if (!indexed) {
      for (const r of rows) withRows.add(r[1]);
      // the reads of an uplink that has few rows would otherwise walk every other uplink's rows
      if (withRows.size >= 2) {
        d.run(uplinkIndex);
        index = true;
      }
    }
    for (const u of req.purge) {
      // without the index, a purge walks every row: not for an uplink that has none (another's backlog)
      if (indexed || withRows.has(u)) purge.run(u);
      forget.run(u);
      disown.run(u);
    }
    for (const [u, createdAt] of req.owners) own.run(u, createdAt);
    for (let i = 0; i < deletes.length; i += 2) remove.run(deletes[i]!, deletes[i + 1]!);
    for (const [id, uplink, at, topic, payload, retain, size, props] of rows) {
      if (retain) supersede.run(uplink, topic);
      insert.run(id, uplink, at, topic, payload, retain, size, props);
    }
    const now = Date.now();
    for (const [u, json] of req.status) status.run(u, json, now);
  })();
  if (index) indexed = true; // committed (a write that failed makes it again with the next)
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const req = event.data;
  try {
    switch (req.op) {
      case "open":
        postMessage(open(req.path, req.cacheKiB, req.walLimit));
        break;
      case "write":
        write(req);
        // the buffer goes back (SQLite copied what it keeps): the next write fills it again, so a busy
        // outbox allocates no buffer per write and leaves none for this thread's collector
        if (req.buffer.byteLength <= spareBytes)
          postMessage({ op: "written", batch: req.batch, spare: req.buffer } satisfies WorkerReply, [req.buffer]);
        else postMessage({ op: "written", batch: req.batch } satisfies WorkerReply);
        break;
      case "checkpoint":
        // TRUNCATE: the log is copied and cut to nothing, waiting at most 250 ms for the event loop's reads
        // (each a single query). SQLite's own checkpoints never wait for a reader, so while the uplinks read
        // a backlog on and on the log did not start over and grew until the disk was full (found from
        // outside: eight uplinks draining took a 16 MiB disk to 0 bytes free)
        if (db) {
          db.run("PRAGMA busy_timeout = 250");
          try {
            db.run("PRAGMA wal_checkpoint(TRUNCATE)");
          } finally {
            db.run("PRAGMA busy_timeout = 5000");
          }
        }
        break;
      case "close":
        try {
          db?.run("PRAGMA wal_checkpoint(TRUNCATE)");
        } catch {
          // a busy reader: the next open checkpoints
        }
        for (const st of Object.values(statements ?? {})) st.finalize();
        statements = undefined;
        db?.close();
        db = undefined;
        postMessage({ op: "closed" } satisfies WorkerReply);
        break;
    }
  } catch (err) {
    const e = err as { message?: string; code?: string };
    postMessage({
      op: "failed",
      batch: req.op === "write" ? req.batch : -1,
      error: e.message ?? String(err),
      code: e.code ?? "",
    } satisfies WorkerReply);
  }
};
