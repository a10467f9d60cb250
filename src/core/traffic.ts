import type { Traffic } from "./types.ts";

export type { Traffic } from "./types.ts";

/** newTraffic: a zeroed Traffic record. */
export function newTraffic(): Traffic {
  return { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, refused: 0, lastMessageAt: null };
}

/**
 * TrafficMeter: what a listener bumps for one session, per message: the session's record and its
 * integration's total at once (a few field increments, no allocation, no lookup: the broker's hot path
 * pays for nothing else but one Date.now(); bench/traffic.ts measures it).
 */
export class TrafficMeter {
  constructor(
    readonly session: Traffic,
    readonly total: Traffic,
  ) {}

  /** received: one message of `bytes` payload bytes from the device, accepted. */
  received(bytes: number): void {
    const s = this.session;
    const t = this.total;
    s.messagesIn++;
    t.messagesIn++;
    s.bytesIn += bytes;
    t.bytesIn += bytes;
    s.lastMessageAt = t.lastMessageAt = Date.now();
  }

  /** delivered: one message of `bytes` payload bytes sent to the device. */
  delivered(bytes: number): void {
    const s = this.session;
    const t = this.total;
    s.messagesOut++;
    t.messagesOut++;
    s.bytesOut += bytes;
    t.bytesOut += bytes;
    s.lastMessageAt = t.lastMessageAt = Date.now();
  }

  /** refused: one publish the topic permissions refused (not counted as received). */
  refused(): void {
    this.session.refused++;
    this.total.refused++;
  }
}
