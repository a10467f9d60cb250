import { afterAll, describe, expect, it } from "bun:test";
import { openDataDir } from "../../src/db/data-dir.ts";
import { CredentialStore } from "../../src/core/credentials.ts";
import { EventBus } from "../../src/core/events.ts";
import { ExternalSync } from "../../src/core/external-sync.ts";
import { dataVersion } from "../../src/db/client.ts";
import { FailureThrottle } from "../../src/core/throttle.ts";
import { ConflictError, ValidationError } from "../../src/lib/errors.ts";
import { cleanupTempDirs, testCore, testHashCost } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

describe("verify", () => {
  it("returns the integration for the right password, and each refusal reason", async () => {
    const { core } = testCore();
    const { integration, password } = await core.credentials.create({
      type: "mqtt",
      username: "press-7",
      password: "s3cret-pass",
    });
    const off = await core.credentials.create({ type: "mqtt", username: "old-line", password: "s3cret-pass" });
    core.credentials.setActive(off.integration.id, false);

    const ok = await core.credentials.verify("mqtt", "press-7", password, { remote: "10.0.0.1" });
    expect(ok.ok && ok.integration.id).toBe(integration.id);
    expect(await core.credentials.verify("mqtt", "nobody", "whatever-pass", { remote: "10.0.0.2" })).toEqual({
      ok: false,
      reason: "unknown-user",
    });
    expect(await core.credentials.verify("mqtt", "press-7", "wrong-pass", { remote: "10.0.0.3" })).toEqual({
      ok: false,
      reason: "wrong-password",
    });
    expect(await core.credentials.verify("mqtt", "old-line", "s3cret-pass", { remote: "10.0.0.4" })).toEqual({
      ok: false,
      reason: "deactivated",
    });
    expect(await core.credentials.verify("opcua", "press-7", password, { remote: "10.0.0.5" })).toEqual({
      ok: false,
      reason: "wrong-type",
    });
  });

  it("never reveals deactivated or wrong type to a client that lacks the password", async () => {
    const { core } = testCore();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "quiet", password: "right-pass" });
    core.credentials.setActive(integration.id, false);
    expect(await core.credentials.verify("opcua", "quiet", "wrong-pass")).toEqual({
      ok: false,
      reason: "wrong-password",
    });
  });

  it("takes the fast path on a repeat login: no second argon2 verify", async () => {
    const { core } = testCore();
    const { password } = await core.credentials.create({ type: "mqtt", username: "fast" });
    const first = await core.credentials.verify("mqtt", "fast", password);
    const hashes = core.credentials.stats.hashVerifies;
    const second = await core.credentials.verify("mqtt", "fast", password);
    expect(first.ok && first.cached).toBe(false);
    expect(second.ok && second.cached).toBe(true);
    expect(core.credentials.stats.hashVerifies).toBe(hashes);
  });

  it("after a password change the old password fails at once and the cache holds no stale entry", async () => {
    const { core } = testCore();
    const { integration, password } = await core.credentials.create({ type: "mqtt", username: "rotating" });
    expect((await core.credentials.verify("mqtt", "rotating", password)).ok).toBe(true);
    expect(core.credentials.cachedEntries(integration.id)).toBe(1);
    const { password: next } = await core.credentials.resetPassword(integration.id);
    expect(core.credentials.cachedEntries(integration.id)).toBe(0);
    expect(await core.credentials.verify("mqtt", "rotating", password)).toEqual({
      ok: false,
      reason: "wrong-password",
    });
    expect((await core.credentials.verify("mqtt", "rotating", next)).ok).toBe(true);
  });

  it("a deactivated integration fails even with a cached credential", async () => {
    const { core } = testCore();
    const { integration, password } = await core.credentials.create({ type: "mqtt", username: "cached-then-off" });
    await core.credentials.verify("mqtt", "cached-then-off", password);
    core.credentials.setActive(integration.id, false);
    expect(await core.credentials.verify("mqtt", "cached-then-off", password)).toEqual({
      ok: false,
      reason: "deactivated",
    });
  });

  it("a reconnect storm of one credential costs one hash", async () => {
    const { core } = testCore();
    const { password } = await core.credentials.create({
      type: "mqtt",
      username: "storm",
      password: "a-chosen-password",
    }); // argon2id
    const before = core.credentials.stats.hashVerifies;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        core.credentials.verify("mqtt", "storm", password, { remote: `10.3.0.${i}` }),
      ),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(core.credentials.stats.hashVerifies - before).toBe(1);
  });

  it("a client retrying the same wrong password costs one hash, not one per attempt", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "retrier", password: "the-real-one" });
    const before = core.credentials.stats.hashVerifies;
    for (let i = 0; i < 20; i++) {
      expect((await core.credentials.verify("mqtt", "retrier", "an-old-password", { remote: "10.1.1.1" })).ok).toBe(
        false,
      );
    }
    expect(core.credentials.stats.hashVerifies - before).toBe(1);
  });

  it("a device with a stale username costs no hash and does not block its address", async () => {
    const { core } = testCore();
    const neighbour = await core.credentials.create({ type: "mqtt", username: "neighbour" });
    const before = core.credentials.stats.hashVerifies;
    for (let i = 0; i < 30; i++) {
      expect(
        await core.credentials.verify("mqtt", "renamed-long-ago", "its-old-password", { remote: "10.2.2.2" }),
      ).toEqual({ ok: false, reason: "unknown-user" });
    }
    expect(core.credentials.stats.hashVerifies - before).toBe(0); // an unknown name is answered after a wait, not a hash
    expect((await core.credentials.verify("mqtt", "neighbour", neighbour.password, { remote: "10.2.2.2" })).ok).toBe(
      true,
    );
    // Once an admin creates that name (onboarding, import), the device gets in on its next retry.
    await core.credentials.create({ type: "mqtt", username: "renamed-long-ago", password: "its-old-password" });
    expect(
      (await core.credentials.verify("mqtt", "renamed-long-ago", "its-old-password", { remote: "10.2.2.2" })).ok,
    ).toBe(true);
  });

  it("bounds hash work for failures per address, without slowing a valid client elsewhere", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "target", password: "the-real-one" });
    const good = await core.credentials.create({ type: "mqtt", username: "bystander" });
    const before = core.credentials.stats.hashVerifies;
    for (let i = 0; i < 40; i++)
      await core.credentials.verify("mqtt", "target", `guess-${i}-xx`, { remote: "10.6.6.6" });
    const spent = core.credentials.stats.hashVerifies - before;
    expect(spent).toBe(core.credentials.throttle.limit);
    expect(await core.credentials.verify("mqtt", "target", "the-real-one", { remote: "10.6.6.6" })).toEqual({
      ok: false,
      reason: "throttled",
    });
    expect((await core.credentials.verify("mqtt", "bystander", good.password, { remote: "10.7.7.7" })).ok).toBe(true);
  });

  it("lets a valid client in while its username is being sprayed from many addresses, cached or not", async () => {
    const { core, dir } = testCore();
    const { password } = await core.credentials.create({ type: "mqtt", username: "sprayed" });
    await core.credentials.verify("mqtt", "sprayed", password, { remote: "10.0.0.10" });
    for (let i = 0; i < 30; i++)
      await core.credentials.verify("mqtt", "sprayed", `guess-${i}-xx`, { remote: `10.9.0.${i}` });
    expect((await core.credentials.verify("mqtt", "sprayed", password, { remote: "10.0.0.10" })).ok).toBe(true);
    // right after a restart (nothing cached) the same holds: a name alone is never locked
    const { core: restarted } = testCore({ dir });
    for (let i = 0; i < 30; i++)
      await restarted.credentials.verify("mqtt", "sprayed", `guess-${i}-xx`, { remote: `10.9.1.${i}` });
    expect((await restarted.credentials.verify("mqtt", "sprayed", password, { remote: "10.0.0.10" })).ok).toBe(true);
  });

  it("lets VRPC integrations log in to the MQTT broker but not MQTT ones into VRPC", async () => {
    const { core } = testCore();
    const agent = await core.credentials.create({ type: "vrpc", username: "agent-1" });
    const machine = await core.credentials.create({ type: "mqtt", username: "machine-1" });
    expect((await core.credentials.verify("mqtt", "agent-1", agent.password)).ok).toBe(true);
    expect(await core.credentials.verify("vrpc", "machine-1", machine.password)).toEqual({
      ok: false,
      reason: "wrong-type",
    });
  });
});

