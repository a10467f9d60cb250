import type { Logger } from "../lib/logger.ts";
import type { Metrics } from "./metrics.ts";

/**
 * Why the pool closed a socket: a silent one's deadline passed, it was evicted to admit a newcomer
 * (`evicted-spoke`: one that spoke, past the share of those), or it spoke and its login was not over by
 * the login deadline; `banned`: its address is banned (core/bans.ts), closed at accept.
 */
export type PendingCloseReason = "deadline" | "evicted" | "evicted-spoke" | "login-deadline" | "banned";

/** PendingSocket: what a listener holds for one socket it admitted. */
export interface PendingSocket {
  /**
   * spoke: the peer sent what a real client sends at once (a whole MQTT CONNECT): it is no longer
   * silent, so not closed at the silent deadline; it still counts until it leaves, and is closed if its
   * login is not over by the login deadline. `suspect` (asked when the pool is full): this client's
   * name or address has failed logins lately; such a socket is evicted for a newcomer before others that spoke.
   */
  spoke(suspect?: () => boolean): void;
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
  /** how long a socket that spoke may wait for its login to be decided (ms; default 30 s) */
  loginTimeoutMs?: number;
  log?: Logger;
  metrics?: Metrics;
  /** refuse: an address refused at accept, before the socket is counted or read (a ban, core/bans.ts) */
  refuse?: (remote: string) => boolean;
}

interface Entry extends PendingSocket {
  readonly listener: string;
  readonly remote: string;
  readonly admittedAt: number;
  spokeAt: number;
  suspect?: () => boolean;
  silent: boolean;
  left: boolean;
  close(reason: PendingCloseReason): void;
}

/** How many of the oldest silent sockets eviction looks at for one of an address over its share. */
const evictionScan = 64;
/** How many of the oldest sockets that spoke eviction asks whether they are suspect. */
const suspectScan = 256;

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
 *   share if one is among the oldest, else the oldest of all) while sockets that spoke hold at most
 *   half of the pool (`spokeShare`). Past that share (or with no silent socket left) it evicts one that
 *   spoke: the oldest whose client is suspect (its name or address has failed logins lately), else the
 *   oldest of the address holding the most sockets that spoke. A newcomer is never refused: strangers
 *   whose CONNECTs wait for their password checks cannot take more than half of the pool, so every
 *   port keeps accepting (finding F1), and a fleet behind one address logs in while the pool has room.
 * - **Login deadline**: a socket that spoke leaves when its login is decided (in, or refused and
 *   closed); one still waiting after `loginTimeoutMs` is closed (its password check, if still in the
 *   line, leaves it with the socket). The hash line has its own bound (past it: "server busy"), so this
 *   is a backstop.
 *
 * A real device sends its CONNECT at once and is no longer silent; a stranger holding sockets is. So
 * a fleet behind one address gets in while idle sockets from a few addresses churn: they are told
 * apart by what they do, not by how many share an address.
 */
