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

  it("sockets that spoke keep at most half of the pool: past it a newcomer evicts one of those that spoke, never refuses (finding F1)", async () => {
    const metrics = new Metrics();
    const pool = new AcceptPool({ capacity: 4, timeoutMs: 10_000, metrics });
    expect(pool.spokeShare()).toBe(2);
    // a stranger's three CONNECTs wait for their checks, a device's one too: the pool is full
    const { closed, entries } = fill(pool, ["stranger", "stranger", "device", "stranger"]);
    for (const e of entries) e.spoke(() => false);
    const probe = (i: number) => pool.admit("mqtt", "probe", (reason) => closed.push({ name: `probe#${i}`, reason }));
    // a newcomer is admitted: the address holding the most sockets that spoke gives up its oldest
    expect(probe(1)).toBeDefined();
    expect(closed).toEqual([{ name: "stranger#0", reason: "evicted-spoke" }]);
    // 3 spoke, 1 silent: still past the share, the stranger gives up the next
    expect(probe(2)).toBeDefined();
    // within the share now (2 spoke, 2 silent): the oldest silent socket goes, those that spoke stay
    expect(probe(3)).toBeDefined();
    expect(closed).toEqual([
      { name: "stranger#0", reason: "evicted-spoke" },
      { name: "stranger#1", reason: "evicted-spoke" },
      { name: "probe#1", reason: "evicted" },
    ]);
    expect(pool.spokeCount).toBe(2);
    expect(pool.closed("evicted-spoke")).toBe(2);
    expect(await metrics.render()).toContain('gatehouse_pending_closed_total{reason="evicted-spoke"} 2');
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

  it("full of sockets that spoke, the pool evicts the oldest whose client is suspect first, else from the address holding the most", () => {
    const pool = new AcceptPool({ capacity: 3, timeoutMs: 10_000 });
    const { closed, entries } = fill(pool, ["device", "stranger", "stranger"]);
    const failed = new Set<string>();
    entries[0]!.spoke(() => failed.has("device"));
    entries[1]!.spoke(() => failed.has("stranger"));
    entries[2]!.spoke(() => failed.has("stranger"));
    // the device's socket is the oldest, but its CONNECT was its address's only one: the stranger's goes
    expect(pool.admit("mqtt", "newcomer", () => {})).toBeDefined();
    expect(closed).toEqual([{ name: "stranger#1", reason: "evicted-spoke" }]);
    // the device's name or address has failed lately: suspect, it goes before the stranger's
    failed.add("device");
    const last = pool.admit("mqtt", "newcomer", () => {});
    expect(closed.map((c) => c.name)).toEqual(["stranger#1", "device#0"]);
    expect(last).toBeDefined();
    pool.stop();
  });
});
