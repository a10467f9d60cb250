/**
 * FailureThrottle: counts expensive failed logins per key (username, address) in a fixed window.
 * Once a key reaches `limit` failures in `windowMs`, callers must not pay for another password
 * hash for it until the window ends. Memory is bounded: old windows are swept, and at `maxKeys`
 * the oldest keys are dropped first.
 */
export class FailureThrottle {
  #windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit = 10,
    readonly windowMs = 60_000,
    readonly maxKeys = 50_000,
    private readonly now: () => number = Date.now,
  ) {}

  blocked(key: string): boolean {
    const w = this.#windows.get(key);
    if (!w) return false;
    if (this.now() - w.start >= this.windowMs) {
      this.#windows.delete(key);
      return false;
    }
    return w.count >= this.limit;
  }

  fail(key: string): void {
    const t = this.now();
    const w = this.#windows.get(key);
    if (w && t - w.start < this.windowMs) {
      w.count++;
      return;
    }
    this.#windows.delete(key);
    this.#windows.set(key, { start: t, count: 1 });
    if (this.#windows.size > this.maxKeys) this.#sweep(t);
  }

  #sweep(t: number): void {
    for (const [k, w] of this.#windows) if (t - w.start >= this.windowMs) this.#windows.delete(k);
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
