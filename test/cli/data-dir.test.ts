import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { DataDirBusy, lockDataDir } from "../../src/db/data-dir.ts";
import { adminPassword, cleanupTempDirs, newDataDir, tempDir, testCore } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { runCli, startServe } from "../helpers/serve.ts";

afterAll(cleanupTempDirs);

/** names: the usernames `integrations list --json` shows for a data dir. */
async function names(dir: string): Promise<string[]> {
  const r = await runCli(["integrations", "list", "--json", "--data-dir", dir]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.out) as { username: string }[]).map((i) => i.username).sort();
}

/** dataDirWith: a data dir holding the admin (adminPassword) and these integrations. */
async function dataDirWith(...usernames: string[]): Promise<string> {
  const { core, db, dir } = testCore();
  await core.admins.setPassword("admin", adminPassword);
  for (const username of usernames) await core.credentials.create({ type: "mqtt", username });
  core.stop();
  db.$client.close();
  return dir;
}

describe("the data dir's lock: one process has it to itself", () => {
  it("a second serve exits 2 naming the first; restore and import --full are refused; other verbs work beside it; kill -9 frees it", async () => {
    const dir = await dataDirWith("line-1");
    const work = tempDir();
    const first = startServe(dir);
    try {
      await first.waitFor(/^info ready /);
      const second = await runCli(
        ["serve", "--data-dir", dir, "--bind", "127.0.0.1", "--http-port", "0"].concat([
          "--https-port",
          "off",
          "--mqtt-port",
          "off",
          "--mqtts-port",
          "off",
          "--opcua-port",
          "off",
        ]),
      );
      expect(second.code).toBe(2);
      expect(second.out + second.err).toContain(`in use by another Gatehouse process (pid ${first.proc.pid})`);
      // beside the running appliance, the verbs that do not replace its data work
      expect(
        (await runCli(["integrations", "add", "--type", "mqtt", "--username", "line-2", "--data-dir", dir])).code,
      ).toBe(0);
      expect(
        (await runCli(["admin", "set-password", "--username", "ops", "--data-dir", dir], { stdin: "ops-password-1\n" }))
          .code,
      ).toBe(0);
      expect((await runCli(["onboarding", "list", "--data-dir", dir])).code).toBe(0);
      expect((await runCli(["backup", join(work, "b.db"), "--data-dir", dir])).code).toBe(0);
      expect((await runCli(["export", join(work, "e.json"), "--data-dir", dir])).code).toBe(0);
      for (const args of [
        ["restore", join(work, "b.db")],
        ["import", "--full", join(work, "e.json")],
      ]) {
        const refused = await runCli([...args, "--data-dir", dir]);
        expect([args[0], refused.code]).toEqual([args[0], 2]);
        expect(refused.err).toContain(`in use by another Gatehouse process (pid ${first.proc.pid})`);
      }
      expect(await names(dir)).toEqual(["line-1", "line-2"]);
    } finally {
      first.proc.kill("SIGKILL");
      await first.proc.exited;
    }
    // the kernel dropped the lock with the process: no stale lock, no pid file to clean up by hand
    const restored = await runCli(["restore", join(work, "b.db"), "--data-dir", dir]);
    expect(restored.err).toBe("");
    expect(restored.code).toBe(0);
    expect(existsSync(join(dir, "gatehouse.db.previous"))).toBe(true);
    const again = startServe(dir);
    try {
      await again.waitFor(/removed the database kept from before the restore/);
      expect(existsSync(join(dir, "gatehouse.db.previous"))).toBe(false);
    } finally {
      again.proc.kill("SIGTERM");
      expect(await again.proc.exited).toBe(0);
    }
  }, 60_000);

  it("a restore racing a starting serve (OPC UA on): one of them is refused, never both; what the appliance acknowledged is on disk after kill -9", async () => {
    const backup = join(tempDir(), "restored.db");
    const source = await dataDirWith("restored-device");
    expect((await runCli(["backup", backup, "--data-dir", source])).code).toBe(0);
    for (let round = 0; round < 2; round++) {
      const dir = await dataDirWith("original-device");
      const serve = startServe(dir, ["--opcua-port", "0"]);
      // restores started as the appliance starts, one after the other, until one is refused or the
      // appliance is up (or refused): a restore that got the data dir first is done before the
      // appliance opens it, or the appliance is refused; none may succeed once the appliance has it
      let restored = false;
      let refusal = "";
      for (;;) {
        const r = await runCli(["restore", backup, "--data-dir", dir]);
        if (r.code !== 0) {
          refusal = r.err;
          break;
        }
        restored = true;
        if (serve.proc.exitCode !== null || serve.lines.some((l) => /^info ready /.test(l))) break;
      }
      if (refusal) expect(refusal).toContain("in use by another Gatehouse process");
      const outcome = await Promise.race([
        serve.waitFor(/^info ready /, 30_000).then(() => "serving" as const),
        serve.proc.exited.then(() => "refused" as const),
      ]);
      if (outcome === "refused") {
        // the appliance was refused: a restore held the data dir; it says so and exits 2
        expect(serve.proc.exitCode).toBe(2);
        expect(serve.lines.join("\n")).toContain("in use by another Gatehouse process");
        expect(restored).toBe(true);
        expect(await names(dir)).toEqual(["restored-device"]);
        continue;
      }
      try {
        // serving: the database it serves is the one on disk, whichever that is
        const expected = restored ? "restored-device" : "original-device";
        const base = `http://127.0.0.1:${serve.port("http")}`;
        const { cookie, csrf } = await signIn(base, "admin", adminPassword);
        const api = await fetch(`${base}/api/v1/integrations`, {
          method: "POST",
          headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: base },
          body: JSON.stringify({ type: "mqtt", username: `acknowledged-${round}` }),
        });
        expect(api.status).toBe(201);
        serve.proc.kill("SIGKILL");
        await serve.proc.exited;
        expect(await names(dir)).toEqual([`acknowledged-${round}`, expected].sort());
      } finally {
        serve.proc.kill("SIGKILL");
        await serve.proc.exited;
      }
    }
  }, 120_000);

  it("in one process: a second lock is refused at once until the first is released", () => {
    const dir = newDataDir();
    const lock = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(DataDirBusy);
    lock.release();
    lockDataDir(dir).release();
  });
});

