/**
 * FailureThrottle: counts failed logins per key in a fixed window. Once a key reaches `limit`
 * failures (plus attempts still under way, see `reserve`) in `windowMs`, callers must not pay for
 * another password hash for it until the window ends. Memory is bounded in count and in size: keys
 * longer than 128 characters are stored as their SHA-256, old windows are swept, and at `maxKeys` the
 * oldest keys are dropped first.
 */
export class FailureThrottle {
  #windows = new Map<string, { start: number; count: number; inflight: number }>();

  constructor(
    readonly limit = 10,
    readonly windowMs = 60_000,
    readonly maxKeys = 50_000,
    private readonly now: () => number = Date.now,
  ) {}

  #window(key: string, create: boolean) {
    const k = boundedKey(key);
    const t = this.now();
    let w = this.#windows.get(k);
    if (w && t - w.start >= this.windowMs && w.inflight === 0) {
      this.#windows.delete(k);
      w = undefined;
    }
    if (!w && create) {
      this.#windows.set(k, (w = { start: t, count: 0, inflight: 0 }));
      if (this.#windows.size > this.maxKeys) this.#sweep(t);
    }
    return w;
  }

  /** blocked: failures and attempts under way have used up the key's budget. */
  blocked(key: string): boolean {
    const w = this.#window(key, false);
    return w !== undefined && w.count + w.inflight >= this.limit;
  }

  /** failures: failed attempts in the current window. */
  failures(key: string): number {
    return this.#window(key, false)?.count ?? 0;
  }

  fail(key: string): void {
    this.#window(key, true)!.count++;
  }

  /**
   * reserve: an attempt counts from the moment it starts, so a burst sent at once is held to the
   * limit like the same attempts sent one by one. Returns undefined when the budget is used up;
   * otherwise settle it exactly once: `settle(false)` books a failure, `settle(true)` frees the slot.
   */
  reserve(key: string): ((failed: boolean) => void) | undefined {
    if (this.blocked(key)) return undefined;
    const w = this.#window(key, true)!;
    w.inflight++;
    let settled = false;
    return (failed) => {
      if (settled) return;
      settled = true;
      w.inflight--;
      if (failed) w.count++;
    };
  }

  /** clear: forget a key (an admin's password was reset: its lock-out ends). */
  clear(key: string): void {
    this.#windows.delete(boundedKey(key));
  }

  #sweep(t: number): void {
    for (const [k, w] of this.#windows) if (t - w.start >= this.windowMs && w.inflight === 0) this.#windows.delete(k);
    // Still too many live keys (a spray from many addresses): drop the oldest (Map keeps insertion order).
    for (const k of this.#windows.keys()) {
      if (this.#windows.size <= this.maxKeys) break;
      this.#windows.delete(k);
    }
  }

  get size(): number {
    return this.#windows.size;
  }
}

/** boundedKey: a throttle or cache key of bounded size, whatever a client sent as its name. */
export function boundedKey(key: string): string {
  return key.length <= 128 ? key : `#${new Bun.CryptoHasher("sha256").update(key).digest("hex")}`;
}

/** pairKey: the (address, name) pair a hard limit applies to. */
export function pairKey(address: string | undefined, name: string): string {
  return boundedKey(`p:${address ?? "local"}\0${name}`);
}

/** QueueFullError: the scheduler's waiting line is full and this attempt ranks no better than those in it. */
export class QueueFullError extends Error {
  constructor() {
    super("too many attempts waiting");
    this.name = "QueueFullError";
  }
}

export interface FairSchedulerOptions {
  /**
   * most attempts waiting (default: no bound). A newcomer that ranks better than the worst waiting
   * attempt takes its place (that one is refused with QueueFullError); otherwise the newcomer is.
   */
  maxQueued?: number;
  /**
   * a lane with more than one attempt under way (waiting or running) waits behind lanes with one of
   * the same standing: a person types one password at a time; an address with five guesses in flight
   * is not a person (or is a fleet behind a NAT, served round robin with the other busy lanes).
   */
  busyLanesLast?: boolean;
}

/**
 * Standing: how an attempt's record ranks it, asked when a slot frees: `true` (clean) or a tier, 0
 * first (`false` is the tier after clean ones, 1).
 */
export type Standing = boolean | number;

interface Waiting {
  lane: string;
  start: () => void;
  clean: () => Standing;
  refuse: (err: Error) => void;
}

/**
 * FairScheduler: password hashes run a few at a time (each argon2id holds 64 MiB and ~0.1 s of a core).
 * The next to run is chosen when a slot frees, by what is true then: attempts with a clean record first
 * (`clean` is asked at that moment, so an address whose earlier guesses have failed meanwhile drops
 * back), optionally lanes with a single attempt before busy ones, and round robin over lanes (the
 * client's address) among equals: a flood from one address waits in its own line and slows only itself.
 */
export class FairScheduler {
  /** lanes with waiting attempts, in round-robin order (a lane that takes a turn goes to the back) */
  #lanes = new Map<string, Waiting[]>();
  /** attempts under way (waiting or running) per lane */
  #depth = new Map<string, number>();
  #running = 0;
  #queued = 0;
  readonly stats = { started: 0, peakRunning: 0, refused: 0 };

