import { afterAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { mapMosquittoAcl } from "../../src/cli/mosquitto.ts";
import { cleanupTempDirs, tempDir, testCore } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

describe("migrating from Mosquitto", () => {
  it("users from a file written by mosquitto_passwd log in with their old passwords; ACLs become permissions", async () => {
    const dir = tempDir();
    const passwd = join(dir, "passwd");
    for (const [i, [user, pw]] of [["alice", "alice-password"], ["bob", "bob pass:word"], ["plc-7", "plc-7-secret"]].entries()) {
      const r = Bun.spawnSync(["mosquitto_passwd", ...(i === 0 ? ["-c"] : []), "-b", passwd, user!, pw!]);
      expect(r.exitCode).toBe(0);
    }
    writeFileSync(
      join(dir, "acl"),
      "# anonymous\ntopic read public/#\n\nuser alice\ntopic readwrite plant/#\ntopic deny plant/secret/#\n\nuser bob\ntopic read plant/+/status\n\npattern write devices/%u/#\npattern read cmd/%c\n",
    );
    const data = join(dir, "data");
    const cli = Bun.spawnSync(["bun", join(import.meta.dir, "../../src/main.ts"), "integrations", "import", "--mosquitto-passwd", passwd, "--mosquitto-acl", join(dir, "acl"), "--data-dir", data, "--json"]);
    expect(cli.exitCode).toBe(0);
    const result = JSON.parse(cli.stdout.toString());
    expect(result.imported).toEqual(["alice", "bob", "plc-7"]);
    expect(result.unmapped).toEqual(["line 2: topic read public/# (for anonymous clients, which Gatehouse does not admit)", "line 12: pattern read cmd/%c (client-id patterns have no equivalent)"]);
    const { core } = testCore({ dir: data });
    expect((await core.credentials.verify("mqtt", "alice", "alice-password")).ok).toBe(true);
    expect((await core.credentials.verify("mqtt", "bob", "bob pass:word")).ok).toBe(true);
    expect((await core.credentials.verify("mqtt", "plc-7", "wrong")).ok).toBe(false);
    expect(core.credentials.findByUsername("alice")).toMatchObject({ publishAcl: ["plant/#", "devices/alice/#"], subscribeAcl: ["plant/#"], denySubscribeAcl: ["plant/secret/#"] });
    expect(core.credentials.findByUsername("bob")).toMatchObject({ publishAcl: ["devices/bob/#"], subscribeAcl: ["plant/+/status"] });
    // the old hash is replaced at the first successful login (argon2id from then on)
    await eventually(() => expect(hashOf(core, "alice")).toStartWith("$argon2id$"));
  });

  it("maps readwrite, deny and %u; lists what it cannot map", () => {
    const { acl, unmapped } = mapMosquittoAcl("user a\ntopic x/#\ntopic write y/#\nfoo bar\n", ["a"]);
    expect(acl.get("a")).toEqual({ publishAcl: ["x/#", "y/#"], subscribeAcl: ["x/#"], denyPublishAcl: [], denySubscribeAcl: [] });
    expect(unmapped).toEqual(["line 4: foo bar"]);
  });
});

function hashOf(core: ReturnType<typeof testCore>["core"], username: string): string {
  return (core.db.$client.query("SELECT password_hash FROM integrations WHERE username = ?").get(username) as { password_hash: string }).password_hash;
}
