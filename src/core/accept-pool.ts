import type { Logger } from "../lib/logger.ts";
import type { Metrics } from "./metrics.ts";

/** Why the pool closed a socket: its deadline passed, or it was evicted to admit a newcomer. */
export type PendingCloseReason = "deadline" | "evicted";

/** PendingSocket: what a listener holds for one socket it admitted. */
export interface PendingSocket {
  /**
   * spoke: the peer sent what a real client sends at once (a whole MQTT CONNECT): it is no longer
   * silent, so neither evicted nor closed at the silent deadline; it still counts until it leaves.
   */
  spoke(): void;
  /** leave: logged in, or closed; idempotent. */
  leave(): void;
}

export interface AcceptPoolOptions {
  /** sockets not logged in yet, at most, over every listener */
  capacity: number;
  /** how long a silent socket may stay while the pool is at most half full (ms) */
  timeoutMs: number;
  /** the shortest deadline, reached when the pool is full or for an address over its share (ms) */
  minTimeoutMs?: number;
  log?: Logger;
  metrics?: Metrics;
  /** refuse: an address refused at accept, before the socket is counted or read (a ban, core/bans.ts) */
  refuse?: (remote: string) => boolean;
}

interface Entry extends PendingSocket {
  readonly listener: string;
  readonly remote: string;
  readonly admittedAt: number;
  silent: boolean;
  left: boolean;
  close(reason: PendingCloseReason): void;
}

/** How many of the oldest silent sockets eviction looks at for one of an address over its share. */
const evictionScan = 64;

/**
 * AcceptPool: every socket of every listener, counted from accept (before a TLS handshake, a CONNECT,
 * a request line) until it has logged in, in one pool shared by all listeners. Protocol-free: a
 * listener admits a socket with a closure that drops it, says when the peer spoke, and when it left.
 *
 * - **Deadline**: a silent socket (nothing meaningful sent yet) gets `timeoutMs` while the pool is at
 *   most half full; from there the deadline shrinks linearly to `minTimeoutMs` at full. A socket is
 *   judged against the deadline of the moment, so filling the pool shortens the wait of those already in.
 * - **Share**: an address may hold as many silent sockets as the pool has free slots, and at least 1 %
 *   of it; its silent sockets past that share get the shortest deadline and are evicted first.
 * - **Eviction**: a newcomer to a full pool evicts the oldest silent socket (of an address over its
 *   share if one is among the oldest, else the oldest of all). Only when every socket in the pool has
 *   spoken is the newcomer refused.
 *
 * A real device sends its CONNECT at once and is no longer silent; a stranger holding sockets is. So
 * a fleet behind one address gets in while idle sockets from a few addresses churn: they are told
 * apart by what they do, not by how many share an address.
 */
export class AcceptPool {
  readonly capacity: number;
  readonly timeoutMs: number;
  readonly minTimeoutMs: number;
  /** silent sockets, oldest first (a Set keeps insertion order) */
  #silent = new Set<Entry>();
  #silentByAddress = new Map<string, number>();
  #speaking = new Set<Entry>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #log?: Logger;
  /** sockets closed before logging in, by why (a counter, read when scraped: bumped per socket under attack) */
  #closedBy: Record<PendingCloseReason | "refused", number> = { deadline: 0, evicted: 0, refused: 0 };
  #fullSince = 0;
  #refuse?: (remote: string) => boolean;

