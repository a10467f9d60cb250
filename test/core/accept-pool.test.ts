import { describe, expect, it } from "bun:test";
import { AcceptPool, type PendingCloseReason } from "../../src/core/accept-pool.ts";
import { Metrics } from "../../src/core/metrics.ts";

/** The pool's own rules, on entries that stand for sockets (the socket tests are in test/listeners/accept-pool.test.ts). */
const fill = (pool: AcceptPool, remotes: string[]) => {
  const closed: { name: string; reason: PendingCloseReason }[] = [];
  const entries = remotes.map((remote, i) => {
    const name = `${remote}#${i}`;
    const p = pool.admit("mqtt", remote, (reason) => closed.push({ name, reason }));
    if (!p) throw new Error(`${name} was refused`);
    return p;
  });
  return { closed, entries };
};

describe("accept pool", () => {
  it("a newcomer to a full pool evicts the oldest silent socket, never one that spoke", () => {
    const pool = new AcceptPool({ capacity: 4, timeoutMs: 10_000 });
    const { closed, entries } = fill(pool, ["a", "b", "c", "d"]);
    entries[0]!.spoke(); // a sent its CONNECT: no longer silent
    const closedBefore = closed.length;
    expect(pool.admit("mqtt", "e", () => {})).toBeDefined();
    expect(closed.slice(closedBefore)).toEqual([{ name: "b#1", reason: "evicted" }]);
    expect(pool.admit("mqtt", "f", () => {})).toBeDefined();
    expect(closed.map((c) => c.name)).toEqual(["b#1", "c#2"]);
    expect(pool.size).toBe(4);
    pool.stop();
  });

  it("refuses a newcomer only when every socket in the pool has spoken", async () => {
    const metrics = new Metrics();
    const pool = new AcceptPool({ capacity: 3, timeoutMs: 10_000, metrics });
    const { entries } = fill(pool, ["a", "a", "a"]);
    for (const e of entries) e.spoke();
    expect(pool.admit("mqtt", "b", () => {})).toBeUndefined();
    entries[0]!.leave(); // one logged in
    expect(pool.admit("mqtt", "b", () => {})).toBeDefined();
    expect(pool.closed("refused")).toBe(1);
    expect(await metrics.render()).toContain('gatehouse_pending_closed_total{reason="refused"} 1');
    pool.stop();
  });

  it("evicts from an address over its share before an older socket of an address within it", () => {
    const pool = new AcceptPool({ capacity: 100, timeoutMs: 10_000 });
    // one device from its own address first, then 99 idle sockets from one stranger
    const { closed } = fill(pool, ["device", ...Array.from({ length: 99 }, () => "stranger")]);
    expect(pool.share()).toBe(1); // full: 1 % of the pool
    pool.admit("mqtt", "newcomer", () => {});
    expect(closed).toEqual([{ name: "stranger#1", reason: "evicted" }]);
    pool.stop();
  });

  it("the share shrinks and the deadline shortens as the pool fills", () => {
    const pool = new AcceptPool({ capacity: 100, timeoutMs: 10_000, minTimeoutMs: 2_000 });
    expect(pool.share()).toBe(100);
    expect(pool.timeoutNow()).toBe(10_000);
    const { entries } = fill(
      pool,
      Array.from({ length: 50 }, (_, i) => `addr-${i}`),
    );
    expect(pool.share()).toBe(50);
    expect(pool.timeoutNow()).toBe(10_000);
    fill(
      pool,
      Array.from({ length: 25 }, (_, i) => `more-${i}`),
    );
    expect(pool.share()).toBe(25);
    expect(pool.timeoutNow()).toBe(6_000);
    fill(
      pool,
      Array.from({ length: 25 }, (_, i) => `full-${i}`),
    );
    expect(pool.share()).toBe(1);
    expect(pool.timeoutNow()).toBe(2_000);
    for (const e of entries) e.leave();
    expect(pool.size).toBe(50);
    pool.stop();
  });

  it("closes a silent socket at its deadline, and not one that spoke", async () => {
    const pool = new AcceptPool({ capacity: 10, timeoutMs: 300, minTimeoutMs: 300 });
    const silentClosed = new Promise<PendingCloseReason>((resolve) => pool.admit("mqtt", "a", resolve));
    let spokeClosed = false;
    pool.admit("mqtt", "b", () => (spokeClosed = true))!.spoke();
    expect(await silentClosed).toBe("deadline");
    expect(spokeClosed).toBe(false);
    expect(pool.size).toBe(1);
    pool.stop();
  });

  it("leave is idempotent and a left socket is never closed by the pool", () => {
    const pool = new AcceptPool({ capacity: 1, timeoutMs: 10_000 });
    let closed = 0;
    const p = pool.admit("mqtt", "a", () => closed++)!;
    p.leave();
    p.leave();
    p.spoke();
    expect(pool.size).toBe(0);
    pool.admit("mqtt", "b", () => {});
    pool.admit("mqtt", "c", () => {});
    expect(closed).toBe(0);
    pool.stop();
  });

  it("a socket that spoke is closed at the login deadline if its login is still not decided", async () => {
    const metrics = new Metrics();
    const pool = new AcceptPool({ capacity: 10, timeoutMs: 10_000, loginTimeoutMs: 300, metrics });
    const slow = new Promise<PendingCloseReason>((resolve) => pool.admit("mqtt", "a", resolve)!.spoke());
    let decidedClosed = false;
    const decided = pool.admit("mqtt", "b", () => (decidedClosed = true))!;
    decided.spoke();
    decided.leave(); // logged in (or refused and closed by its listener)
    expect(await slow).toBe("login-deadline");
    expect(decidedClosed).toBe(false);
    expect(pool.size).toBe(0);
    expect(pool.closed("login-deadline")).toBe(1);
    expect(await metrics.render()).toContain('gatehouse_pending_closed_total{reason="login-deadline"} 1');
    pool.stop();
  });

  it("full of sockets that spoke, the pool evicts the oldest whose client is suspect before it refuses a newcomer", () => {
    const pool = new AcceptPool({ capacity: 3, timeoutMs: 10_000 });
    const { closed, entries } = fill(pool, ["device", "stranger", "stranger"]);
    const failed = new Set<string>();
    entries[0]!.spoke(() => failed.has("device"));
    entries[1]!.spoke(() => failed.has("stranger"));
    entries[2]!.spoke(() => failed.has("stranger"));
    // nobody has failed yet: every socket is a login under way, the newcomer is refused
    expect(pool.admit("mqtt", "newcomer", () => {})).toBeUndefined();
    expect(closed).toEqual([]);
    // the stranger's guesses have failed: its oldest socket makes room, the device's is kept
    failed.add("stranger");
    let newcomerClosed: PendingCloseReason | undefined;
    expect(pool.admit("mqtt", "newcomer", (reason) => (newcomerClosed = reason))).toBeDefined();
    expect(closed).toEqual([{ name: "stranger#1", reason: "evicted" }]);
    expect(pool.spokeCount).toBe(2);
    // a silent socket still goes first, before a suspect one that spoke
    expect(pool.admit("mqtt", "another", () => {})).toBeDefined();
    expect(newcomerClosed).toBe("evicted");
    expect(closed.length).toBe(1);
    pool.stop();
  });
});