describe("writes", () => {
  it("stores only a hash: argon2id for a chosen password, a fast salted one for a generated password", async () => {
    const { core, db } = testCore();
    const hashOf = (u: string) =>
      (
        db.$client.query("SELECT password_hash FROM integrations WHERE username = ?").get(u) as {
          password_hash: string;
        }
      ).password_hash;
    await core.credentials.create({ type: "http", username: "chosen", password: "a-person-chose-this" });
    expect(hashOf("chosen").startsWith("$argon2id$")).toBe(true);
    const { password } = await core.credentials.create({ type: "http", username: "generated" });
    expect(hashOf("generated").startsWith("$gh-pbkdf2-sha256$i=1000$")).toBe(true);
    expect(hashOf("generated")).not.toContain(password);
    expect((await core.credentials.verify("http", "generated", password)).ok).toBe(true);
    expect((await core.credentials.verify("http", "generated", `${password}x`)).ok).toBe(false);
  });

  it("generates a readable username and a password of at least 128 bits", async () => {
    const { core } = testCore();
    const { integration, password } = await core.credentials.create({ type: "opcua" });
    expect(integration.username).toMatch(/^opcua-[a-z]+-[a-z]+-[a-z0-9]{4}$/);
    expect(password.length * Math.log2(58)).toBeGreaterThanOrEqual(128);
  });

  it("rejects bad usernames and passwords with field messages, saving nothing", async () => {
    const { core } = testCore();
    const cases = [
      { username: "has space", password: "long-enough" },
      { username: "x".repeat(129), password: "long-enough" },
      { username: "ok-name", password: "short" },
      { username: "ok-name", password: "p".repeat(257) },
      { username: "", password: "long-enough", expect: "ok" },
    ];
    for (const c of cases) {
      const made = core.credentials.create({ type: "mqtt", username: c.username, password: c.password });
      if (c.expect === "ok")
        expect((await made).integration.username).toMatch(/^mqtt-[a-z]+-[a-z]+-[a-z0-9]{4}$/); // empty: a generated name
      else await expect(made).rejects.toBeInstanceOf(ValidationError);
    }
    expect(core.credentials.count()).toBe(1);
  });

  it("refuses a duplicate username across types", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "twice" });
    await expect(core.credentials.create({ type: "opcua", username: "twice" })).rejects.toBeInstanceOf(ConflictError);
  });

  it("imports all or nothing", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "exists" });
    await expect(
      core.credentials.createMany([
        { type: "mqtt", username: "new-1" },
        { type: "mqtt", username: "exists" },
      ]),
    ).rejects.toBeInstanceOf(ConflictError);
    expect(core.credentials.findByUsername("new-1")).toBeUndefined();
    const made = await core.credentials.createMany([
      { type: "mqtt", username: "new-1" },
      { type: "vrpc", username: "new-2", password: "given-password" },
    ]);
    expect(made.map((m) => m.integration.username)).toEqual(["new-1", "new-2"]);
    expect(made[1]!.password).toBe("given-password");
  });
});

