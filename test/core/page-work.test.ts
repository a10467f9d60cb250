import { afterAll, describe, expect, it } from "bun:test";
import { EventBus } from "../../src/core/events.ts";
import { LoginLog } from "../../src/core/login-log.ts";
import { kickReasons } from "../../src/core/sessions.ts";
import { describeUserAgent } from "../../src/lib/user-agent.ts";
import { cleanupTempDirs, testCore } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

/**
 * What the Integrations page needs of the core (issue 26, part A): failed logins grouped, onboarding
 * attempts that are no failures, one activity entry per approval, the origin of the last login kept,
 * search beyond the username, and bulk changes in one transaction with one entry per integration.
 */

const failed = (events: EventBus, username: string, remote: string, reason = "wrong-password" as const) =>
  events.emit("login.failed", { username, type: "mqtt", reason, meta: { remote, protocol: "MQTT 3.1.1" } });

describe("failed logins", () => {
  it("are grouped by username, address and reason, with a count and first and last seen", () => {
    let now = 1_000_000;
    const events = new EventBus();
    const log = new LoginLog(events, 200, () => now);
    for (let i = 0; i < 5; i++, now += 1000) failed(events, "press-1", "10.0.0.7");
    failed(events, "press-1", "10.0.0.8");
    failed(events, "press-1", "10.0.0.7", "unknown-user" as never);
    const groups = log.grouped();
    expect(groups).toHaveLength(3);
    expect(groups.find((g) => g.remote === "10.0.0.7" && g.reason === "wrong-password")).toMatchObject({
      username: "press-1",
      type: "mqtt",
      protocol: "MQTT 3.1.1",
      count: 5,
      firstAt: 1_000_000,
      lastAt: 1_004_000,
    });
    // the one seen last comes first
    expect(groups[0]).toMatchObject({ remote: "10.0.0.7", reason: "unknown-user", count: 1 });
    expect(log.recent(10)).toHaveLength(7); // one by one too, as before
  });

  it("stay bounded under a spray of names; the last hour is counted exactly, not capped", () => {
    let now = 5_000_000;
    const events = new EventBus();
    const log = new LoginLog(events, 50, () => now);
    for (let i = 0; i < 1000; i++) failed(events, `guess-${i}`, "10.9.9.9");
    expect(log.grouped()).toHaveLength(50);
    expect(log.grouped()[0]!.username).toBe("guess-999");
    expect(log.recent(500)).toHaveLength(50);
    expect(log.lastHour()).toBe(1000);
    now += 61 * 60_000;
    expect(log.lastHour()).toBe(0);
  });

  it("an unknown name the open onboarding window takes is a request, not a failure", async () => {
    const { core } = testCore();
    await core.credentials.verify("mqtt", "closed-window", "its-password-1", { remote: "10.0.0.1" });
    expect(core.loginLog.recent(5).map((f) => f.username)).toEqual(["closed-window"]);
    core.onboarding.open({ minutes: 5, types: ["mqtt"], by: "test" });
    await core.credentials.verify("mqtt", "new-press", "its-password-2", { remote: "10.0.0.2" });
    await eventually(() => expect(core.onboarding.list().map((r) => r.username)).toEqual(["new-press"]));
    // a type the window is not open for, and a known name with a wrong password, are failures as ever
    await core.credentials.verify("opcua", "other-type", "its-password-3", { remote: "10.0.0.3" });
    await core.credentials.create({ type: "mqtt", username: "known", password: "right-password" });
    await core.credentials.verify("mqtt", "known", "wrong-password", { remote: "10.0.0.4" });
    expect(core.loginLog.grouped().map((g) => g.username)).toEqual(["known", "other-type", "closed-window"]);
    expect(core.loginLog.lastHour()).toBe(3);
  });
});

describe("onboarding approval", () => {
  it("writes one activity entry, with the permissions it was given", async () => {
    const { core } = testCore();
    core.onboarding.open({ minutes: 5, by: "test" });
    await core.onboarding.consider("mqtt", "press-77", "press-77-password", { remote: "10.0.0.5" });
    const before = core.activity.list().length;
    const [r] = core.onboarding.list();
    const { approved } = core.onboarding.approve([r!.id], { publishAcl: ["plant/#"], subscribeAcl: ["plant/cmd/#"] });
    expect(approved[0]).toMatchObject({ publishAcl: ["plant/#"], subscribeAcl: ["plant/cmd/#"] });
    const rows = core.activity.list().slice(0, core.activity.list().length - before);
    expect(rows.map((a) => a.action)).toEqual(["onboarding.approved"]);
    expect(rows[0]!.detail).toContain("plant/cmd/#");
    // an integration made on the page is still recorded as created
    await core.credentials.create({ type: "mqtt", username: "made-by-hand" });
    expect(core.activity.list({ action: "integration.created" }).map((a) => a.subject)).toEqual(["made-by-hand"]);
  });
});

describe("the last login's origin", () => {
  it("is kept with its time, written behind, and read back after a restart", async () => {
    const { core, dir, db } = testCore();
    const { integration, password } = await core.credentials.create({ type: "mqtt", username: "origin-1" });
    await core.credentials.verify("mqtt", "origin-1", password, { remote: "10.1.2.3", clientId: "plc-77" });
    expect(core.credentials.get(integration.id)).toMatchObject({
      lastLoginRemote: "10.1.2.3",
      lastLoginClientId: "plc-77",
    });
    expect(core.credentials.flushLastLogins()).toBe(1);
    db.$client.close();
    const again = testCore({ dir }).core;
    expect(again.credentials.get(integration.id)).toMatchObject({
      lastLoginRemote: "10.1.2.3",
      lastLoginClientId: "plc-77",
    });
  });
});

