import type { EventBus } from "./events.ts";
import type { IntegrationType, LoginFailure } from "./types.ts";

export interface FailedLogin {
  at: number;
  type: IntegrationType;
  username: string;
  clientId?: string;
  remote?: string;
  protocol?: string;
  reason: LoginFailure;
}

/**
 * FailedLoginGroup: the failed logins of one username from one address for one reason (and over one
 * type): a device retrying a stale password every second is one line with a count, not a screenful.
 */
export interface FailedLoginGroup {
  type: IntegrationType;
  username: string;
  remote?: string;
  reason: LoginFailure;
  /** the protocol level and client id of the latest attempt */
  protocol?: string;
  clientId?: string;
  count: number;
  firstAt: number;
  lastAt: number;
}

/** minutes the hourly count covers, one bucket each */
const hourBuckets = 60;

/**
 * LoginLog: the failed logins since start, newest first, bounded so a flood cannot grow it: the last
 * `capacity` attempts one by one, and the same number of groups (username, address, reason, type),
 * the least recently seen dropped first. An unknown name that smart onboarding took as a request is no
 * failure (the onboarding panel lists it) and is not recorded here.
 */
export class LoginLog {
  #entries: FailedLogin[] = [];
  #groups = new Map<string, FailedLoginGroup>();
  /** failures per minute over the last hour (index: minute number modulo 60) */
  #perMinute = new Array<number>(hourBuckets).fill(0);
  #minuteOf = new Array<number>(hourBuckets).fill(-1);

  constructor(
    events: EventBus,
    readonly capacity = 200,
    private readonly now: () => number = Date.now,
  ) {
    events.on("login.failed", (e) => {
      if (e.onboarding) return;
      const at = this.now();
      const entry: FailedLogin = {
        at,
        type: e.type,
        username: e.username.slice(0, 256),
        clientId: e.meta.clientId?.slice(0, 256),
        remote: e.meta.remote,
        protocol: e.meta.protocol,
        reason: e.reason,
      };
      this.#entries.unshift(entry);
      if (this.#entries.length > capacity) this.#entries.length = capacity;
      this.#group(entry);
      const minute = Math.floor(at / 60_000);
      const slot = minute % hourBuckets;
      if (this.#minuteOf[slot] !== minute) {
        this.#minuteOf[slot] = minute;
        this.#perMinute[slot] = 0;
      }
      this.#perMinute[slot]!++;
    });
  }

  #group(e: FailedLogin): void {
    const key = `${e.type}\0${e.username}\0${e.remote ?? ""}\0${e.reason}`;
    const g = this.#groups.get(key);
    if (g) {
      g.count++;
      g.lastAt = e.at;
      g.protocol = e.protocol;
      g.clientId = e.clientId;
      this.#groups.delete(key); // a Map keeps insertion order: re-inserted, it is the most recent
      this.#groups.set(key, g);
      return;
    }
    const { at, ...rest } = e;
    this.#groups.set(key, { ...rest, count: 1, firstAt: at, lastAt: at });
    if (this.#groups.size > this.capacity) this.#groups.delete(this.#groups.keys().next().value!);
  }

  /** recent: the last failed attempts one by one, newest first. */
  recent(limit = 50): FailedLogin[] {
    return this.#entries.slice(0, limit);
  }

  /** grouped: the groups, most recently seen first. */
  grouped(limit = this.capacity): FailedLoginGroup[] {
    const out: FailedLoginGroup[] = [];
    for (const g of [...this.#groups.values()].reverse()) {
      if (out.length >= limit) break;
      out.push({ ...g });
    }
    return out;
  }

  /** lastHour: failed logins in the last 60 minutes (to the minute), however many there were. */
  lastHour(): number {
    const minute = Math.floor(this.now() / 60_000);
    let n = 0;
    for (let k = 0; k < hourBuckets; k++) if (minute - this.#minuteOf[k]! < hourBuckets) n += this.#perMinute[k]!;
    return n;
  }
}