describe("a data dir without a database is refused, never made", () => {
  it("every CLI verb exits 2 naming the path and how to name the right one; nothing is created", async () => {
    const cwd = tempDir();
    const file = join(cwd, "input.json");
    writeFileSync(file, "[]");
    const verbs = [
      ["integrations", "list"],
      ["integrations", "add", "--type", "mqtt"],
      ["integrations", "disable", "line-1"],
      ["integrations", "import", file],
      ["integrations", "import", "--mosquitto-passwd", file],
      ["onboarding", "list"],
      ["onboarding", "open"],
      ["admin", "set-password"],
      ["backup", join(cwd, "backup.db")],
      ["restore", file],
      ["export"],
      ["import", "--full", file],
    ];
    for (const dataDir of [join(cwd, "data"), join(cwd, "typo")]) {
      for (const verb of verbs) {
        const r = await runCli([...verb, "--data-dir", dataDir], { stdin: "a-new-password\n" });
        expect([verb.join(" "), r.code]).toEqual([verb.join(" "), 2]);
        for (const part of [join(dataDir, "gatehouse.db"), "--data-dir", "GATEHOUSE_DATA_DIR", "/var/lib/gatehouse"])
          expect(r.err).toContain(part);
        expect(r.out).toBe("");
      }
    }
    expect(readdirSync(cwd)).toEqual(["input.json"]);
  }, 60_000);
});