describe("search", () => {
  it("finds by username, description, last login's client id and address, and a live session's", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "alpha", description: "Press line 3, hall 7" });
    const { password } = await core.credentials.create({ type: "mqtt", username: "beta" });
    const { integration: gamma } = await core.credentials.create({ type: "opcua", username: "gamma" });
    await core.credentials.verify("mqtt", "beta", password, { remote: "192.168.7.40", clientId: "Siemens-S7" });
    const names = (q: string, live?: Set<number>) =>
      core.credentials
        .list({ q }, new Set(), live)
        .rows.map((r) => r.username)
        .sort();
    expect(names("hall 7")).toEqual(["alpha"]);
    expect(names("siemens")).toEqual(["beta"]);
    expect(names("192.168.7")).toEqual(["beta"]);
    // a live session (not the last login) found by the registry
    core.sessions.open({
      integration: core.credentials.get(gamma.id)!,
      type: "opcua",
      clientId: "urn:uaexpert",
      remote: "10.20.30.40",
      kick: () => {},
    });
    expect(names("uaexpert", core.sessions.matching("uaexpert"))).toEqual(["gamma"]);
    expect(names("10.20.30", core.sessions.matching("10.20.30"))).toEqual(["gamma"]);
    expect(core.sessions.matching("")).toEqual(new Set());
  });

  it("says which page was asked for when it is past the last one", async () => {
    const { core } = testCore();
    for (let i = 0; i < 3; i++) await core.credentials.create({ type: "mqtt" });
    const page = core.credentials.list({ page: 9, pageSize: 2 });
    expect(page).toMatchObject({ page: 2, pages: 2, pastEnd: 9 });
    expect(core.credentials.list({ page: 2, pageSize: 2 }).pastEnd).toBeUndefined();
  });
});

describe("bulk changes", () => {
  it("deactivate, set permissions, activate and delete many in one go: events, kicks, one entry each", async () => {
    const { core } = testCore();
    const made = await core.credentials.createMany(
      Array.from({ length: 300 }, (_, i) => ({ type: "mqtt" as const, username: `bulk-${i}` })),
    );
    const ids = made.map((m) => m.integration.id);
    const kicked: string[] = [];
    for (const m of made.slice(0, 5))
      core.sessions.open({ integration: m.integration, type: "mqtt", kick: (reason) => kicked.push(reason) });
    const entries = () => (core.db.$client.query("SELECT count(*) AS n FROM activity").get() as { n: number }).n;
    const start = entries();

    const off = core.activity.batch(() => core.credentials.setActiveMany([...ids, 999_999, ids[0]!], false));
    expect(off).toHaveLength(300); // an unknown id and a repeat are skipped
    expect(ids.every((id) => core.credentials.get(id)!.active === false)).toBe(true);
    expect(kicked).toEqual(Array(5).fill(kickReasons.deactivated));
    expect(core.sessions.size).toBe(0);
    expect(core.activity.list({ action: "integration.deactivated", limit: 500 })).toHaveLength(300);
    expect(core.activity.list({ action: "session.kicked" })).toHaveLength(5);
    expect(entries() - start).toBe(305);
    // already deactivated: nothing changes, nothing is recorded
    expect(core.credentials.setActiveMany(ids, false)).toEqual([]);
    // they stay deactivated in the database, not only in memory
    core.credentials.reload();
    expect(core.credentials.get(ids[7]!)!.active).toBe(false);

    const scoped = core.activity.batch(() =>
      core.credentials.setPermissionsMany(ids.slice(0, 10), { subscribeAcl: ["plant/#"] }),
    );
    expect(scoped).toHaveLength(10);
    expect(core.credentials.get(ids[0]!)).toMatchObject({ publishAcl: ["#"], subscribeAcl: ["plant/#"] });
    expect(core.activity.list({ action: "integration.permissions-changed" })).toHaveLength(10);
    expect(() => core.credentials.setPermissionsMany(ids, { publishAcl: ["bad/#/x"] })).toThrow();

    core.activity.batch(() => core.credentials.setActiveMany(ids.slice(0, 3), true));
    expect(core.credentials.get(ids[2]!)!.active).toBe(true);

    const removed = core.activity.batch(() => core.credentials.removeMany(ids.slice(0, 250)));
    expect(removed).toHaveLength(250);
    expect(core.credentials.count()).toBe(50);
    core.credentials.reload();
    expect(core.credentials.count()).toBe(50);
    expect(core.activity.list({ action: "integration.deleted", limit: 500 })).toHaveLength(250);
  });
});

describe("describeUserAgent", () => {
  it("names the browser and system of common agents", () => {
    const cases: [string, string][] = [
      [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Edge 131 on Windows",
      ],
      ["Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133 on Linux"],
      [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Safari 17 on iOS",
      ],
      [
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Chrome 131 on Android",
      ],
      ["curl/8.5.0", "curl 8.5.0"],
      ["", "unknown client"],
    ];
    for (const [ua, expected] of cases) expect(describeUserAgent(ua)).toBe(expected);
  });
});