describe("sessions and kicks", () => {
  it("drops live sessions on deactivate, delete and password change", async () => {
    const { core } = testCore();
    const kicked: string[] = [];
    const open = async (username: string) => {
      const { integration } = await core.credentials.create({ type: "mqtt", username });
      core.sessions.open({
        integration,
        type: "mqtt",
        clientId: username,
        kick: (reason) => kicked.push(`${username}: ${reason}`),
      });
      return integration;
    };
    const a = await open("a");
    const b = await open("b");
    const c = await open("c");
    expect(core.sessions.size).toBe(3);
    core.credentials.setActive(a.id, false);
    core.credentials.remove(b.id);
    await core.credentials.resetPassword(c.id);
    expect(kicked).toEqual(["a: integration deactivated", "b: integration deleted", "c: password changed"]);
    expect(core.sessions.size).toBe(0);
  });

  it("does not drop sessions for a description change", async () => {
    const { core } = testCore();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "stay" });
    let kicks = 0;
    core.sessions.open({ integration, type: "mqtt", kick: () => kicks++ });
    core.credentials.update(integration.id, { description: "moved to hall 3" });
    expect(kicks).toBe(0);
    expect(core.sessions.countFor(integration.id)).toBe(1);
  });
});

describe("another process writing the database", () => {
  it("is noticed: cache dropped and sessions kicked as if changed here", async () => {
    const { core, dir } = testCore();
    const { integration, password } = await core.credentials.create({ type: "mqtt", username: "remote-off" });
    await core.credentials.verify("mqtt", "remote-off", password);
    let kicked = "";
    core.sessions.open({ integration, type: "mqtt", kick: (r) => (kicked = r) });

    // The CLI's way: its own connection and store on the same file.
    const cliDb = openDataDir(dir);
    const cli = new CredentialStore(cliDb, new EventBus(), { hashCost: testHashCost });
    cli.setActive(cli.findByUsername("remote-off")!.id, false);
    cliDb.$client.close();

    expect(core.syncExternalChanges()).toBe(true);
    expect(kicked).toBe("integration deactivated");
    expect(core.credentials.cachedEntries(integration.id)).toBe(0);
    expect(await core.credentials.verify("mqtt", "remote-off", password)).toEqual({ ok: false, reason: "deactivated" });
    expect(core.syncExternalChanges()).toBe(false);
  });
});

