import { statSync } from "node:fs";
import type { Logger } from "../../lib/logger.ts";
import { workerUrl } from "../../lib/workers.ts";
import { encodeOps, op, type Op, type WorkerReply, type WorkerRequest } from "./broker-db.ts";

/**
 * quotaExceeded: the code of a BrokerStoreError for a write refused because its integration holds its share of the
 * store (`BrokerStore.shareBytes`): answered as a full disk is (MQTT 5 PUBACK 0x97 quota exceeded, HTTP 503).
 */
export const quotaExceeded = "QUOTA_EXCEEDED";

/**
 * BrokerStoreError: broker.db could not take a write (a full disk, an I/O error, its writer gone), or the store
 * refused it (`quotaExceeded`).
 */
export class BrokerStoreError extends Error {
  override name = "BrokerStoreError";
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // a batch nobody waits for (only deletions in it) may fail unobserved: that is logged, not thrown
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

const resolved = Promise.resolve();

export interface JournalOptions {
  /** broker.db; undefined: nothing is written (a broker that keeps everything in memory, for benchmarks) */
  file?: string;
  log: Logger;
  /** the whole state as ops, written after `op.reset` to heal the file once a batch has failed */
  snapshot(): Op[];
  /** test seam: SQLite's max_page_count on the writer, a full disk without filling one */
  maxPageCount?: number;
  /** every batch's outcome, for the listener's metrics */
  onCommit?(ok: boolean): void;
}

/**
 * BrokerJournal: group commit. Every write of one event-loop turn (and every write made while a batch is
 * being committed) goes into the next batch, one transaction on the writer thread, fsynced before it is
 * reported done; `committed()` is the promise an acknowledgement waits on. So a burst of a thousand QoS 1
 * publishes costs a few fsyncs, not a thousand, and the event loop never waits on the disk.
 * A failed batch (SQLITE_FULL, SQLITE_IOERR) fails its waiters: nothing it held is acknowledged. The state
 * in memory stays as it is and the next batch, at most once a second while failures last, first writes that
 * whole state again (`op.reset`), so the file never keeps the gap the failed batch left.
 */
export class BrokerJournal {
  #worker: Worker | undefined;
  #pending: Op[] = [];
  #pendingDone: Deferred | undefined;
  #inflight: { id: number; done?: Deferred; settled: Deferred; reset: boolean } | undefined;
  #scheduled = false;
  #nextId = 1;
  #needsReset = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #broken: BrokerStoreError | undefined;
  #closing = false;
  #lastErrorLog = 0;
  #opened: Deferred | undefined;
  #closed: Deferred | undefined;
  /** broker.db's size after the last commit (pages in use times page size; 0 before the first) */
  fileBytes = 0;

  constructor(private readonly opts: JournalOptions) {}

  get durable(): boolean {
    return this.opts.file !== undefined;
  }

  /** failing: the last batch failed and its gap is not healed yet */
  get failing(): boolean {
    return this.#needsReset || this.#broken !== undefined;
  }

  /** open: starts the writer on broker.db (the file's schema is in place: `loadBrokerDb` ran first). */
  async open(): Promise<void> {
    if (!this.opts.file) return;
    // known from the start, not only after the first commit (attack4 F6: the metric read 0 after every start)
    try {
      this.fileBytes = statSync(this.opts.file).size;
    } catch {
      this.fileBytes = 0;
    }
    const worker = new Worker(workerUrl("listeners/mqtt/broker-db.worker.ts"));
    this.#worker = worker;
    this.#opened = deferred();
    worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#onReply(e.data);
    worker.onerror = (e) => this.#break(`the broker store's writer failed: ${e.message}`);
    this.#send({ t: "open", file: this.opts.file, maxPageCount: this.opts.maxPageCount });
    await this.#opened.promise;
  }

