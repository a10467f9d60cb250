import type { Database } from "bun:sqlite";
import { closeSync, lstatSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { BusNotStoredError } from "../../core/bus.ts";
import { isDiskFull } from "../../lib/errors.ts";
import { createPrivateFile, diskSpace, narrowToPrivate } from "../../lib/files.ts";
import { workerUrl } from "../../lib/workers.ts";
import {
  encodeWrite,
  type OutboxRow,
  openOutboxDb,
  sizeOfRow,
  type WorkerReply,
  type WorkerRequest,
  unreadable,
} from "./outbox-protocol.ts";

/** outboxFileName: the uplinks' store-and-forward queue, a SQLite file of its own beside the admin database. */
export const outboxFileName = "uplink-outbox.db";

/** QueuedMessage: a queued message as the forwarder reads it (its payload is read when it is sent). */
export interface QueuedMessage {
  id: number;
  at: number;
  topic: string;
  retain: boolean;
  props: string | null;
  size: number;
  /** the payload when it is small (fetch reads it with the row), else read when sent */
  payload?: Buffer;
}

/** a payload up to this size is read with its row: the fetch's read-ahead (at most 256 rows) stays a few MiB */
const inlinePayloadBytes = 16 * 1024;

type FetchedRow = Omit<QueuedMessage, "retain" | "payload"> & { retain: number; payload: Uint8Array | null };

/** queued: a fetched row as the forwarder takes it */
const queued = (r: FetchedRow): QueuedMessage => ({
  id: r.id,
  at: r.at,
  topic: r.topic,
  retain: r.retain === 1,
  props: r.props,
  size: r.size,
  payload: r.payload ? Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) : undefined,
});

/** OutboxOpened: what the file held when it was opened (after a restart: what still waits). */
export interface OutboxOpened {
  outbox: Outbox;
  stats: Map<number, { count: number; bytes: number; firstId: number }>;
  status: Map<number, string>;
  owners: Map<number, number>;
  /** what was in the file that the outbox did not make (an index of another definition, a trigger), removed */
  removed: string[];
}

/**
 * setAside: an unreadable outbox and its -wal, -shm and -journal renamed to `<name>.unreadable-<time>` in
 * the data dir (kept for a look, never deleted here), so a new, empty outbox can be made in its place.
 * Returns the new name of the outbox file.
 */
