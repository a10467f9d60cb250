import type { Traffic } from "./types.ts";

export type { Traffic } from "./types.ts";

/** newTraffic: a zeroed Traffic record. */
export function newTraffic(): Traffic {
  return { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, refused: 0, lastMessageAt: null };
}

/**
 * Clock: where a meter reads the time of a message.
 */
export interface Clock {
  readonly now: number;
}

/** systemClock: Date.now() at every read (a registry without a running core: tests). */
export const systemClock: Clock = {
  get now() {
    return Date.now();
  },
};

/**
 * CoarseClock: Date.now() kept in a field, moved every 250 ms by an unref'd timer (the core's, cleared at
 * its stop). Measured on the 2-core test machine, Date.now() costs ~200 ns (a system call there): two a
 * message (in, then out) were most of what counting cost; a field read costs nothing. A "last message"
 * shown as "3 s ago" does not notice the step.
 */
export class CoarseClock implements Clock {
  now = Date.now();

  /** start: the timer that moves `now`; the caller clears it. */
  start(): ReturnType<typeof setInterval> {
    const t = setInterval(() => {
      this.now = Date.now();
    }, 250);
    t.unref?.();
    return t;
  }
}

/**
 * TrafficMeter: what a listener bumps for one session, per message: the session's record and its
 * integration's total at once (a few field increments and a field read, no allocation, no lookup, no
 * system call; bench/traffic.ts measures it).
 */
export class TrafficMeter {
  constructor(
    readonly session: Traffic,
    readonly total: Traffic,
    private readonly clock: Clock = systemClock,
  ) {}

  /** received: one message of `bytes` payload bytes from the device, accepted. */
  received(bytes: number): void {
    const s = this.session;
    const t = this.total;
    s.messagesIn++;
    t.messagesIn++;
    s.bytesIn += bytes;
    t.bytesIn += bytes;
    s.lastMessageAt = t.lastMessageAt = this.clock.now;
  }

  /** delivered: one message of `bytes` payload bytes sent to the device. */
  delivered(bytes: number): void {
    const s = this.session;
    const t = this.total;
    s.messagesOut++;
    t.messagesOut++;
    s.bytesOut += bytes;
    t.bytesOut += bytes;
    s.lastMessageAt = t.lastMessageAt = this.clock.now;
  }

  /** refused: one publish the topic permissions refused (not counted as received). */
  refused(): void {
    this.session.refused++;
    this.total.refused++;
  }
}