  /** write: one op into the next batch. */
  write(o: Op): void {
    if (!this.#worker || this.#closing) return;
    this.#pending.push(o);
    this.#schedule();
  }

  /** committed: resolves once everything written so far is on disk; rejects if its batch failed. */
  committed(): Promise<void> {
    if (!this.#worker) return this.#closing && this.durable ? Promise.reject(this.#stopped()) : resolved;
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#pending.length === 0) return resolved;
    this.#pendingDone ??= deferred();
    return this.#pendingDone.promise;
  }

  /** close: the pending batch is written, then the writer closes broker.db (WAL checkpointed) and ends. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker || this.#closing) return;
    this.#closing = true;
    if (this.#retry) {
      clearTimeout(this.#retry);
      this.#retry = undefined;
    }
    // what is pending goes out now; a failing store tries once more
    for (let i = 0; i < 3 && !this.#broken; i++) {
      if (this.#inflight) await this.#inflight.settled.promise;
      if (this.#pending.length === 0 && !this.#needsReset) break;
      this.#flush();
    }
    if (this.#inflight) await this.#inflight.settled.promise;
    this.#pendingDone?.reject(this.#stopped());
    this.#pendingDone = undefined;
    this.#pending = [];
    if (!this.#broken) {
      this.#closed = deferred();
      this.#send({ t: "close" });
      await Promise.race([this.#closed.promise, Bun.sleep(5_000)]);
    }
    worker.terminate();
    this.#worker = undefined;
  }

  #stopped() {
    return new BrokerStoreError("the broker store is closed");
  }

  #send(m: WorkerRequest) {
    this.#worker?.postMessage(m);
  }

  #schedule() {
    // one batch in flight at a time: what comes meanwhile waits for it and goes out together
    if (this.#scheduled || this.#inflight || this.#retry) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush() {
    if (this.#inflight || !this.#worker || this.#broken) return;
    if (this.#pending.length === 0 && !this.#needsReset) return;
    const reset = this.#needsReset;
    // healing: the whole state in memory (which already holds what is pending) replaces the file's
    const ops: Op[] = reset ? [[op.reset], ...this.opts.snapshot()] : this.#pending;
    const done = this.#pendingDone;
    this.#pending = [];
    this.#pendingDone = undefined;
    const id = this.#nextId++;
    this.#inflight = { id, done, settled: deferred(), reset };
    const { buffer, length } = encodeOps(ops);
    this.#worker?.postMessage({ t: "batch", id, ops: buffer, length } satisfies WorkerRequest, [buffer]);
  }

  #onReply(m: WorkerReply) {
    if (m.t === "opened") return this.#opened?.resolve();
    if (m.t === "closed") return this.#closed?.resolve();
    if (m.t === "failed") return this.#break(`the broker store failed: ${m.error}`);
    const batch = this.#inflight;
    if (!batch || batch.id !== m.id) return;
    this.#inflight = undefined;
    if (m.ok) {
      this.fileBytes = m.fileBytes;
      if (batch.reset) {
        this.#needsReset = false;
        this.opts.log.info("broker store writes again: broker.db holds the broker's state once more");
      }
      this.opts.onCommit?.(true);
      batch.done?.resolve();
      batch.settled.resolve();
      if (this.#pending.length > 0) this.#flush();
      return;
    }
    this.#needsReset = true;
    this.opts.onCommit?.(false);
    const now = Date.now();
    if (now - this.#lastErrorLog > 60_000) {
      this.#lastErrorLog = now;
      const full = m.code === "SQLITE_FULL";
      this.opts.log.error(
        full
          ? "broker store: disk full; messages that need broker.db (retained, queued for persistent sessions, QoS 2) are refused until there is room; the admin and every listener keep running"
          : "broker store: write failed; messages that need broker.db are refused until a write succeeds",
        { code: m.code, err: m.error },
      );
    }
    batch.done?.reject(new BrokerStoreError(`broker.db could not be written: ${m.error}`, m.code));
    batch.settled.resolve();
    if (!this.#closing) {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#flush();
      }, 1_000);
    }
  }

  #break(message: string) {
    if (this.#broken) return;
    this.#broken = new BrokerStoreError(message);
    this.opts.log.error(`${message}: messages that need broker.db are refused until the appliance restarts`);
    this.#opened?.reject(this.#broken);
    this.#inflight?.done?.reject(this.#broken);
    this.#inflight?.settled.resolve();
    this.#inflight = undefined;
    this.#pendingDone?.reject(this.#broken);
    this.#pendingDone = undefined;
    this.#pending = [];
  }
}
