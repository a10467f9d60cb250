import { afterAll, describe, expect, it } from "bun:test";
import { adminHashConcurrency } from "../../src/core/admins.ts";
import { FairScheduler, FailureThrottle, QueueFullError, boundedKey, pairKey } from "../../src/core/throttle.ts";
import { cleanupTempDirs, memoryLog, slowHash, testCore } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

describe("login throttling under bursts", () => {
  it("200 concurrent wrong attempts for one name from one address get at most the limit's hashes; the right one inside is refused too", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "target", password: "the-right-password" });
    const before = core.credentials.stats.hashVerifies;
    const attempts = Array.from({ length: 200 }, (_, i) =>
      core.credentials.verify("mqtt", "target", i === 150 ? "the-right-password" : `guess-${i}-x`, {
        remote: "10.6.6.6",
      }),
    );
    const results = await Promise.all(attempts);
    expect(core.credentials.stats.hashVerifies - before).toBeLessThanOrEqual(core.credentials.throttle.limit);
    expect(results[150]).toEqual({ ok: false, reason: "throttled" });
    expect(results.filter((r) => !r.ok && r.reason === "throttled").length).toBeGreaterThanOrEqual(
      190 - core.credentials.throttle.limit,
    );
  });

  it("a device gets in while its own address sprays 1000 other names, and while 1000 attempts on its name come from elsewhere", async () => {
    const { core, dir } = testCore();
    const device = await core.credentials.create({ type: "mqtt", username: "press-7", password: "press-7-password" });
    const spray = Array.from({ length: 1000 }, (_, i) =>
      core.credentials.verify("mqtt", `made-up-${i}`, "guess", { remote: "10.1.1.1" }),
    );
    const onName = Array.from({ length: 1000 }, (_, i) =>
      core.credentials.verify("mqtt", "press-7", `guess-${i}`, { remote: `10.2.${Math.floor(i / 250)}.${i % 250}` }),
    );
    // right after a restart: nothing cached for the device
    const { core: fresh } = testCore({ dir });
    const sprayFresh = Array.from({ length: 1000 }, (_, i) =>
      fresh.credentials.verify("mqtt", `made-up-${i}`, "guess", { remote: "10.1.1.1" }),
    );
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
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          core.credentials.verify("mqtt", big(batch * 1000 + i), "guess", { remote: `10.8.${batch}.${i % 250}` }),
        ),
      );
    }
    Bun.gc(true);
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    const logBytes = lines.reduce((n, l) => n + l.length + 1, 0);
    expect(heapGrowth).toBeLessThan(20 * 1024 * 1024);
    expect(logBytes).toBeLessThan(5 * 1024 * 1024);
    expect(lines.some((l) => l.includes("…(+"))).toBe(true); // values are cut, with a marker
  }, 60_000);
});