describe("links planted in the data dir are refused, never followed", () => {
  it("-wal and -shm pointing elsewhere: refused; the target keeps its mode and bytes", async () => {
    const dir = newDataDir();
    expect(readdirSync(dir)).toEqual(["gatehouse.db"]);
    const victim = join(tempDir(), "passwd");
    writeFileSync(victim, "root:x:0:0:root:/root:/bin/sh\n", { mode: 0o644 });
    chmodSync(victim, 0o644);
    for (const suffix of ["-shm", "-wal"]) symlinkSync(victim, join(dir, `gatehouse.db${suffix}`));
    const r = await runCli(["integrations", "list", "--data-dir", dir]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("symlink");
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(readFileSync(victim, "utf8")).toBe("root:x:0:0:root:/root:/bin/sh\n");
  });

  it("a dangling link at gatehouse.db: refused by the CLI and by serve; nothing is created where it points", async () => {
    const dir = tempDir();
    const elsewhere = join(tempDir(), "gh.db");
    symlinkSync(elsewhere, join(dir, "gatehouse.db"));
    const add = await runCli(["integrations", "add", "--type", "mqtt", "--data-dir", dir]);
    expect(add.code).toBe(2);
    expect(add.err).toContain("symlink");
    const serve = startServe(dir);
    expect(await serve.proc.exited).toBe(2);
    expect(serve.lines.join("\n")).toContain("symlink");
    expect(existsSync(elsewhere)).toBe(false);
  });

  it("a database file left readable by others is narrowed to 0600 (through its descriptor)", async () => {
    const dir = newDataDir();
    chmodSync(join(dir, "gatehouse.db"), 0o644);
    expect((await runCli(["integrations", "list", "--data-dir", dir])).code).toBe(0);
    expect(statSync(join(dir, "gatehouse.db")).mode & 0o777).toBe(0o600);
  });

  it("export reads only regular files inside the data dir as trusted certificates; a linked folder is refused", async () => {
    const dir = newDataDir();
    const secret = join(tempDir(), "shadow");
    writeFileSync(secret, "root:$6$secret-hash:19000:0:99999:7:::\n");
    const certs = join(dir, "pki", "trusted", "certs");
    mkdirSync(certs, { recursive: true });
    writeFileSync(join(certs, "real.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    symlinkSync(secret, join(certs, "steal.pem"));
    const r = await runCli(["export", "--data-dir", dir]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as { trustedCertificates: Record<string, string> };
    expect(Object.keys(doc.trustedCertificates)).toEqual(["real.pem"]);
    expect(r.out).not.toContain(Buffer.from(readFileSync(secret)).toString("base64").slice(0, 20));
    expect(r.err).toContain("steal.pem: not a regular file");
    // a folder on the way that is a link (pki -> /etc): refused
    const other = newDataDir();
    symlinkSync(join(dir, "pki"), join(other, "pki"));
    const linked = await runCli(["export", "--data-dir", other]);
    expect(linked.code).toBe(2);
    expect(linked.err).toContain("is not a folder");
  });

  it("a link at gatehouse.lock: restore refuses", async () => {
    const dir = newDataDir();
    symlinkSync(join(tempDir(), "lock"), join(dir, "gatehouse.lock"));
    const backup = join(tempDir(), "b.db");
    expect((await runCli(["backup", backup, "--data-dir", dir])).code).toBe(0);
    const r = await runCli(["restore", backup, "--data-dir", dir]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("symlink");
  });
});

describe("what an interrupted restore leaves is removed", () => {
  it("by the next restore and by serve", async () => {
    const dir = newDataDir();
    const backup = join(tempDir(), "b.db");
    expect((await runCli(["backup", backup, "--data-dir", dir])).code).toBe(0);
    const leftovers = [".gatehouse.db.restore-0a1b2c3d4e5f", ".gatehouse.db.restore-0a1b2c3d4e5f-wal"];
    for (const f of leftovers) writeFileSync(join(dir, f), "x");
    expect((await runCli(["restore", backup, "--data-dir", dir])).code).toBe(0);
    for (const f of leftovers) expect(existsSync(join(dir, f))).toBe(false);
    for (const f of leftovers) writeFileSync(join(dir, f), "x");
    const serve = startServe(dir);
    try {
      await serve.waitFor(/removed what an interrupted restore left/);
      await serve.waitFor(/^info ready /);
      for (const f of leftovers) expect(existsSync(join(dir, f))).toBe(false);
    } finally {
      serve.proc.kill("SIGTERM");
      await serve.proc.exited;
    }
  }, 30_000);
});

describe("best-effort writes never stop a running appliance", () => {
  it("a pid file that cannot be written is logged; the appliance serves; /readyz says why it is not ready on a full disk", async () => {
    const dir = newDataDir();
    mkdirSync(join(dir, "gatehouse.pid")); // a folder where the pid file goes: its write fails
    const serve = startServe(dir);
    try {
      await serve.waitFor(/^info ready /);
      await serve.waitFor(/cannot write the pid file/);
      const base = `http://127.0.0.1:${serve.port("http")}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    } finally {
      serve.proc.kill("SIGTERM");
      expect(await serve.proc.exited).toBe(0);
    }
    // the database is still the appliance's only one
    const db = new Database(join(dir, "gatehouse.db"), { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM integrations").get()).toEqual({ n: 0 });
    db.close();
  }, 30_000);
});
