import { afterAll, describe, expect, it } from "bun:test";
import { fingerprintOf, Onboarding } from "../../src/core/onboarding.ts";
import { requestTypeOf } from "../../src/listeners/index.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { cleanupTempDirs, testCore } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

const meta = (remote = "10.0.0.1", clientId = "dev-1") => ({ remote, clientId });

describe("onboarding in the core", () => {
  it("records nothing while closed; records once and counts attempts while open; approve adopts the presented password", async () => {
    const { core } = testCore();
    expect(await core.onboarding.consider("mqtt", "press-9", "its-own-password", meta())).toBe("closed");
    core.onboarding.open({ minutes: 5, by: "test" });
    expect(await core.onboarding.consider("mqtt", "press-9", "its-own-password", meta())).toBe("recorded");
    expect(await core.onboarding.consider("mqtt", "press-9", "its-own-password", meta())).toBe("pending");
    expect(await core.onboarding.consider("mqtt", "press-9", "another-password", meta())).toBe("conflict");
    const [r] = core.onboarding.list();
    expect(r).toMatchObject({
      type: "mqtt",
      username: "press-9",
      clientId: "dev-1",
      remote: "10.0.0.1",
      attempts: 2,
      fingerprint: fingerprintOf("press-9", "its-own-password"),
    });
    expect(JSON.stringify(core.onboarding.list())).not.toContain("$argon2");
    const { approved } = core.onboarding.approve([r!.id], { description: "hall 2" });
    expect(approved[0]).toMatchObject({ username: "press-9", type: "mqtt", description: "hall 2" });
    expect((await core.credentials.verify("mqtt", "press-9", "its-own-password")).ok).toBe(true);
    expect(core.onboarding.list()).toEqual([]);
    expect(core.activity.list({ action: "onboarding.approved" })[0]).toMatchObject({
      subject: "press-9",
      actor: "system",
    });
  });

  it("a known username with a wrong password is never a request; the login path feeds unknown ones", async () => {
    const { core } = testCore();
    await core.credentials.create({ type: "mqtt", username: "known", password: "right-password" });
    core.onboarding.open({ by: "test" });
    await core.credentials.verify("mqtt", "known", "wrong-password", meta());
    await core.credentials.verify("mqtt", "stranger", "stranger-password", meta());
    // consider() runs after the refusal, off the login path; "known" was refused first and never passed to it.
    await eventually(() => expect(core.onboarding.list().map((r) => r.username)).toEqual(["stranger"]));
  });

  it("reject drops it and ignores that username for the rest of the window; closing drops the rest", async () => {
    const { core } = testCore();
    core.onboarding.open({ by: "test" });
    await core.onboarding.consider("opcua", "scada-x", "password-x", meta());
    await core.onboarding.consider("http", "webhook-y", "password-y", meta("10.0.0.2"));
    core.onboarding.reject(core.onboarding.list().find((r) => r.username === "scada-x")!.id);
    expect(await core.onboarding.consider("opcua", "scada-x", "password-x", meta())).toBe("rejected");
    core.onboarding.close();
    expect(core.onboarding.list()).toEqual([]);
    expect(core.activity.list().map((a) => a.action)).toEqual(
      expect.arrayContaining(["onboarding.rejected", "onboarding.expired", "onboarding.closed"]),
    );
  });

  it("types: VRPC by the <domain>/<agent> name or a VrpcAgent's client id; a window for some types only", async () => {
    expect(requestTypeOf("mqtt", "plant/agent-7")).toBe("vrpc");
    expect(requestTypeOf("mqtt", "machine", "va3abc")).toBe("vrpc");
    expect(requestTypeOf("mqtt", "machine", "press")).toBe("mqtt");
    expect(requestTypeOf("opcua", "a/b")).toBe("opcua");
    const { core } = testCore();
    core.onboarding.open({ by: "test", types: ["vrpc"] });
    expect(await core.onboarding.consider("mqtt", "machine", "password-1", meta())).toBe("type-not-open");
    expect(await core.onboarding.consider("mqtt", "plant/agent-7", "password-1", meta())).toBe("recorded");
  });

  it("is bounded: 100 pending at most, a few new ones per address per minute, names and values capped", async () => {
    const { core } = testCore();
    core.onboarding.open({ by: "test" });
    const outcomes: string[] = [];
    for (let i = 0; i < 300; i++)
      outcomes.push(
        await core.onboarding.consider("mqtt", `dev-${i}`, "password", meta(`10.1.${Math.floor(i / 10)}.${i % 10}`)),
      );
    expect(core.onboarding.list()).toHaveLength(100);
    expect(outcomes.filter((o) => o === "full")).toHaveLength(200);
    expect(core.onboarding.status().refused).toBe(200);
    const { core: other } = testCore();
    other.onboarding.open({ by: "test" });
    for (let i = 0; i < 50; i++) await other.onboarding.consider("mqtt", `burst-${i}`, "password", meta("10.9.9.9"));
    expect(other.onboarding.list()).toHaveLength(10);
    expect(await other.onboarding.consider("mqtt", "x".repeat(129), "password", meta("10.9.9.8"))).toBe("invalid");
  });

  it("a window opens for 1 to 60 minutes, closes by itself, and a restart leaves it closed", async () => {
    let now = Date.now();
    const clocked = testCore();
    const onboarding = new Onboarding(
      clocked.db,
      clocked.core.credentials,
      clocked.core.events,
      clocked.core.activity,
      silentLogger,
      { now: () => now },
    );
    onboarding.open({ minutes: 2, by: "test" });
    await onboarding.consider("mqtt", "late-device", "password", meta());
    now += 119_000;
    expect(onboarding.status()).toMatchObject({ open: true, pending: 1 });
    now += 2_000;
    expect(onboarding.status()).toMatchObject({ open: false, pending: 0 });
    expect(clocked.core.activity.list({ action: "onboarding.expired" })[0]).toMatchObject({ subject: "late-device" });
    onboarding.stop();

    const { core, dir } = testCore();
    expect(() => core.onboarding.open({ minutes: 61, by: "test" })).toThrow("1 to 60 minutes");
    core.onboarding.open({ minutes: 1, by: "test" });
    await core.onboarding.consider("mqtt", "soon-gone", "password", meta());
    expect(core.onboarding.status().open).toBe(true);
    // another core on the same data dir starts: the window is closed there and in the file
    const { core: restarted } = testCore({ dir });
    restarted.start();
    expect(restarted.onboarding.status()).toMatchObject({ open: false, pending: 0 });
    restarted.stop();
  });
});