describe("the device password-check line", () => {
  it("is bounded: a newcomer that ranks no better than the worst waiting is refused unchecked; a clean one takes an unclean one's place and runs next; attempts whose clients left never run", async () => {
    const { core } = testCore({ options: { maxQueuedLogins: 8 } });
    const line = core.credentials.hashLine as unknown as FairScheduler;
    const hash = await slowHash("the right one");
    core.credentials.adoptMany(
      ["n0", "n1", "n2", "n3"].map((username) => ({ type: "mqtt" as const, username, passwordHash: hash })),
    );
    const strangers = ["10.9.0.1", "10.9.0.2"];
    // each stranger's first guess is checked and fails: its address is unclean from now on
    for (const remote of strangers)
      expect(await core.credentials.verify("mqtt", "n0", "first guess", { remote })).toEqual({
        ok: false,
        reason: "wrong-password",
      });
    // both check slots held by checks that end when the test says (a CPU busy with two slow hashes)
    const releases = [0, 1].map(() => {
      let release!: () => void;
      void line.run("held", true, () => new Promise<void>((r) => (release = r)));
      return release;
    });
    // 12 more guesses, each from a client that can go away: 8 wait, the rest rank no better and are refused
    const clients: AbortController[] = [];
    const guesses = Array.from({ length: 12 }, (_, i) => {
      const client = new AbortController();
      clients.push(client);
      const remote = strangers[i % 2]!;
      return core.credentials.verify("mqtt", `n${i % 4}`, `guess ${i}`, { remote }, client.signal);
    });
    expect(line.queued).toBe(8);
    expect(await Promise.all(guesses.slice(8))).toEqual(Array(4).fill({ ok: false, reason: "busy" }));
    // the device from a clean address takes the place of a waiting guess, and is checked next
    const verdicts: string[] = [];
    core.events.on("login.succeeded", (e) => verdicts.push(e.integration.username));
    core.events.on("login.failed", (e) => e.reason === "wrong-password" && verdicts.push(e.username));
    const device = core.credentials.verify("mqtt", "n0", "the right one", { remote: "10.9.0.3" });
    expect(line.queued).toBe(8);
    expect(line.stats.refused).toBe(5); // the four, and the guess the device replaced
    releases[0]!();
    expect((await device).ok).toBe(true);
    expect(verdicts[0]).toBe("n0");
    // every stranger goes away: what still waits leaves the line without a hash
    const checksAtClose = core.credentials.stats.hashVerifies;
    const runningAtClose = line.running;
    for (const c of clients) c.abort();
    releases[1]!();
    const results = await Promise.all(guesses);
    expect(line.queued).toBe(0);
    expect(results.filter((r) => !r.ok && r.reason === "abandoned").length).toBeGreaterThanOrEqual(6);
    await eventually(() => line.running === 0);
    expect(core.credentials.stats.hashVerifies - checksAtClose).toBeLessThanOrEqual(runningAtClose);
  }, 30_000);

  it("a new (address, name) pair gets no priority for being new: a line full of strangers' first guesses from new addresses at a name under attack lets in a device whose name is not, and first a device that has logged in before from its address", async () => {
    const { core } = testCore({ options: { maxQueuedLogins: 8 } });
    const line = core.credentials.hashLine as unknown as FairScheduler;
    const hash = await slowHash("right");
    core.credentials.adoptMany(
      ["target", "fresh", "returning"].map((username) => ({ type: "mqtt" as const, username, passwordHash: hash })),
    );
    // the returning device has logged in from its address before; then its password is reset (no cache)
    expect((await core.credentials.verify("mqtt", "returning", "right", { remote: "10.1.0.1" })).ok).toBe(true);
    const returning = core.credentials.findByUsername("returning")!;
    await core.credentials.resetPassword(returning.id, "right again");
    // one failed guess at the target from elsewhere: the name is under attack
    expect((await core.credentials.verify("mqtt", "target", "guess", { remote: "10.9.0.1" })).ok).toBe(false);
    const releases = [0, 1].map(() => {
      let release!: () => void;
      void line.run("held", true, () => new Promise<void>((r) => (release = r)));
      return release;
    });
    // 8 strangers from 8 new addresses, one guess each at the target: new pairs, clean addresses
    const clients: AbortController[] = [];
    const guesses = Array.from({ length: 8 }, (_, i) => {
      const client = new AbortController();
      clients.push(client);
      return core.credentials.verify("mqtt", "target", `guess ${i}`, { remote: `10.8.0.${i + 1}` }, client.signal);
    });
    expect(line.queued).toBe(8);
    // one more such guess ranks no better than those waiting: busy, unchecked
    expect(await core.credentials.verify("mqtt", "target", "one more", { remote: "10.8.1.1" })).toEqual({
      ok: false,
      reason: "busy",
    });
    // a never-seen device whose name nobody fails on, and the returning one, each take a guess's place
    const verdicts: string[] = [];
    core.events.on("login.succeeded", (e) => verdicts.push(e.integration.username));
    core.events.on("login.failed", (e) => e.reason === "wrong-password" && verdicts.push(e.username));
    const fresh = core.credentials.verify("mqtt", "fresh", "right", { remote: "10.2.0.1" });
    const back = core.credentials.verify("mqtt", "returning", "right again", { remote: "10.1.0.1" });
    expect(line.queued).toBe(8);
    expect(line.stats.refused).toBe(3);
    // the returning device runs first, then the new one, before any stranger's guess
    releases[0]!();
    expect((await back).ok).toBe(true);
    expect((await fresh).ok).toBe(true);
    expect(verdicts.slice(0, 2)).toEqual(["returning", "fresh"]);
    for (const c of clients) c.abort();
    releases[1]!();
    await Promise.all(guesses);
    await eventually(() => line.running === 0);
  }, 30_000);

  it("a guess is booked against its pair and address when its hash runs, even if the client that sent it first has left", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "target", password: "the-right-password" });
    const first = new AbortController();
    const a = core.credentials.verify("mqtt", "target", "same guess", { remote: "10.7.0.1" }, first.signal);
    const b = core.credentials.verify("mqtt", "target", "same guess", { remote: "10.7.0.1" });
    first.abort();
    expect(await a).toEqual({ ok: false, reason: "abandoned" });
    expect(await b).toEqual({ ok: false, reason: "wrong-password" });
    expect(core.credentials.throttle.failures(pairKey("10.7.0.1", "target"))).toBe(1);
    expect(core.credentials.suspect("10.7.0.1", "another name")).toBe(true); // the address has failed
    expect(core.credentials.suspect("10.7.0.2", "target")).toBe(false);
  });
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
    const runs = [
      s.run("a", false, job("first")),
      s.run("a", false, job("a1")),
      s.run("a", false, job("a2")),
      s.run("b", false, job("b1")),
      s.run("c", true, job("c-clean")),
    ];
    release();
    await Promise.all(runs);
    expect(order).toEqual(["first", "c-clean", "a1", "b1", "a2"]);
  });

  it("asks `clean` when a slot frees; busy lanes wait behind lanes with one attempt of the same standing; a full line refuses the worst", async () => {
    const s = new FairScheduler(1, { maxQueued: 4, busyLanesLast: true });
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const failed = new Set<string>();
    const job = (name: string) => async () => {
      order.push(name);
      if (name === "first") await gate;
    };
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => "ran",
        (e) => (e instanceof QueueFullError ? "refused" : "error"),
      );
    const runs = [
      outcome(s.run("x", true, job("first"))),
      outcome(s.run("busy", true, job("busy-1"))),
      outcome(s.run("busy", true, job("busy-2"))),
      outcome(s.run("busy", true, job("busy-3"))),
      outcome(s.run("failing", () => !failed.has("failing"), job("failing-1"))),
      // the line is full (4): this one ranks no better than the worst waiting (the busy lane's): refused
      outcome(s.run("busy", true, job("busy-4"))),
      // a clean lane with one attempt ranks better: it takes the place of the busy lane's newest
      outcome(s.run("person", true, job("person"))),
    ];
    failed.add("failing"); // its record changed while it waited: asked again when the slot frees
    release();
    expect(await Promise.all(runs)).toEqual(["ran", "ran", "ran", "refused", "ran", "refused", "ran"]);
    // the failing lane's record went bad while it waited: it runs after the clean busy lane
    expect(order).toEqual(["first", "person", "busy-1", "busy-2", "failing-1"]);
    expect(s.stats.peakRunning).toBe(1);
  });

  it("drops a waiting attempt whose client went away, without running it", async () => {
    const s = new FairScheduler(1);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const ran: string[] = [];
    const first = s.run("a", true, async () => void (ran.push("first"), await gate));
    const gone = new AbortController();
    const waiting = s.run("b", true, async () => void ran.push("gone"), gone.signal);
    gone.abort(new Error("client closed"));
    await expect(waiting).rejects.toThrow("client closed");
    release();
    await first;
    expect(ran).toEqual(["first"]);
    expect(s.queued).toBe(0);
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
      Array.from({ length: 200 }, (_, i) =>
        core.admins.signIn("admin", i === 100 ? "the-admin-password" : `guess-${i}`, "10.6.6.6").then(
          () => "in",
          (e: { code: string }) => e.code,
        ),
      ),
    );
    expect(outcomes[100]).toBe("rate_limited");
    expect(outcomes.filter((o) => o === "unauthorized").length).toBeLessThanOrEqual(5);
    expect(core.activity.list({ action: "admin.failed" }).length).toBeLessThanOrEqual(5);
  });

  it("the real admin from a clean address is answered ahead of a spray from 50 addresses (250 guesses); checks run one at a time", async () => {
    const core = await setup();
    const failures = () => core.activity.list({ action: "admin.failed", limit: 1_000 }).length;
    // 50 addresses, 5 guesses each (their pair limit), all sent at once
    const spray = Array.from({ length: 250 }, (_, i) =>
      core.admins.signIn("admin", `guess-${i}`, `10.66.0.${i % 50}`).then(
        () => "in",
        (e: { code: string }) => e.code,
      ),
    );
    // the admin signs in right behind the spray, then again from another clean address once some
    // guesses have been answered: each time only the check already running finishes before the admin's
    for (const [address, answeredFirst] of [
      ["10.0.0.1", 0],
      ["10.0.0.2", 5],
    ] as const) {
      await eventually(() => failures() >= answeredFirst);
      const waitingAtArrival = core.admins.scheduler?.queued ?? 0;
      const failedAtArrival = failures();
      const { session } = await core.admins.signIn("admin", "the-admin-password", address);
      const failedBeforeAdmin = failures() - failedAtArrival;
      expect(session.username).toBe("admin");
      expect({ address, failedBeforeAdmin: failedBeforeAdmin <= 2 * adminHashConcurrency }).toEqual({
        address,
        failedBeforeAdmin: true,
      });
      expect(waitingAtArrival).toBeGreaterThanOrEqual(40); // ahead of a long line, not after it
      expect(core.admins.scheduler.queued).toBeGreaterThan(0);
    }
    const outcomes = await Promise.all(spray);
    expect(outcomes.filter((o) => o === "in")).toEqual([]);
    expect(new Set(outcomes)).toEqual(new Set(["unauthorized", "rate_limited"]));
    // bounded: one argon2id at a time, whatever the spray
    expect(core.admins.scheduler.stats.peakRunning).toBeLessThanOrEqual(adminHashConcurrency);
  }, 60_000);

  it("admins and devices wait in separate lines: a device storm does not hold up the admin", async () => {
    const core = await setup();
    await core.credentials.create({ type: "mqtt", username: "press-1", password: "press-1-chosen-password" });
    // 300 devices' worth of wrong chosen-password logins from 300 clean addresses (one hash each)
    const storm = Array.from({ length: 300 }, (_, i) =>
      core.credentials.verify("mqtt", "press-1", `wrong-${i}`, { remote: `10.77.${i >> 8}.${i & 255}` }),
    );
    await eventually(() => core.credentials.stats.hashVerifies >= 2);
    await core.admins.signIn("admin", "the-admin-password", "10.0.0.1");
    expect(core.credentials.stats.hashVerifies).toBeLessThan(300); // the devices' line was still long
    await Promise.all(storm);
  }, 60_000);

  it("nobody locks the real admin out from another address; set-password ends a lock-out", async () => {
    const core = await setup();
    await Promise.all(
      Array.from({ length: 4 }, async (_, a) => {
        for (let i = 0; i < 6; i++)
          await core.admins.signIn("admin", `guess-${i}`, `10.9.0.${a}`).catch(() => undefined);
      }),
    );
    expect((await core.admins.signIn("admin", "the-admin-password", "10.0.0.1")).session.username).toBe("admin");
    await expect(core.admins.signIn("admin", "the-admin-password", "10.9.0.1")).rejects.toMatchObject({
      code: "rate_limited",
    });
    await core.admins.setPassword("admin", "a-new-admin-password");
    expect((await core.admins.signIn("admin", "a-new-admin-password", "10.9.0.1")).session.username).toBe("admin");
    expect(core.activity.list({ action: "admin.signed-in" })[0]).toMatchObject({
      subject: "admin",
      detail: "from 10.9.0.1",
    });
  }, 60_000);
});
