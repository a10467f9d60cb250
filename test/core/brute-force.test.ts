import { afterAll, describe, expect, it } from "bun:test";
import { FairScheduler, FailureThrottle, boundedKey } from "../../src/core/throttle.ts";
import { cleanupTempDirs, memoryLog, testCore } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

describe("login throttling under bursts", () => {
  it("200 concurrent wrong attempts for one name from one address get at most the limit's hashes; the right one inside is refused too", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "target", password: "the-right-password" });
    const before = core.credentials.stats.hashVerifies;
    const attempts = Array.from({ length: 200 }, (_, i) => core.credentials.verify("mqtt", "target", i === 150 ? "the-right-password" : `guess-${i}-x`, { remote: "10.6.6.6" }));
    const results = await Promise.all(attempts);
    expect(core.credentials.stats.hashVerifies - before).toBeLessThanOrEqual(core.credentials.throttle.limit);
    expect(results[150]).toEqual({ ok: false, reason: "throttled" });
    expect(results.filter((r) => !r.ok && r.reason === "throttled").length).toBeGreaterThanOrEqual(190 - core.credentials.throttle.limit);
  });

  it("a device gets in while its own address sprays 1000 other names, and while 1000 attempts on its name come from elsewhere", async () => {
    const { core, dir } = testCore();
    const device = await core.credentials.create({ type: "mqtt", username: "press-7", password: "press-7-password" });
    const spray = Array.from({ length: 1000 }, (_, i) => core.credentials.verify("mqtt", `made-up-${i}`, "guess", { remote: "10.1.1.1" }));
    const onName = Array.from({ length: 1000 }, (_, i) => core.credentials.verify("mqtt", "press-7", `guess-${i}`, { remote: `10.2.${Math.floor(i / 250)}.${i % 250}` }));
    // right after a restart: nothing cached for the device
    const { core: fresh } = testCore({ dir });
    const sprayFresh = Array.from({ length: 1000 }, (_, i) => fresh.credentials.verify("mqtt", `made-up-${i}`, "guess", { remote: "10.1.1.1" }));
    expect((await fresh.credentials.verify("mqtt", "press-7", device.password, { remote: "10.1.1.1" })).ok).toBe(true);
    expect((await core.credentials.verify("mqtt", "press-7", device.password, { remote: "10.1.1.1" })).ok).toBe(true);
    await Promise.all([...spray, ...onName, ...sprayFresh]);
    expect(fresh.credentials.stats.hashVerifies).toBe(1); // made-up names cost no hash
  }, 30_000);

  it("throttle keys stay small whatever the name; 10 000 failures with 64 KB names grow memory and log by little", async () => {
    expect(boundedKey("x".repeat(65_536)).length).toBeLessThanOrEqual(128);
    const { log, lines } = memoryLog();
    const { core } = testCore({ log });
    Bun.gc(true);
    const heapBefore = process.memoryUsage().heapUsed;
    const big = (i: number) => `${i}-${"n".repeat(65_536)}`;
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 1000 }, (_, i) => core.credentials.verify("mqtt", big(batch * 1000 + i), "guess", { remote: `10.8.${batch}.${i % 250}` })));
    }
    Bun.gc(true);
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    const logBytes = lines.reduce((n, l) => n + l.length + 1, 0);
    expect(heapGrowth).toBeLessThan(20 * 1024 * 1024);
    expect(logBytes).toBeLessThan(5 * 1024 * 1024);
    expect(lines.some((l) => l.includes("…(+"))).toBe(true); // values are cut, with a marker
  }, 60_000);
});

describe("FairScheduler", () => {
  it("runs a few at a time, round robin over lanes, the clean tier first", async () => {
    const s = new FairScheduler(1);
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const job = (name: string) => async () => {
      order.push(name);
      if (name === "first") await gate;
    };
    const runs = [s.run("a", false, job("first")), s.run("a", false, job("a1")), s.run("a", false, job("a2")), s.run("b", false, job("b1")), s.run("c", true, job("c-clean"))];
    release();
    await Promise.all(runs);
    expect(order).toEqual(["first", "c-clean", "a1", "b1", "a2"]);
  });

  it("FailureThrottle reserves when an attempt starts and settles once", () => {
    const t = new FailureThrottle(2, 60_000);
    const a = t.reserve("k")!;
    const b = t.reserve("k")!;
    expect(t.reserve("k")).toBeUndefined();
    a(true);
    a(true); // settles once
    b(false);
    expect(t.failures("k")).toBe(1);
    expect(t.blocked("k")).toBe(false);
  });
});

describe("admin sign-in", () => {
  const setup = async () => {
    const { core } = testCore();
    await core.admins.setPassword("admin", "the-admin-password");
    return core;
  };

  it("a burst of 200 from one address gets at most 5 checks, and the right password inside it is refused", async () => {
    const core = await setup();
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => core.admins.signIn("admin", i === 100 ? "the-admin-password" : `guess-${i}`, "10.6.6.6").then(() => "in", (e: { code: string }) => e.code)),
    );
    expect(outcomes[100]).toBe("rate_limited");
    expect(outcomes.filter((o) => o === "unauthorized").length).toBeLessThanOrEqual(5);
    expect(core.activity.list({ action: "admin.failed" }).length).toBeLessThanOrEqual(5);
  });

  it("nobody locks the real admin out from another address; set-password ends a lock-out", async () => {
    const core = await setup();
    await Promise.all(Array.from({ length: 4 }, async (_, a) => {
      for (let i = 0; i < 6; i++) await core.admins.signIn("admin", `guess-${i}`, `10.9.0.${a}`).catch(() => undefined);
    }));
    expect((await core.admins.signIn("admin", "the-admin-password", "10.0.0.1")).session.username).toBe("admin");
    await expect(core.admins.signIn("admin", "the-admin-password", "10.9.0.1")).rejects.toMatchObject({ code: "rate_limited" });
    await core.admins.setPassword("admin", "a-new-admin-password");
    expect((await core.admins.signIn("admin", "a-new-admin-password", "10.9.0.1")).session.username).toBe("admin");
    expect(core.activity.list({ action: "admin.signed-in" })[0]).toMatchObject({ subject: "admin", detail: "from 10.9.0.1" });
  }, 60_000);
});