  constructor(opts: AcceptPoolOptions) {
    if (!(opts.capacity >= 1)) throw new Error("accept pool: capacity must be at least 1");
    this.capacity = opts.capacity;
    this.timeoutMs = opts.timeoutMs;
    this.minTimeoutMs = Math.min(opts.minTimeoutMs ?? 2_000, opts.timeoutMs);
    this.#log = opts.log;
    this.#refuse = opts.refuse;
    if (opts.metrics) {
      opts.metrics.gauge({
        name: "gatehouse_pending_closed_total",
        help: "Sockets closed before logging in: at the deadline, evicted, or refused when the pool was full of sockets that spoke",
        type: "counter",
        read: () => Object.entries(this.#closedBy).map(([reason, n]) => [{ reason }, n]),
      });
      opts.metrics.gauge({
        name: "gatehouse_pending_sockets",
        help: "Sockets not logged in yet, by listener and state (silent: sent nothing meaningful yet)",
        read: () => {
          const counts = new Map<string, number>();
          for (const e of this.#silent)
            counts.set(`${e.listener}\0silent`, (counts.get(`${e.listener}\0silent`) ?? 0) + 1);
          for (const e of this.#speaking)
            counts.set(`${e.listener}\0spoke`, (counts.get(`${e.listener}\0spoke`) ?? 0) + 1);
          return [...counts].map(([k, n]) => {
            const [listener, state] = k.split("\0") as [string, string];
            return [{ listener, state }, n];
          });
        },
      });
    }
  }

  /** size: sockets in the pool now, silent or not */
  get size(): number {
    return this.#silent.size + this.#speaking.size;
  }

  get silentCount(): number {
    return this.#silent.size;
  }

  /** closed: sockets closed before logging in so far, by why */
  closed(reason: PendingCloseReason | "refused"): number {
    return this.#closedBy[reason];
  }

  /** share: how many silent sockets one address may hold now (shrinks as the pool fills). */
  share(): number {
    return Math.max(Math.ceil(this.capacity / 100), this.capacity - this.size);
  }

  /** timeoutNow: the deadline of a silent socket within its share, at the pool's current fill. */
  timeoutNow(): number {
    const fill = this.size / this.capacity;
    if (fill <= 0.5) return this.timeoutMs;
    return Math.round(this.timeoutMs - (this.timeoutMs - this.minTimeoutMs) * Math.min(1, (fill - 0.5) / 0.5));
  }

  /**
   * admit: one new socket. `close` drops it (the pool has already forgotten it when it is called).
   * Returns undefined when it must be refused (the pool is full and every socket in it has spoken, or
   * `refuse` says so): the caller closes it at once.
   */
  admit(listener: string, remote: string, close: (reason: PendingCloseReason) => void): PendingSocket | undefined {
    if (this.#refuse?.(remote)) return undefined; // banned: closed before a byte is read (counted by the ban list)
    if (this.size >= this.capacity) {
      const victim = this.#victim();
      if (!victim) {
        this.#closedBy.refused++;
        this.#warnFull();
        return undefined;
      }
      this.#drop(victim, "evicted");
      this.#warnFull();
    }
    const pool = this;
    const entry: Entry = {
      listener,
      remote,
      admittedAt: performance.now(),
      silent: true,
      left: false,
      close,
      spoke() {
        if (entry.left || !entry.silent) return;
        pool.#unsilence(entry);
        pool.#speaking.add(entry);
      },
      leave() {
        if (entry.left) return;
        entry.left = true;
        if (entry.silent) pool.#unsilence(entry);
        else pool.#speaking.delete(entry);
      },
    };
    this.#silent.add(entry);
    this.#silentByAddress.set(remote, (this.#silentByAddress.get(remote) ?? 0) + 1);
    this.#sweeper ??= setInterval(() => this.#sweep(), Math.max(50, Math.min(250, this.minTimeoutMs / 4)));
    this.#sweeper.unref?.();
    return entry;
  }

  /** stop: the sweeper ends (the listeners close their own sockets). */
  stop(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #unsilence(entry: Entry): void {
    entry.silent = false;
    this.#silent.delete(entry);
    const n = (this.#silentByAddress.get(entry.remote) ?? 1) - 1;
    if (n > 0) this.#silentByAddress.set(entry.remote, n);
    else this.#silentByAddress.delete(entry.remote);
    if (this.#silent.size === 0) this.stop();
  }

  /** #victim: the oldest silent socket of an address over its share among the oldest, else the oldest. */
  #victim(): Entry | undefined {
    const share = this.share();
    let oldest: Entry | undefined;
    let looked = 0;
    for (const e of this.#silent) {
      oldest ??= e;
      if ((this.#silentByAddress.get(e.remote) ?? 0) > share) return e;
      if (++looked >= evictionScan) break;
    }
    return oldest;
  }

  #drop(entry: Entry, reason: PendingCloseReason): void {
    entry.leave();
    this.#closedBy[reason]++;
    try {
      entry.close(reason);
    } catch (err) {
      this.#log?.error("accept pool: closing a socket failed", { listener: entry.listener, err });
    }
  }

  /** #sweep: closes the silent sockets past their deadline (oldest first; stops at the young ones). */
  #sweep(): void {
    const now = performance.now();
    const deadline = this.timeoutNow();
    const share = this.share();
    const late: Entry[] = [];
    /** per address over its share: how many of its oldest silent sockets are past the share */
    const excess = new Map<string, number>();
    for (const e of this.#silent) {
      const age = now - e.admittedAt;
      if (age < this.minTimeoutMs) break; // younger than any deadline, and so is every later one
      const over = excess.get(e.remote) ?? (this.#silentByAddress.get(e.remote) ?? 0) - share;
      if (age >= deadline || over > 0) {
        late.push(e);
        excess.set(e.remote, over - 1);
      }
    }
    for (const e of late) this.#drop(e, "deadline");
  }

  /** #warnFull: one line a minute while the pool is full, so an admin sees the pressure. */
  #warnFull(): void {
    const now = performance.now();
    if (now - this.#fullSince < 60_000 && this.#fullSince !== 0) return;
    this.#fullSince = now;
    this.#log?.warn("accept pool full: evicting the oldest silent sockets", {
      capacity: this.capacity,
      silent: this.#silent.size,
      spoke: this.#speaking.size,
      deadlineMs: this.timeoutNow(),
    });
  }
}