describe("a login sees what another process committed before it", () => {
  it("a name the CLI added, a password it reset, an integration it re-enabled: at once, no poll needed", async () => {
    const { core, dir } = testCore(); // the core's poller is not started: only the login can notice
    const cliDb = openDataDir(dir);
    const cli = new CredentialStore(cliDb, new EventBus(), { hashCost: testHashCost });
    try {
      const made = await cli.create({ type: "mqtt", username: "from-cli" });
      expect((await core.credentials.verify("mqtt", "from-cli", made.password)).ok).toBe(true);
      const reset = await cli.resetPassword(made.integration.id);
      expect((await core.credentials.verify("mqtt", "from-cli", reset.password)).ok).toBe(true);
      expect(await core.credentials.verify("mqtt", "from-cli", made.password)).toEqual({
        ok: false,
        reason: "wrong-password",
      });
      cli.setActive(made.integration.id, false);
      expect(await core.credentials.verify("mqtt", "from-cli", reset.password)).toEqual({
        ok: false,
        reason: "deactivated",
      });
      cli.setActive(made.integration.id, true);
      expect((await core.credentials.verify("mqtt", "from-cli", reset.password)).ok).toBe(true);
    } finally {
      cliDb.$client.close();
    }
  });

  it("a spray of logins reloads nothing while nothing changed, and once for one change however many ask", async () => {
    const { db, dir } = testCore();
    const cliDb = openDataDir(dir);
    let reloads = 0;
    const sync = new ExternalSync(
      () => dataVersion(db),
      () => {
        reloads++;
      },
      (err) => {
        throw err;
      },
    );
    try {
      for (let i = 0; i < 1000; i++) expect(sync.fresh()).toBe(false);
      expect(reloads).toBe(0);
      const cli = new CredentialStore(cliDb, new EventBus(), { hashCost: testHashCost });
      await cli.create({ type: "mqtt", username: "one-change" });
      const asked = Array.from({ length: 100 }, () => sync.fresh());
      expect(await Promise.all(asked)).toContain(true);
      expect(reloads).toBe(1);
      // a second change right after: the next reload waits out the gap, and all who ask share it
      await cli.create({ type: "mqtt", username: "second-change" });
      const second = Array.from({ length: 100 }, () => sync.fresh());
      expect(new Set(second).size).toBe(1);
      expect(await second[0]).toBe(true);
      expect(reloads).toBe(2);
      expect(sync.fresh()).toBe(false);
    } finally {
      cliDb.$client.close();
    }
  });
});

describe("last login", () => {
  it("is kept in memory per login and written in batches", async () => {
    const { core, db } = testCore();
    const { integration, password } = await core.credentials.create({ type: "mqtt", username: "seen" });
    await core.credentials.verify("mqtt", "seen", password);
    expect(core.credentials.get(integration.id)!.lastLoginAt).toBeNumber();
    const read = () =>
      (
        db.$client.query("SELECT last_login_at FROM integrations WHERE id = ?").get(integration.id) as {
          last_login_at: number | null;
        }
      ).last_login_at;
    expect(read()).toBeNull();
    expect(core.credentials.flushLastLogins()).toBe(1);
    expect(read()).toBe(core.credentials.get(integration.id)!.lastLoginAt!);
  });
});

describe("FailureThrottle", () => {
  it("blocks after the limit and forgets after the window", () => {
    let now = 0;
    const t = new FailureThrottle(3, 1000, 100, () => now);
    for (let i = 0; i < 3; i++) t.fail("k");
    expect(t.blocked("k")).toBe(true);
    now = 1001;
    expect(t.blocked("k")).toBe(false);
  });

  it("keeps its memory bounded under a spray of keys", () => {
    const t = new FailureThrottle(3, 60_000, 1000);
    for (let i = 0; i < 5000; i++) t.fail(`a:${i}`);
    expect(t.size).toBeLessThanOrEqual(1000);
  });
});
