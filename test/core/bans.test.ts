import { afterAll, describe, expect, it } from "bun:test";
import { BanList, maxBans, parseBanAddress } from "../../src/core/bans.ts";
import { closeDatabase } from "../../src/db/client.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { cleanupTempDirs, testCore } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

describe("ban addresses", () => {
  it("canonicalises an address or block (host bits cleared, IPv4-mapped as IPv4, RFC 5952 IPv6)", () => {
    expect(parseBanAddress("192.0.2.7").text).toBe("192.0.2.7");
    expect(parseBanAddress("10.1.2.3/8").text).toBe("10.0.0.0/8");
    expect(parseBanAddress("::ffff:192.0.2.7").text).toBe("192.0.2.7");
    expect(parseBanAddress("::ffff:10.0.0.0/104").text).toBe("10.0.0.0/8");
    expect(parseBanAddress("2001:DB8:0:0:0:0:0:1").text).toBe("2001:db8::1");
    expect(parseBanAddress("2001:db8:ffff::/32").text).toBe("2001:db8::/32");
    expect(parseBanAddress("0.0.0.0/0").text).toBe("0.0.0.0/0");
  });

  for (const bad of [
    "",
    "example.com",
    "192.0.2.256",
    "10.0.0.0/33",
    "2001:db8::/129",
    "::ffff:10.0.0.0/95",
    "fe80::1%eth0",
    "192.0.2.7:1883",
    "[::1]",
    "10.0.0.0/-1",
    "10.0.0.0/8/8",
    "1".repeat(64 * 1024),
    "10.0.0.0/ 8",
  ]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 24))}`, () => {
      expect(() => parseBanAddress(bad)).toThrow();
    });
  }

  it("matches exact addresses, IPv4 and IPv6 blocks, and IPv4-mapped IPv6 peers as IPv4", () => {
    const { core } = testCore();
    const bans = core.bans;
    bans.add({ kind: "address", value: "192.0.2.7", minutes: 5 });
    bans.add({ kind: "address", value: "10.20.0.0/16", minutes: 5 });
    bans.add({ kind: "address", value: "2001:db8:aa::/48", minutes: 5 });
    const cases: [string, boolean][] = [
      ["192.0.2.7", true],
      ["::ffff:192.0.2.7", true],
      ["192.0.2.8", false],
      ["10.20.255.1", true],
      ["::ffff:10.20.0.1", true],
      ["10.21.0.1", false],
      ["2001:db8:aa:1::9", true],
      ["2001:db8:ab::1", false],
      ["::192.0.2.7", false], // IPv4-compatible (deprecated) is not IPv4-mapped
      ["unknown", false],
      ["local", false],
    ];
    for (const [remote, banned] of cases) expect([remote, bans.addressBanned(remote)]).toEqual([remote, banned]);
    expect(bans.match("anyone", { remote: "::ffff:10.20.9.9" })?.value).toBe("10.20.0.0/16");
    expect(bans.refused.address).toBe(6);
  });

  it("a ban of 0.0.0.0/0 covers every IPv4 client and no IPv6 one", () => {
    const { core } = testCore();
    core.bans.add({ kind: "address", value: "0.0.0.0/0", minutes: 1 });
    expect(core.bans.addressBanned("203.0.113.1")).toBe(true);
    expect(core.bans.addressBanned("::ffff:203.0.113.1")).toBe(true);
    expect(core.bans.addressBanned("2001:db8::1")).toBe(false);
  });

  it("an IPv6 block that contains the IPv4-mapped range (::/0, ::/80) covers every IPv4 client too", () => {
    const { core } = testCore();
    const all = core.bans.add({ kind: "address", value: "::/0", minutes: 1 });
    for (const remote of ["203.0.113.1", "::ffff:127.0.0.1", "127.0.0.1", "2001:db8::1", "::1"])
      expect([remote, core.bans.addressBanned(remote)]).toEqual([remote, true]);
    expect(core.bans.match("anyone", { remote: "10.0.0.1" })?.value).toBe("::/0");
    core.bans.remove(all.id);
    core.bans.add({ kind: "address", value: "::/80", minutes: 1 });
    expect(core.bans.addressBanned("198.51.100.4")).toBe(true);
    expect(core.bans.addressBanned("::1")).toBe(true);
    expect(core.bans.addressBanned("2001:db8::1")).toBe(false);
    // blocks beside the mapped range leave IPv4 alone
    const { core: other } = testCore();
    other.bans.add({ kind: "address", value: "::/81", minutes: 1 });
    other.bans.add({ kind: "address", value: "64:ff9b::/96", minutes: 1 });
    expect(other.bans.addressBanned("198.51.100.4")).toBe(false);
    expect(other.bans.addressBanned("64:ff9b::1")).toBe(true);
  });

  it("covers (the own-address check) and live sessions judge an IPv4 client inside ::/0 the same way", () => {
    for (const [block, remote, covered] of [
      ["::/0", "127.0.0.1", true],
      ["::/0", "::ffff:127.0.0.1", true],
      ["::/80", "192.0.2.9", true],
      ["::/81", "192.0.2.9", false],
      ["2001:db8::/32", "192.0.2.9", false],
      ["0.0.0.0/0", "::1", false],
    ] as const)
      expect([block, remote, BanList.covers(block, remote)]).toEqual([block, remote, covered]);
    expect(BanList.matchesSession({ kind: "address", value: "::/0" }, { username: "u", remote: "10.1.2.3" })).toBe(
      true,
    );
  });
});

describe("the ban list", () => {
  it("matches client ids and usernames exactly; refuses empty, oversize and doubled values", () => {
    const { core } = testCore();
    core.bans.add({ kind: "clientId", value: "plc-7", minutes: 5 });
    core.bans.add({ kind: "username", value: "Sensor", minutes: 5 });
    expect(core.bans.match("x", { clientId: "plc-7" })?.kind).toBe("clientId");
    expect(core.bans.match("x", { clientId: "plc-70" })).toBeUndefined();
    expect(core.bans.match("Sensor", {})?.kind).toBe("username");
    expect(core.bans.match("sensor", {})).toBeUndefined();
    expect(() => core.bans.add({ kind: "username", value: "", minutes: 5 })).toThrow(/empty/);
    expect(() => core.bans.add({ kind: "username", value: "u".repeat(257), minutes: 5 })).toThrow(/256/);
    expect(() => core.bans.add({ kind: "username", value: "Sensor", minutes: 5 })).toThrow(/already banned/);
    expect(() => core.bans.add({ kind: "address", value: "10.0.0.1/8", minutes: 5 })).not.toThrow();
    expect(() => core.bans.add({ kind: "address", value: "10.9.9.9/8", minutes: 5 })).toThrow(/already banned/);
    for (const minutes of [0, -1, 1.5, 525_601, Number.NaN])
      expect(() => core.bans.add({ kind: "clientId", value: `m${minutes}`, minutes })).toThrow(/minutes/);
  });

  it("expires by itself: refuses nothing after its time, the sweep deletes it and says so in the activity log", () => {
    let now = 1_000_000;
    const { core, db } = testCore();
    const bans = new BanList(db, core.activity, core.sessions, () => now);
    const ban = bans.add({ kind: "username", value: "temp", minutes: 2 });
    expect(ban.expiresAt).toBe(now + 120_000);
    expect(bans.match("temp", {})).toBeDefined();
    now += 119_999;
    expect(bans.match("temp", {})).toBeDefined();
    now += 1;
    expect(bans.match("temp", {})).toBeUndefined();
    expect(bans.list()).toEqual([]);
    expect(bans.sweep()).toBe(1);
    expect(db.$client.query("SELECT count(*) AS n FROM bans").get()).toEqual({ n: 0 });
    const actions = core.activity.list({ action: "ban." }).map((r) => [r.action, r.subject]);
    expect(actions).toEqual([
      ["ban.expired", "username temp"],
      ["ban.added", "username temp"],
    ]);
    // an expired ban's value can be banned again
    expect(() => bans.add({ kind: "username", value: "temp", minutes: 1 })).not.toThrow();
  });

  it("survives a restart: a new process reads the same bans", () => {
    const { core, dir, db } = testCore();
    core.bans.add({ kind: "address", value: "2001:db8::/32", minutes: 60 });
    core.bans.add({ kind: "clientId", value: "c1", minutes: 60 });
    core.stop();
    closeDatabase(db);
    const again = testCore({ dir });
    expect(again.core.bans.list().map((b) => `${b.kind} ${b.value}`)).toEqual(["address 2001:db8::/32", "clientId c1"]);
    expect(again.core.bans.addressBanned("2001:db8:1::1")).toBe(true);
  });

  it(`holds at most ${maxBans} live bans (a 409 past it); 10 000 cost no scan per connect`, () => {
    const { core, db } = testCore();
    const t = Date.now();
    const insert = db.$client.prepare(
      "INSERT INTO bans (kind, value, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, 'test')",
    );
    db.$client.transaction(() => {
      for (let i = 0; i < maxBans - 1; i++)
        insert.run(
          i % 2 ? "address" : "username",
          i % 2 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `u${i}`,
          t,
          t + 3_600_000,
        );
    })();
    core.bans.reload();
    expect(core.bans.size).toBe(maxBans - 1);
    core.bans.add({ kind: "address", value: "192.0.2.0/24", minutes: 1 });
    expect(() => core.bans.add({ kind: "username", value: "one-too-many", minutes: 1 })).toThrow(/full \(10000 bans\)/);
    expect(core.bans.addressBanned("10.0.0.1")).toBe(true);
    expect(core.bans.addressBanned("192.0.2.200")).toBe(true);
    expect(core.bans.addressBanned("198.51.100.1")).toBe(false);
    // an expired one makes room
    db.$client.query("UPDATE bans SET expires_at = ? WHERE value = 'u0'").run(t - 1);
    core.bans.reload();
    expect(() => core.bans.add({ kind: "username", value: "one-too-many", minutes: 1 })).not.toThrow();
  });

  it("a ban another process (the CLI) adds is picked up by reload and drops the live sessions it matches", async () => {
    const { core, dir } = testCore();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "dev-1" });
    const kicked: string[] = [];
    core.sessions.open({
      integration,
      type: "mqtt",
      clientId: "a",
      remote: "198.51.100.4",
      kick: (r) => kicked.push(`a ${r}`),
    });
    core.sessions.open({
      integration,
      type: "mqtt",
      clientId: "b",
      remote: "198.51.100.5",
      kick: (r) => kicked.push(`b ${r}`),
    });
    const other = openDataDir(dir);
    try {
      new BanList(other).add({ kind: "address", value: "198.51.100.4", minutes: 10 });
    } finally {
      closeDatabase(other);
    }
    expect(kicked).toEqual([]);
    core.bans.reload();
    expect(kicked).toEqual(["a banned (address 198.51.100.4)"]);
    expect(core.sessions.list().map((s) => s.clientId)).toEqual(["b"]);
    // a username ban drops every session of that name
    core.bans.add({ kind: "username", value: "dev-1", minutes: 1 });
    expect(core.sessions.size).toBe(0);
  });
});