export class AcceptPool {
  readonly capacity: number;
  readonly timeoutMs: number;
  readonly minTimeoutMs: number;
  readonly loginTimeoutMs: number;
  /** silent sockets, oldest first (a Set keeps insertion order) */
  #silent = new Set<Entry>();
  #silentByAddress = new Map<string, number>();
  /** sockets that spoke, by when they spoke, oldest first */
  #speaking = new Set<Entry>();
  /** sockets that spoke per address, oldest first */
  #speakingByAddress = new Map<string, Set<Entry>>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #log?: Logger;
  /** sockets closed before logging in, by why (a counter, read when scraped: bumped per socket under attack) */
  #closedBy: Record<PendingCloseReason, number> = {
    deadline: 0,
    evicted: 0,
    "evicted-spoke": 0,
    "login-deadline": 0,
    banned: 0,
  };
  #fullSince = 0;
  #refuse?: (remote: string) => boolean;

  constructor(opts: AcceptPoolOptions) {
    if (!(opts.capacity >= 1)) throw new Error("accept pool: capacity must be at least 1");
    this.capacity = opts.capacity;
    this.timeoutMs = opts.timeoutMs;
    this.minTimeoutMs = Math.min(opts.minTimeoutMs ?? 2_000, opts.timeoutMs);
    this.loginTimeoutMs = opts.loginTimeoutMs ?? 30_000;
    this.#log = opts.log;
    this.#refuse = opts.refuse;
    if (opts.metrics) {
      opts.metrics.gauge({
        name: "gatehouse_pending_closed_total",
        help: "Sockets closed before logging in: silent at the deadline, evicted (silent, or evicted-spoke: past the share of sockets that spoke), past the login deadline",
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

  /** spokeCount: sockets that spoke and whose login is not decided yet */
  get spokeCount(): number {
    return this.#speaking.size;
  }

  /** closed: sockets closed before logging in so far, by why */
  closed(reason: PendingCloseReason): number {
    return this.#closedBy[reason];
  }

  /** share: how many silent sockets one address may hold now (shrinks as the pool fills). */
  share(): number {
    return Math.max(Math.ceil(this.capacity / 100), this.capacity - this.size);
  }

  /** spokeShare: how many sockets that spoke the pool keeps when a newcomer needs room (half of it). */
  spokeShare(): number {
    return Math.floor(this.capacity / 2);
  }

  /** timeoutNow: the deadline of a silent socket within its share, at the pool's current fill. */
  timeoutNow(): number {
    const fill = this.size / this.capacity;
    if (fill <= 0.5) return this.timeoutMs;
    return Math.round(this.timeoutMs - (this.timeoutMs - this.minTimeoutMs) * Math.min(1, (fill - 0.5) / 0.5));
  }

  /**
   * admit: one new socket; a full pool makes room first. `close` drops it (the pool has already forgotten
   * it then). An address `refuse` names (a ban) is never counted: it is closed once the caller has set the
   * socket up (a microtask, before any I/O callback, so before a byte is read).
   */
  admit(listener: string, remote: string, close: (reason: PendingCloseReason) => void): PendingSocket {
    if (this.#refuse?.(remote)) {
      this.#closedBy.banned++;
      queueMicrotask(() => {
        try {
          close("banned");
        } catch (err) {
          this.#log?.error("accept pool: closing a socket failed", { listener, err });
        }
      });
      return { spoke() {}, leave() {} };
    }
    if (this.size >= this.capacity) {
      const victim = this.#victim();
      this.#drop(victim, victim.silent ? "evicted" : "evicted-spoke");
      this.#warnFull();
    }
    const pool = this;
    const entry: Entry = {
      listener,
      remote,
      admittedAt: performance.now(),
      spokeAt: 0,
      silent: true,
      left: false,
      close,
      spoke(suspect) {
        if (entry.left || !entry.silent) return;
        pool.#unsilence(entry);
        entry.spokeAt = performance.now();
        entry.suspect = suspect;
        pool.#speaking.add(entry);
        let mine = pool.#speakingByAddress.get(entry.remote);
        if (!mine) pool.#speakingByAddress.set(entry.remote, (mine = new Set()));
        mine.add(entry);
      },
      leave() {
        if (entry.left) return;
        entry.left = true;
        if (entry.silent) pool.#unsilence(entry);
        else pool.#unspeak(entry);
        if (pool.size === 0) pool.stop();
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

  #unspeak(entry: Entry): void {
    this.#speaking.delete(entry);
    const mine = this.#speakingByAddress.get(entry.remote);
    mine?.delete(entry);
    if (mine?.size === 0) this.#speakingByAddress.delete(entry.remote);
  }

  #unsilence(entry: Entry): void {
    entry.silent = false;
    this.#silent.delete(entry);
    const n = (this.#silentByAddress.get(entry.remote) ?? 1) - 1;
    if (n > 0) this.#silentByAddress.set(entry.remote, n);
    else this.#silentByAddress.delete(entry.remote);
  }

  /**
   * #victim: past the share of sockets that spoke (or with none silent), one that spoke (#spokeVictim);
   * else the oldest silent socket of an address over its share among the oldest, else the oldest.
   */
  #victim(): Entry {
    if (this.#silent.size === 0 || this.#speaking.size > this.spokeShare()) return this.#spokeVictim();
    const share = this.share();
    let oldest: Entry | undefined;
    let looked = 0;
    for (const e of this.#silent) {
      oldest ??= e;
      if ((this.#silentByAddress.get(e.remote) ?? 0) > share) return e;
      if (++looked >= evictionScan) break;
    }
    return oldest!;
  }

  /**
   * #spokeVictim: the oldest socket that spoke whose client is suspect (among the oldest), else the
   * oldest of the address holding the most sockets that spoke (a stranger's ten guesses at once go
   * before a device's one CONNECT).
   */
  #spokeVictim(): Entry {
    let looked = 0;
    for (const e of this.#speaking) {
      if (e.suspect?.()) return e;
      if (++looked >= suspectScan) break;
    }
    let most: Set<Entry> | undefined;
    for (const mine of this.#speakingByAddress.values()) if (!most || mine.size > most.size) most = mine;
    return most!.values().next().value!;
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

  /**
   * #sweep: closes the silent sockets past their deadline and those that spoke past the login deadline
   * (oldest first; stops at the young ones).
   */
  #sweep(): void {
    const now = performance.now();
    const slow: Entry[] = [];
    for (const e of this.#speaking) {
      if (now - e.spokeAt < this.loginTimeoutMs) break;
      slow.push(e);
    }
    for (const e of slow) this.#drop(e, "login-deadline");
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
    this.#log?.warn("accept pool full: evicting the oldest silent sockets; past half the pool, sockets that spoke", {
      capacity: this.capacity,
      silent: this.#silent.size,
      spoke: this.#speaking.size,
      deadlineMs: this.timeoutNow(),
    });
  }
}
