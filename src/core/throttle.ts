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

/**
 * FairScheduler: password hashes run a few at a time (each argon2id holds 64 MiB and ~0.1 s of a core),
 * in two tiers (attempts with a clean record first) and, within a tier, round robin over lanes (the
 * client's address): a flood from one address waits in its own line and slows only itself.
 */
export class FairScheduler {
  #tiers: Map<string, (() => void)[]>[] = [new Map(), new Map()];
  #running = 0;
  #queued = 0;

  constructor(readonly concurrency = 2) {}

  run<T>(lane: string, priority: boolean, task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.#running++;
        task().then(resolve, reject).finally(() => {
          this.#running--;
          this.#next();
        });
      };
      if (this.#running < this.concurrency && this.#queued === 0) return start();
      const tier = this.#tiers[priority ? 0 : 1]!;
      let q = tier.get(lane);
      if (!q) tier.set(lane, (q = []));
      q.push(start);
      this.#queued++;
    });
  }

  #next(): void {
    while (this.#running < this.concurrency && this.#queued > 0) {
      const tier = this.#tiers.find((t) => t.size > 0)!;
      // Round robin: the first lane takes one turn, then goes to the back of the line.
      const [lane, q] = tier.entries().next().value!;
      const start = q.shift()!;
      tier.delete(lane);
      if (q.length) tier.set(lane, q);
      this.#queued--;
      start();
    }
  }

  get queued(): number {
    return this.#queued;
  }
}
