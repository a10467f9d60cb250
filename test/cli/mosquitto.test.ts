import { afterAll, describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mapMosquittoAcl } from "../../src/cli/mosquitto.ts";
import { cleanupTempDirs, newDataDir, tempDir, testCore } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

describe("migrating from Mosquitto", () => {
  it("users from a file written by mosquitto_passwd log in with their old passwords; ACLs become permissions", async () => {
    const dir = tempDir();
    newDataDir(join(dir, "data"));
    const passwd = join(dir, "passwd");
    for (const [i, [user, pw]] of [
      ["alice", "alice-password"],
      ["bob", "bob pass:word"],
      ["plc-7", "plc-7-secret"],
    ].entries()) {
      const r = Bun.spawnSync(["mosquitto_passwd", ...(i === 0 ? ["-c"] : []), "-b", passwd, user!, pw!]);
      expect(r.exitCode).toBe(0);
    }
    writeFileSync(
      join(dir, "acl"),
      "# anonymous\ntopic read public/#\n\nuser alice\ntopic readwrite plant/#\ntopic deny plant/secret/#\n\nuser bob\ntopic read plant/+/status\n\npattern write devices/%u/#\npattern read cmd/%c\n",
    );
    const data = join(dir, "data");
    const cli = Bun.spawnSync([
      "bun",
      join(import.meta.dir, "../../src/main.ts"),
      "integrations",
      "import",
      "--mosquitto-passwd",
      passwd,
      "--mosquitto-acl",
      join(dir, "acl"),
      "--data-dir",
      data,
      "--json",
    ]);
    expect(cli.exitCode).toBe(0);
    const result = JSON.parse(cli.stdout.toString());
    expect(result.imported).toEqual(["alice", "bob", "plc-7"]);
    expect(result.unmapped).toEqual([
      "line 2: topic read public/# (for anonymous clients, which Gatehouse does not admit)",
      "line 12: pattern read cmd/%c (client-id patterns have no equivalent)",
    ]);
    const { core } = testCore({ dir: data });
    expect((await core.credentials.verify("mqtt", "alice", "alice-password")).ok).toBe(true);
    expect((await core.credentials.verify("mqtt", "bob", "bob pass:word")).ok).toBe(true);
    expect((await core.credentials.verify("mqtt", "plc-7", "wrong")).ok).toBe(false);
    expect(core.credentials.findByUsername("alice")).toMatchObject({
      publishAcl: ["plant/#", "devices/alice/#"],
      subscribeAcl: ["plant/#"],
      denySubscribeAcl: ["plant/secret/#"],
    });
    expect(core.credentials.findByUsername("bob")).toMatchObject({
      publishAcl: ["devices/bob/#"],
      subscribeAcl: ["plant/+/status"],
    });
    // the old hash is replaced at the first successful login (argon2id from then on)
    await eventually(() => expect(hashOf(core, "alice")).toStartWith("$argon2id$"));
  });

  it("refuses a file with a huge iteration count, naming its line; nothing is imported", () => {
    const dir = tempDir();
    newDataDir(join(dir, "data"));
    const passwd = join(dir, "passwd");
    expect(Bun.spawnSync(["mosquitto_passwd", "-c", "-b", passwd, "good", "good-password"]).exitCode).toBe(0);
    const good = readFileSync(passwd, "utf8").trim();
    // the same salt and hash with 9 999 999 iterations: one wrong login froze the appliance for 3.6 s
    writeFileSync(passwd, `${good}\n${good.replace(/^good:\$7\$101\$/, "huge:$7$9999999$")}\n`);
    const r = importPasswd(dir, passwd);
    expect(r.code).toBe(2);
    expect(r.err).toContain('line 2: "huge": iteration count 9999999 exceeds the maximum of 100000');
    expect(r.err).not.toContain("line 1");
    expect(listed(dir)).toEqual([]);
  });

  it("refuses a file with malformed hashes, listing every bad line; nothing is imported", () => {
    const dir = tempDir();
    newDataDir(join(dir, "data"));
    const passwd = join(dir, "passwd");
    expect(Bun.spawnSync(["mosquitto_passwd", "-c", "-b", passwd, "good", "good-password"]).exitCode).toBe(0);
    const good = readFileSync(passwd, "utf8").trim();
    const [, salt, hash] = /^good:\$7\$101\$([^$]+)\$([^$]+)$/.exec(good)!;
    const lines = [
      "# a comment, then a good line",
      good,
      "bad1:$7$101$!!!$@@@",
      `bad2:$7$101$${salt}$${hash!.slice(0, 44)}`, // 33 bytes of hash, not 64
      `bad3:$7$101$QUJD$${hash}`, // a 3-byte salt
      `bad4:$7$0$${salt}$${hash}`,
      `bad5:$6$${salt}$aGFzaA==`,
      "bad6:plain-text-password",
      good,
      "no colon here",
      `bad\u001b[31m:$7$101$${salt}$${hash}`,
    ];
    writeFileSync(passwd, `${lines.join("\n")}\n`);
    const r = importPasswd(dir, passwd);
    expect(r.code).toBe(2);
    expect(r.err).toContain("nothing imported");
    for (const expected of [
      'line 3: "bad1": the salt is not base64',
      'line 4: "bad2": the hash has 33 bytes (64 expected)',
      'line 5: "bad3": the salt has 3 bytes (8 to 64 expected)',
      'line 6: "bad4": iteration count "0" is not a positive number',
      'line 7: "bad5": the hash has 4 bytes (64 expected)',
      'line 8: "bad6": not a $7$ or $6$ hash',
      'line 9: "good" is already on line 2',
      "line 10: expected user:$7$...",
      'line 11: "bad\\u001b[31m": username must be',
    ])
      expect(r.err).toContain(expected);
    expect(r.err).not.toContain("\u001b"); // a name from the file never reaches the terminal raw
    expect(r.err).not.toMatch(/line [12]:/);
    expect(listed(dir)).toEqual([]);
  });

  it("$6$ hashes (mosquitto_passwd -H sha512, Mosquitto 1.x) log in", async () => {
    const dir = tempDir();
    newDataDir(join(dir, "data"));
    const passwd = join(dir, "passwd");
    expect(
      Bun.spawnSync(["mosquitto_passwd", "-H", "sha512", "-c", "-b", passwd, "old-style", "old-style-password"])
        .exitCode,
    ).toBe(0);
    expect(readFileSync(passwd, "utf8")).toStartWith("old-style:$6$");
    expect(importPasswd(dir, passwd).code).toBe(0);
    const { core } = testCore({ dir: join(dir, "data") });
    expect((await core.credentials.verify("mqtt", "old-style", "wrong-password")).ok).toBe(false);
    expect((await core.credentials.verify("mqtt", "old-style", "old-style-password")).ok).toBe(true);
  });

  it("maps readwrite, deny and %u; lists what it cannot map", () => {
    const { acl, unmapped } = mapMosquittoAcl("user a\ntopic x/#\ntopic write y/#\nfoo bar\n", ["a"]);
    expect(acl.get("a")).toEqual({
      publishAcl: ["x/#", "y/#"],
      subscribeAcl: ["x/#"],
      denyPublishAcl: [],
      denySubscribeAcl: [],
    });
    expect(unmapped).toEqual(["line 4: foo bar"]);
  });
});

function importPasswd(dir: string, passwd: string) {
  const r = Bun.spawnSync([
    "bun",
    join(import.meta.dir, "../../src/main.ts"),
    "integrations",
    "import",
    "--mosquitto-passwd",
    passwd,
    "--data-dir",
    join(dir, "data"),
  ]);
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

function listed(dir: string): string[] {
  const r = Bun.spawnSync([
    "bun",
    join(import.meta.dir, "../../src/main.ts"),
    "integrations",
    "list",
    "--json",
    "--data-dir",
    join(dir, "data"),
  ]);
  return (JSON.parse(r.stdout.toString()) as { username: string }[]).map((i) => i.username);
}

function hashOf(core: ReturnType<typeof testCore>["core"], username: string): string {
  return (
    core.db.$client.query("SELECT password_hash FROM integrations WHERE username = ?").get(username) as {
      password_hash: string;
    }
  ).password_hash;
}
