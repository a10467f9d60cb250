import { afterAll, describe, expect, it } from "bun:test";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { hashLimits, hashProblem } from "../../src/core/credentials/hashing.ts";
import { cleanupTempDirs, memoryLog, testCore } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

/** mosquitto7: a `$7$` (PBKDF2-SHA512) hash as mosquitto_passwd writes it, at any iteration count. */
function mosquitto7(password: string, iterations: number): string {
  const salt = randomBytes(12);
  return `$7$${iterations}$${salt.toString("base64")}$${pbkdf2Sync(password, salt, iterations, 64, "sha512").toString("base64")}`;
}

/**
 * A database written by an older release (or restored from a backup) can hold hashes of any cost: a
 * login must neither compute one above the cap nor hold the event loop while it computes one below.
 */
describe("stored hash costs at login", () => {
  it("a hash above the cap is refused without being computed; hashes at the cap run off the event loop", async () => {
    const { log, lines } = memoryLog();
    const { core, db } = testCore({ log });
    const insert = db.$client.prepare(
      "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES (?, 'mqtt', ?, 0, 0)",
    );
    // Written directly, as an older release or a hand-edited database would hold them (imports refuse them).
    const fakeHash = randomBytes(64).toString("base64");
    insert.run("huge-mosquitto", `$7$9999999$${randomBytes(12).toString("base64")}$${fakeHash}`);
    insert.run(
      "huge-ours",
      `$gh-pbkdf2-sha256$i=9999999$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`,
    );
    const atCap = Array.from({ length: 6 }, (_, i) => ({ username: `at-cap-${i}`, password: `at-cap-password-${i}` }));
    for (const u of atCap) insert.run(u.username, mosquitto7(u.password, hashLimits.pbkdf2Iterations));
    await core.credentials.reload();

    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const results = await Promise.all([
      core.credentials.verify("mqtt", "huge-mosquitto", "any-password"),
      core.credentials.verify("mqtt", "huge-ours", "any-password"),
      ...atCap.map((u) => core.credentials.verify("mqtt", u.username, u.password)),
    ]);
    clearInterval(timer);

    expect(results.slice(0, 2)).toEqual([
      { ok: false, reason: "wrong-password" },
      { ok: false, reason: "wrong-password" },
    ]);
    expect(results.slice(2).every((r) => r.ok)).toBe(true);
    // The timer kept firing while six PBKDF2 hashes at the cap ran: they did not hold the loop.
    expect(ticks).toBeGreaterThan(0);
    expect(
      lines.filter((l) => l.includes("login refused: the stored password hash cannot be checked")).join("\n"),
    ).toContain("iteration count 9999999 exceeds the maximum of 100000");
    expect(lines.some((l) => l.includes("username=huge-ours"))).toBe(true);
    core.stop();
  });

  it("an admin hash above the cap (4 GiB of argon2 memory) is refused, not attempted", async () => {
    const { core, db } = testCore();
    await core.admins.setPassword("admin", "the-admin-password");
    const real = (db.$client.query("SELECT password_hash AS h FROM admins").get() as { h: string }).h;
    const huge = real.replace(/m=\d+,t=\d+,p=\d+/, "m=4194304,t=1,p=1");
    db.$client.run("UPDATE admins SET password_hash = ?", [huge]);
    await expect(core.admins.signIn("admin", "the-admin-password")).rejects.toMatchObject({ code: "unauthorized" });
    core.stop();
  });

  it("hashProblem names what is wrong with a hash, within the documented limits", () => {
    expect(hashProblem(mosquitto7("pw", 101))).toBeUndefined();
    expect(hashProblem(mosquitto7("pw", 100_001))).toBe("iteration count 100001 exceeds the maximum of 100000");
    expect(
      hashProblem("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"),
    ).toBeUndefined();
    expect(
      hashProblem(
        "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      ),
    ).toContain("exceeds the maximum of 262144");
    expect(
      hashProblem(
        "$argon2id$v=19$m=19456,t=100,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
      ),
    ).toContain("time cost");
    expect(hashProblem(`$2b$31$${"a".repeat(53)}`)).toBe("bcrypt cost 31 exceeds the maximum of 14");
    expect(hashProblem("$7$101$!!!$@@@")).toBe("the salt is not base64");
    expect(hashProblem("plain")).toBe("not a password hash Gatehouse can check");
  });
});