  constructor(
    readonly concurrency = 2,
    private readonly opts: FairSchedulerOptions = {},
  ) {}

  /**
   * run: `task` when its turn comes. `clean` (or a fixed boolean) says whether the attempt has a clean
   * record; `signal` drops a waiting attempt whose client has gone (it rejects with the signal's reason).
   */
  run<T>(lane: string, clean: Standing | (() => Standing), task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const isClean = typeof clean === "function" ? clean : () => clean;
      this.#depth.set(lane, (this.#depth.get(lane) ?? 0) + 1);
      const start = () => {
        signal?.removeEventListener("abort", onAbort);
        this.#running++;
        this.stats.started++;
        this.stats.peakRunning = Math.max(this.stats.peakRunning, this.#running);
        task()
          .then(resolve, reject)
          .finally(() => {
            this.#running--;
            this.#leave(lane);
            this.#next();
          });
      };
      const entry: Waiting = {
        lane,
        start,
        clean: isClean,
        refuse: (err) => (signal?.removeEventListener("abort", onAbort), this.#leave(lane), reject(err)),
      };
      const onAbort = () => {
        if (this.#remove(entry)) entry.refuse(signal!.reason);
      };
      if (this.#running < this.concurrency && this.#queued === 0) return start();
      if (this.#queued >= (this.opts.maxQueued ?? Infinity)) {
        const worst = this.#worst();
        if (!worst || this.#rank(worst) <= this.#rank(entry)) {
          this.stats.refused++;
          return entry.refuse(new QueueFullError());
        }
        this.#remove(worst);
        this.stats.refused++;
        worst.refuse(new QueueFullError());
      }
      let q = this.#lanes.get(lane);
      if (!q) this.#lanes.set(lane, (q = []));
      q.push(entry);
      this.#queued++;
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * #rank: 0 runs first: tier 0 (clean) and (with busyLanesLast) alone in its lane. The tier comes
   * first: a busy lane of a better tier (a fleet behind one clean address) goes before a single
   * attempt of a worse one (a stranger's address whose guesses have failed); within a tier, lanes
   * with one attempt go first.
   */
  #rank(w: Waiting): number {
    const standing = w.clean();
    const tier = standing === true ? 0 : standing === false ? 1 : standing;
    const busy = this.opts.busyLanesLast && (this.#depth.get(w.lane) ?? 0) > 1 ? 1 : 0;
    return tier * 2 + busy;
  }

  #next(): void {
    while (this.#running < this.concurrency && this.#queued > 0) {
      let best: Waiting | undefined;
      let bestRank = Infinity;
      for (const q of this.#lanes.values()) {
        const r = this.#rank(q[0]!);
        if (r < bestRank) [best, bestRank] = [q[0]!, r];
        if (r === 0) break;
      }
      this.#remove(best!);
      // Round robin: the lane took its turn and goes to the back of the line.
      const q = this.#lanes.get(best!.lane);
      if (q) {
        this.#lanes.delete(best!.lane);
        this.#lanes.set(best!.lane, q);
      }
      best!.start();
    }
  }

  /** #worst: the waiting attempt to refuse first: the worst rank, the newest attempt of the busiest lane. */
  #worst(): Waiting | undefined {
    let worst: Waiting | undefined;
    let key = -Infinity;
    for (const q of this.#lanes.values()) {
      const w = q[q.length - 1]!;
      const k = this.#rank(w) * 1e9 + (this.#depth.get(w.lane) ?? 0);
      if (k > key) [worst, key] = [w, k];
    }
    return worst;
  }

  #remove(w: Waiting): boolean {
    const q = this.#lanes.get(w.lane);
    const i = q ? q.indexOf(w) : -1;
    if (i < 0) return false;
    q!.splice(i, 1);
    if (q!.length === 0) this.#lanes.delete(w.lane);
    this.#queued--;
    return true;
  }

  #leave(lane: string): void {
    const d = (this.#depth.get(lane) ?? 1) - 1;
    if (d > 0) this.#depth.set(lane, d);
    else this.#depth.delete(lane);
  }

  get queued(): number {
    return this.#queued;
  }

  get running(): number {
    return this.#running;
  }
}
