/**
 * ExternalSync: memory follows what another process (the CLI) committed to the database file.
 *
 * The check is SQLite's `PRAGMA data_version` (~5 us: it changes only when another connection
 * commits); the reload it may trigger reads every integration (milliseconds for thousands). Two
 * callers: a poller (`now`, every 500 ms), and every decision that must not act on memory older than
 * a write the CLI has already reported done (`fresh`: a login, a registration), so a credential the
 * CLI added, re-enabled or re-keyed is accepted, and one it disabled or removed refused, the moment
 * the CLI exits. A spray of logins with unknown names costs one PRAGMA each and no reload (nothing
 * changed). However many decisions ask, and however often another process commits, a reload starts
 * at most once per gap: `minGapMs`, or ten times what the last reload took if that is longer (10 000
 * integrations take ~35 ms to reconcile: at most ~10% of a core); a decision that finds the database
 * changed meanwhile waits for the next one.
 *
 * A reconcile of many rows (another process imported 100 000) returns a promise and applies them a
 * slice at a time; while it runs no other starts, and every decision that asks waits for it.
 */
export class ExternalSync {
  #seen: number;
  #lastReload = Number.NEGATIVE_INFINITY;
  /** how long the last reload took (ms) */
  #lastCost = 0;
  #pending: Promise<boolean> | undefined;
  /** a reconcile applying its rows in slices */
  #running: Promise<boolean> | undefined;

  constructor(
    private readonly version: () => number,
    /** brings memory in line with the database (and emits what changed); a promise while it applies in slices */
    private readonly reconcile: () => void | Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly minGapMs = 50,
  ) {
    this.#seen = version();
  }

  /**
   * now: reconciles at once if another process committed since the last look; true if it did (or
   * started to: `running` then holds the promise of the rest).
   */
  now(): boolean {
    if (this.#running) return false;
    const v = this.version();
    if (v === this.#seen) return false;
    this.#seen = v;
    const t = performance.now();
    this.#lastReload = t;
    let applying: void | Promise<void>;
    try {
      applying = this.reconcile();
    } finally {
      // the cost of its synchronous part (the reads): the slices after it leave the event loop free
      this.#lastCost = performance.now() - t;
    }
    if (applying) {
      this.#running = applying
        .then(
          () => true,
          (err) => (this.onError(err), false),
        )
        .finally(() => {
          this.#running = undefined;
        });
    }
    return true;
  }

  /** running: the reconcile applying its rows in slices, if one is. */
  get running(): Promise<boolean> | undefined {
    return this.#running;
  }

  /**
   * fresh: `false` when memory already holds every commit made before this call (the common case,
   * answered synchronously); otherwise a promise that resolves once it does. Never rejects: a failed
   * reload is reported and the caller decides on what memory holds.
   */
  fresh(): false | Promise<boolean> {
    if (this.#running) return this.#running;
    if (this.#pending) return this.#pending;
    if (this.version() === this.#seen) return false;
    const wait = this.#lastReload + Math.max(this.minGapMs, 10 * this.#lastCost) - performance.now();
    if (wait <= 0) return Promise.resolve(this.#safeNow());
    this.#pending = new Promise<boolean>((resolve) =>
      setTimeout(() => {
        this.#pending = undefined;
        resolve(this.#safeNow());
      }, Math.ceil(wait)),
    );
    return this.#pending;
  }

  #safeNow(): boolean | Promise<boolean> {
    try {
      const did = this.now();
      return this.#running ?? did;
    } catch (err) {
      this.onError(err);
      return false;
    }
  }
}