export function setAside(dataDir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, "-");
  const aside = `${outboxFileName}.unreadable-${stamp}`;
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    try {
      renameSync(join(dataDir, `${outboxFileName}${suffix}`), join(dataDir, `${aside}${suffix}`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return aside;
}

/** outboxFiles: the outbox and what SQLite keeps beside it */
export const outboxFiles = ["", "-wal", "-shm", "-journal"].map((suffix) => `${outboxFileName}${suffix}`);

/**
 * checkOutboxFiles: the outbox and its -wal, -shm and -journal are regular files (or absent), never
 * followed through a link, and one left readable by others is narrowed to 0600 through its descriptor
 * (the data dir's rule, see src/db/data-dir.ts). Throws TargetError naming a link or a non-regular file.
 */
export function checkOutboxFiles(dataDir: string): void {
  for (const name of outboxFiles) narrowToPrivate(join(dataDir, name));
}

interface Batch {
  batch: number;
  rows: OutboxRow[];
  deletes: number[];
  purge: number[];
  owners: [number, number][];
  status: Map<number, string>;
  /** told when the batch is settled: with why it failed, if it did */
  waiters: ((failure?: BusNotStoredError) => void)[];
  promise?: Promise<void>;
  /** the rows' topics and payloads (bytes), as appended */
  bytes: number;
}

/** Room: the outbox's last look at its disk (see `Outbox.lookAtDisk`) */
interface Room {
  /** when (performance.now()) */
  at: number;
  disk: { free: number; size: number } | undefined;
  /** room for rows then: the disk's free space less the log, plus the file's free pages */
  free: number;
  /** estimated bytes written since */
  since: number;
  /** what the outbox leaves free (`outboxReserve`) */
  reserve: number;
}

const emptyBatch = (batch: number): Batch => ({
  batch,
  rows: [],
  deletes: [],
  purge: [],
  owners: [],
  status: new Map(),
  waiters: [],
  bytes: 0,
});

/**
 * maxBehind: what may wait in memory for the writer (appended, not yet on disk), at most. Past it a message
 * is not queued: one nobody waits for (MQTT QoS 0) is dropped and counted, a publisher that waits is told no
 * and sends it again. Found from outside: a device publishing QoS 0 as fast as TCP takes it (~52 000 a
 * second of 1 KB against ~35 000 written) took the appliance from 159 MiB to 2.2 GiB in 22 s, growing for as
 * long as the flood lasted. 50 000 messages is well over a second of what the writer takes.
 */
export const maxBehind = { rows: 50_000, bytes: 32 * 1024 * 1024 };

/**
 * outboxReserve: the free space the outbox leaves on the data dir's disk for everything else: 5 % of the
 * disk, at least 1 MiB and at most 32 MiB (twice /readyz's floor). Found from outside: an outage filled an
 * 8 MiB disk to its last byte with the backlog, and the next start failed ("disk I/O error" opening the
 * broker's store): no broker, no API, no page, and the backlog could not drain until someone freed space.
 */
export function outboxReserve(diskSize: number): number {
  return Math.min(32 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(diskSize * 0.05)));
}

/** the log kept between checkpoints on a large disk (SQLite's own checkpoint comes at ~1000 pages) */
const walCheckpointBytes = 4 * 1024 * 1024;

/** outboxRefusal: what a publisher hears when the outbox cannot hold its message (`full`: for want of room) */
export const outboxRefusal = (reason: string, full = false) => new BusNotStoredError(reason, full, "the uplink outbox");

/** identityOf: the device and inode of the file at `path` (a link is not followed), if there is one */
function identityOf(path: string): { dev: number; ino: number } | undefined {
  try {
    const s = lstatSync(path);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return undefined;
  }
}

/** walBytes: the size of the outbox's write-ahead log (0 if it has none) */
function walBytes(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

/**
 * growth: what a write of `bytes` of rows may take on the disk: its log, then its pages in the file, and
 * the pages every commit writes whatever it holds (found from outside: small messages to eight uplinks
 * took the disk past the reserve, the estimate counted their bytes only)
 */
const growth = (bytes: number, rows: number) => (bytes + rows * 256) * 2 + 64 * 1024;

/**
 * Outbox: the on-disk queue of every uplink, with group commit. `append` takes a message at once (in
 * publish order, with the next id); `durable()` resolves when the write holding it is on disk. One write
 * runs at a time on the writer's thread; everything appended meanwhile goes into the next one, so a burst
 * costs one fsync per few milliseconds however many devices publish, and a quiet appliance writes at once.
 * Deletes (acknowledged upstream, dropped by the bounds) ride along with the next write. The event loop
 * reads the queue through a read-only connection of its own (WAL: reads never wait for the writer).
 */
export class Outbox {
  #worker: Worker;
  /** writes that failed so far (close stops trying after one) */
  #failures = 0;
  #reader: Database;
  #nextId: number;
  #pending: Batch;
  #writing: Batch | undefined;
  #scheduled = false;
  readonly #maxBehind: { rows: number; bytes: number };
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;
  #broken: string | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  #lastWritten = 0;
  /** the last write's buffer, given back by the writer for the next one */
  #spare: ArrayBuffer | undefined;
  /** the file the writer opened (device and inode): one no longer at `path` is not written to */
  #identity: { dev: number; ino: number } | undefined;
  /** the log kept between checkpoints (see `open`), and when the writer was last asked for one */
  #walLimit = walCheckpointBytes;
  #checkpointAt = Number.NEGATIVE_INFINITY;
  #logLookedAt = Number.NEGATIVE_INFINITY;
  /** the last write left deletes for the next (see `deletesPerWrite`) */
  #deletesLeft = false;
  /**
   * the data dir's disk as last asked (`disk`: its free space and size), and the room for rows then (`free`:
   * less the log, plus the file's free pages), less what was written since
   */
  #room: Room = { at: Number.NEGATIVE_INFINITY, disk: undefined, free: Number.POSITIVE_INFINITY, since: 0, reserve: 0 };
  #queries: {
    sizes: ReturnType<Database["query"]>;
    fetch: ReturnType<Database["query"]>;
    payload: ReturnType<Database["query"]>;
    droppable: ReturnType<Database["query"]>;
    anyOldest: ReturnType<Database["query"]>;
    oldestAt: ReturnType<Database["query"]>;
  };
  /** rows now on disk (after a write) */
  onWritten: (rows: OutboxRow[]) => void = () => {};
  /** a write failed (a full disk): its rows are not queued; the publishers were answered anyway */
  onFailed: (rows: OutboxRow[], error: string) => void = () => {};

  private constructor(
    readonly path: string,
    worker: Worker,
    reader: Database,
    maxId: number,
    behind: { rows: number; bytes: number },
  ) {
    this.#maxBehind = behind;
    this.#worker = worker;
    this.#reader = reader;
    this.#nextId = maxId + 1;
    this.#pending = emptyBatch(1);
    this.#identity = identityOf(path);
    const q = (sql: string) => reader.query(sql);
    this.#queries = {
      // A row's columns after its payload (retain, size, props) are read by walking the payload's overflow
      // pages: 256 rows of 1 MiB were 256 MiB read for one fetch (found from outside: a backlog of large
      // messages held the event loop for good). What a row's size is, is known from its record's header:
      // length() of the payload reads no payload (SQLite's length argument), nor does a topic's.
      sizes: q(`SELECT ${sizeOfRow} AS size FROM messages WHERE uplink = ?1 AND id > ?2 ORDER BY id LIMIT ?3`),
      // small payloads come with the row (one query per batch); a large one is read when it is sent
      fetch: q(
        `SELECT id, at, topic, retain, props, size, CASE WHEN size <= ${inlinePayloadBytes} THEN payload END AS payload
         FROM messages WHERE uplink = ?1 AND id > ?2 ORDER BY id LIMIT ?3`,
      ),
      payload: q("SELECT payload FROM messages WHERE id = ?1"),
      // anything but the newest retained message of a topic: those are in the partial index (retain and
      // superseded lie after the payload: not read for every row)
      droppable: q(
        `SELECT id, ${sizeOfRow} AS size FROM messages WHERE uplink = ?1 AND id > ?2
         AND id NOT IN (SELECT id FROM messages WHERE uplink = ?1 AND retain = 1 AND superseded = 0)
         ORDER BY id LIMIT ?3`,
      ),
      anyOldest: q(`SELECT id, ${sizeOfRow} AS size FROM messages WHERE uplink = ?1 AND id > ?2 ORDER BY id LIMIT ?3`),
      oldestAt: q("SELECT at FROM messages WHERE uplink = ?1 AND id >= ?2 ORDER BY id LIMIT 1"),
    };
    worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#reply(e.data);
    worker.onerror = (e) => this.#fail(`outbox writer stopped: ${e.message}`);
  }

  /** open: the data dir's outbox (made 0600 on first use), its writer thread, and what it still holds. */
  static async open(
    dataDir: string,
    opts: { cacheKiB?: number; maxBehind?: { rows: number; bytes: number } } = {},
  ): Promise<OutboxOpened> {
    const path = join(dataDir, outboxFileName);
    // Messages may carry anything a device sent: owner only, from the first byte (as gatehouse.db); made
    // with O_EXCL (a planted link is not followed), and nothing of it is opened through a link.
    try {
      closeSync(createPrivateFile(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    checkOutboxFiles(dataDir);
    // the log kept between checkpoints: less on a small disk
    const disk = diskSpace(dataDir);
    const walLimit = Math.min(walCheckpointBytes, disk ? outboxReserve(disk.size) : walCheckpointBytes);
    const worker = new Worker(workerUrl("connectors/uplink/outbox.worker.ts"));
    const opened = await new Promise<Extract<WorkerReply, { op: "opened" }>>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<WorkerReply>) =>
        e.data.op === "opened"
          ? resolve(e.data)
          : reject(
              Object.assign(new Error(e.data.op === "failed" ? e.data.error : e.data.op), {
                code: e.data.op === "failed" ? e.data.code : "",
              }),
            );
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage({ op: "open", path, cacheKiB: opts.cacheKiB ?? 2048, walLimit } satisfies WorkerRequest);
    }).catch((err) => {
      worker.terminate();
      throw err;
    });
    const reader = openOutboxDb(path, "read");
    reader.run("PRAGMA cache_size = -2048");
    const outbox = new Outbox(path, worker, reader, opened.maxId, opts.maxBehind ?? maxBehind);
    outbox.#walLimit = walLimit;
    return {
      outbox,
      stats: new Map(opened.stats.map((s) => [s.uplink, { count: s.count, bytes: s.bytes, firstId: s.firstId }])),
      status: new Map(opened.status.map((s) => [s.uplink, s.json])),
      owners: new Map(opened.owners.map((o) => [o.uplink, o.createdAt])),
      removed: opened.removed,
    };
  }

  /** pendingBatch: the number of the write that what is appended or removed now goes in */
  get pendingBatch(): number {
    return this.#pending.batch;
  }

  /** lastWritten: the number of the last write that reached the disk */
  get lastWritten(): number {
    return this.#lastWritten;
  }

  /** broken: why the outbox can no longer write, if it cannot (its writer died) */
  get broken(): string | undefined {
    return this.#broken;
  }

  /** append: queues a message for an uplink now (in call order); on disk with the next write. */
  append(uplink: number, topic: string, payload: Uint8Array, retain: boolean, props: string | null): OutboxRow {
    const row: OutboxRow = [
      this.#nextId++,
      uplink,
      Date.now(),
      topic,
      payload,
      retain ? 1 : 0,
      Buffer.byteLength(topic) + payload.length,
      props,
    ];
    this.#pending.rows.push(row);
    this.#pending.bytes += row[6];
    this.#schedule();
    return row;
  }

  /**
   * behind: why a message cannot be queued now because too much waits in memory for the writer (see
   * `maxBehind`), if so; the rows of the write under way and of the next one count.
   */
  behind(): string | undefined {
    const writing = this.#writing;
    const rows = this.#pending.rows.length + (writing?.rows.length ?? 0);
    const bytes = this.#pending.bytes + (writing?.bytes ?? 0);
    if (rows < this.#maxBehind.rows && bytes < this.#maxBehind.bytes) return undefined;
    const most = this.#maxBehind;
    return `the outbox's writer is behind (${most.rows} messages or ${most.bytes} bytes wait to be written): messages are not queued until it catches up`;
  }

  /**
   * durable: resolves when everything appended so far is on disk; rejects with a BusNotStoredError if its
   * write failed (a full disk: `full`), so that its publishers are told no (see onFailed). Ask only for a
   * publisher that waits for the answer: a rejection nobody waits for is an unhandled one.
   */
  durable(): Promise<void> {
    const b = this.#pending.rows.length ? this.#pending : this.#writing;
    if (!b) return Promise.resolve();
    b.promise ??= new Promise<void>((resolve, reject) =>
      b.waiters.push((failure) => (failure ? reject(failure) : resolve())),
    );
    return b.promise;
  }

  /** remove: rows acknowledged upstream or dropped (deleted with the next write). */
  remove(ids: readonly number[]): void {
    for (const id of ids) this.removeOne(id);
  }

  /** removeOne: `remove` of one row (one per PUBACK: no array for it). */
  removeOne(id: number): void {
    this.#pending.deletes.push(id);
    this.#scheduleLazy();
  }

  /** own: rows of `uplink` belong to the uplink created at `createdAt`. */
  own(uplink: number, createdAt: number): void {
    this.#pending.owners.push([uplink, createdAt]);
    this.#scheduleLazy();
  }

  /** purge: an uplink removed: all of its rows go. */
  purge(uplink: number): void {
    this.#pending.rows = this.#pending.rows.filter((r) => r[1] !== uplink);
    this.#pending.purge.push(uplink);
    this.#scheduleLazy();
  }

  /** setStatus: what `gatehouse uplinks status` reads of an uplink while the appliance runs. */
  setStatus(uplink: number, json: string): void {
    this.#pending.status.set(uplink, json);
    this.#scheduleLazy();
  }

  /**
   * fetch: the next queued messages of an uplink after `afterId` (on disk: appended and written), at most
   * `limit` of them and `maxBytes` together (at least one however large), with their payloads up to 16 KiB
   * each (a larger one is read by `payload` when it is sent). `more`: there may be more on disk after them.
   */
  fetch(
    uplink: number,
    afterId: number,
    limit: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ): { rows: QueuedMessage[]; more: boolean } {
    return this.#read(
      () => {
        // as many as fit in `maxBytes` (at least one), known before any of them is read
        const sizes = this.#queries.sizes.all(uplink, afterId, limit) as { size: number }[];
        let take = 0;
        for (let bytes = 0; take < sizes.length; take++) {
          bytes += sizes[take]!.size;
          if (take > 0 && bytes > maxBytes) break;
        }
        const more = sizes.length === limit || take < sizes.length;
        if (take === 0) return { rows: [], more };
        return { rows: (this.#queries.fetch.all(uplink, afterId, take) as FetchedRow[]).map(queued), more };
      },
      { rows: [], more: false },
    );
  }

  /** payload: one message's payload, read when it is sent (undefined: no longer queued) */
  payload(id: number): Buffer | undefined {
    const r = this.#read(() => this.#queries.payload.get(id) as { payload: Uint8Array } | null, null);
    return r ? Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) : undefined;
  }

  /**
   * oldest: the oldest queued messages of an uplink after `afterId` that the bounds may drop: anything
   * but the newest retained message of its topic; `anyKind` also those (when nothing else is left).
   */
  oldest(uplink: number, afterId: number, limit: number, anyKind = false): { id: number; size: number }[] {
    const query = anyKind ? this.#queries.anyOldest : this.#queries.droppable;
    return this.#read(() => query.all(uplink, afterId, limit) as { id: number; size: number }[], []);
  }

  /** oldestAt: when the first message of an uplink from `fromId` on was queued, if any is on disk. */
  oldestAt(uplink: number, fromId: number): number | undefined {
    return this.#read(() => (this.#queries.oldestAt.get(uplink, fromId) as { at: number } | null)?.at, undefined);
  }

  /** a read found the file unreadable while the appliance runs (see `#read`): the manager sets it aside */
  onUnreadable: (error: Error) => void = () => {};

  /**
   * read: a query of the reader's. One that finds the file damaged while the appliance runs (found from
   * outside: the status's query threw and stopped the whole appliance) breaks the outbox instead: each
   * uplink says why, what they would take is answered and counted as dropped, nothing more is read or
   * written, and `onUnreadable` is told (once).
   */
  #read<T>(query: () => T, none: T): T {
    if (this.#broken) return none;
    try {
      return query();
    } catch (err) {
      this.#fail(
        `the outbox cannot be read (${(err as Error).message}): set aside, nothing is queued until the appliance restarts and makes a new one`,
      );
      this.onUnreadable(err as Error);
      return none;
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    // after the I/O callbacks of this turn of the loop: every publish parsed from one read goes in one write
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  /** deletes and status need no fsync of their own: they go with the next write, or after 20 ms */
  #scheduleLazy(): void {
    if (this.#lazyTimer || this.#writing || this.#scheduled) return;
    this.#lazyTimer = setTimeout(() => {
      this.#lazyTimer = undefined;
      this.#flush();
    }, 20);
  }

  /** freePages: the bytes of the file's free pages, as the reader sees it (0 if it cannot say) */
  #freePages(): number {
    try {
      const q = this.#reader.query("SELECT * FROM pragma_freelist_count, pragma_page_size").get() as {
        freelist_count: number;
        page_size: number;
      } | null;
      return q ? q.freelist_count * q.page_size : 0;
    } catch {
      return 0;
    }
  }

  /**
   * tendLog: the writer is asked for a checkpoint that cuts the log (at most once a second) when the log has
   * outgrown twice its size (SQLite's own checkpoints did not let it start over: readers all along), or,
   * `short` of room, when it holds anything worth copying. The log's size is looked at every 100 ms at most.
   */
  #tendLog(short: boolean): void {
    if (this.#broken || this.#closed) return;
    const now = performance.now();
    if (now - this.#checkpointAt < 1000 || (!short && now - this.#logLookedAt < 100)) return;
    this.#logLookedAt = now;
    const wal = walBytes(this.path);
    if (wal <= (short ? this.#walLimit / 4 : this.#walLimit * 2)) return;
    this.#checkpointAt = now;
    this.#worker.postMessage({ op: "checkpoint" } satisfies WorkerRequest);
  }

  /** stillHere: is the file at `path` the one the writer opened? (a stat per write that brings rows) */
  #stillHere(): boolean {
    const now = identityOf(this.path);
    return !this.#identity || (now !== undefined && now.dev === this.#identity.dev && now.ino === this.#identity.ino);
  }

  /**
   * roomFor: does the disk have room for `rows` and still the reserve (see `outboxReserve`)? Asks the file
   * system every 100 ms, and sooner once a quarter of the reserve may have been written since.
   */
  #roomFor(rows: OutboxRow[]): boolean {
    let bytes = 0;
    for (const r of rows) bytes += r[6];
    const need = growth(bytes, rows.length);
    const room = this.#room;
    // what a write takes is only estimated (its log grows while a reader holds it): asked again well before
    const soon = room.since + need > room.reserve / 4 || room.free - room.since - need < room.reserve;
    this.#lookAtDisk(soon);
    if (room.free - room.since - need < room.reserve) return false;
    room.since += need;
    return true;
  }

  /**
   * deletesPerWrite: how many rows one write may delete: as many pages as a quarter of the disk's free space
   * (less half the reserve) holds, 64 to 65 536, looked at every 100 ms at most. Rows of several uplinks lie
   * side by side, so deleting one uplink's sent backlog touches about a page per row, and the log holds every
   * page a write touches (found from outside: eight uplinks draining wrote a 4.4 MB log in one write and took
   * a 16 MiB disk to 0 bytes free). What is left goes with the next write, at once.
   */
  #deletesPerWrite(): number {
    const { disk, reserve } = this.#lookAtDisk(false);
    return disk ? Math.max(64, Math.min(65_536, Math.floor((disk.free - reserve / 2) / 4 / 4096))) : 65_536;
  }

  /**
   * lookAtDisk: the data dir's disk asked again if the last look is 100 ms old (or `now`), and the room for
   * rows worked out from it. One look serves the room for rows and the deletes a write may take.
   */
  #lookAtDisk(now: boolean): Room {
    const room = this.#room;
    const at = performance.now();
    if (!now && at - room.at <= 100) return room;
    const disk = diskSpace(dirname(this.path));
    room.at = at;
    room.since = 0;
    room.disk = disk;
    // The write-ahead log's pages go into the file at the next checkpoint, a step of up to its size at
    // once (found in testing: 2.5 MB free went to 0 between two looks): counted as taken already (the
    // writer cuts the log back when it starts over, so this is what is not in the file yet). Pages the
    // file has free (a backlog sent) take new rows first: counted as room (found from outside: after an
    // outage drained, every message was refused with 4-5 MB of the file free).
    room.free = disk ? disk.free + this.#freePages() - walBytes(this.path) : Number.POSITIVE_INFINITY;
    room.reserve = disk ? outboxReserve(disk.size) : 0;
    return room;
  }

  #flush(): void {
    if (this.#writing || this.#closed) return;
    const b = this.#pending;
    if (b.rows.length && !this.#broken && !this.#stillHere()) {
      // found from outside: the file moved away (or deleted, or replaced) while the appliance ran took every
      // message acknowledged after it into a file nobody would read again
      this.#fail(
        "the outbox file is no longer at its path (moved, deleted or replaced while the appliance runs): nothing is queued until the appliance restarts and makes a new one",
      );
      return;
    }
    this.#tendLog(false);
    if (b.rows.length && !this.#broken && !this.#roomFor(b.rows)) {
      // short of room with a log to copy: the writer checkpoints now, so that the log starts over cut back
      // instead of waiting for a size that refused writes never reach
      this.#tendLog(true);
      // the disk keeps its reserve: these rows are refused to their publishers (as on a full disk); the
      // deletes and status that came with them still go (they free rows)
      const room = this.#room;
      this.#refuse(
        b,
        `outbox write refused: the disk is nearly full (${room.free} bytes free, ${room.reserve} kept for the rest of the appliance); new messages are not queued until there is room`,
      );
    }
    if (!b.rows.length && !b.deletes.length && !b.purge.length && !b.owners.length && !b.status.size) return;
    if (this.#lazyTimer) clearTimeout(this.#lazyTimer);
    this.#lazyTimer = undefined;
    this.#pending = emptyBatch(b.batch + 1);
    const most = b.deletes.length > 64 ? this.#deletesPerWrite() : b.deletes.length;
    this.#deletesLeft = b.deletes.length > most;
    if (this.#deletesLeft) this.#pending.deletes = b.deletes.splice(most);
    if (this.#broken) {
      this.#settle(b, this.#broken);
      return;
    }
    this.#writing = b;
    try {
      const { buffer, rowsLength, ranges } = encodeWrite(b.rows, b.deletes, this.#spare);
      this.#spare = undefined;
      this.#worker.postMessage(
        {
          op: "write",
          batch: b.batch,
          buffer,
          rowsLength,
          ranges,
          purge: b.purge,
          owners: b.owners,
          status: [...b.status],
        } satisfies WorkerRequest,
        [buffer],
      );
    } catch (err) {
      this.#fail(`outbox writer unreachable: ${(err as Error).message}`);
    }
  }

  /** refuse: the batch's rows are not written (`error`, for want of room): said, and their publishers told no */
  #refuse(b: Batch, error: string): void {
    const rows = b.rows;
    const waiters = b.waiters;
    b.rows = [];
    b.waiters = [];
    b.promise = undefined;
    this.onFailed(rows, error);
    const failure = outboxRefusal(error, true);
    for (const w of waiters) w(failure);
  }

  /**
   * settle: a batch is done (written, or failed with `error`; `full`: for want of room): its publishers are
   * answered either way, yes or no.
   */
  #settle(b: Batch, error?: string, full = false): void {
    if (error === undefined) {
      this.#lastWritten = b.batch;
      this.onWritten(b.rows);
    } else {
      this.#failures++;
      if (b.rows.length) this.onFailed(b.rows, error);
      // deletes and status are idempotent: they are tried again with the next write
      this.#pending.deletes.push(...b.deletes);
      this.#pending.purge.push(...b.purge);
      this.#pending.owners.push(...b.owners);
      for (const [k, v] of b.status) if (!this.#pending.status.has(k)) this.#pending.status.set(k, v);
    }
    if (!b.waiters.length) return;
    const failure = error === undefined ? undefined : outboxRefusal(error, full);
    for (const w of b.waiters) w(failure);
  }

  #reply(r: WorkerReply): void {
    if (r.op === "closed") return;
    const b = this.#writing;
    if (!b || (r.op !== "written" && r.op !== "failed") || r.batch !== b.batch) return;
    this.#writing = undefined;
    if (r.op === "written") this.#spare = r.spare;
    if (r.op === "failed")
      this.#settle(b, describeFailure(r.error, r.code), isDiskFull({ code: r.code, message: r.error }));
    else this.#settle(b);
    if (r.op === "failed" && unreadable({ code: r.code }) && !this.#broken) {
      // damaged where a write goes (found from outside: an index over another table's pages refused every
      // write, "database disk image is malformed", and the file was never set aside): as a read that finds it
      this.#fail(
        `the outbox cannot be written (${r.error}): set aside, nothing is queued until the appliance restarts and makes a new one`,
      );
      this.onUnreadable(Object.assign(new Error(r.error), { code: r.code }));
      return;
    }
    // rows wait for a write; so do deletes a write could not take all of (see `deletesPerWrite`)
    if (this.#pending.rows.length || this.#deletesLeft) this.#flush();
    else this.#scheduleLazy();
  }

  #fail(why: string): void {
    if (this.#broken) return;
    this.#broken = why;
    const b = this.#writing;
    this.#writing = undefined;
    if (b) this.#settle(b, why);
    this.#flush();
  }

  /** close: the last write done, the file checkpointed and closed, the writer ended. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // what is pending is written; a write that fails now (a full disk) is not tried again: the deletes and
      // status it carried are put back for a next write that would fail the same way, for ever. Its
      // deletes are lost: those messages go upstream once more after the restart (at least once).
      let failed = false;
      for (;;) {
        if (this.#lazyTimer) clearTimeout(this.#lazyTimer);
        this.#lazyTimer = undefined;
        if (!this.#writing && !failed) this.#flush();
        const w = this.#writing;
        if (!w) break;
        const before = this.#failures;
        await new Promise<void>((resolve) => w.waiters.push(() => resolve()));
        failed ||= this.#failures !== before;
      }
      this.#closed = true;
      if (this.#lazyTimer) clearTimeout(this.#lazyTimer);
      this.#reader.close();
      if (!this.#broken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          this.#worker.onmessage = (e: MessageEvent<WorkerReply>) => {
            if (e.data.op === "closed" || e.data.op === "failed") {
              clearTimeout(timer);
              resolve();
            }
          };
          this.#worker.postMessage({ op: "close" } satisfies WorkerRequest);
        });
      }
      this.#worker.terminate();
    })();
    return this.#closing;
  }
}

/** describeFailure: what the page and the log say when a write fails (a full disk above all). */
function describeFailure(error: string, code: string): string {
  if (isDiskFull({ code, message: error }))
    return "outbox write failed: the disk is full; new messages are not queued until there is room";
  return `outbox write failed: ${error}`;
}
