import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../../src/app.ts";
import { parseServeConfig } from "../../src/config.ts";
import { restoreDatabase } from "../../src/db/restore.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { cleanupTempDirs, newDataDir, tempDir, testCore, testHashCost } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

const main = join(import.meta.dir, "../../src/main.ts");
const fixture = join(import.meta.dir, "../fixtures/gatehouse-0.1.0.db");

/** gatehouse: the CLI from source, under umask 022 (the common default that made backups world-readable). */
const gatehouse = (args: string[]) => {
  const r = Bun.spawnSync(["sh", "-c", 'umask 022 && exec "$@"', "sh", "bun", main, ...args]);
  return { code: r.exitCode, err: r.stderr.toString(), out: r.stdout.toString() };
};

/**
 * snapshot: every file of a data dir with its bytes' digest: "unchanged" means this is equal. The lock
 * file (empty, made by the first restore) is left out: reading it here would also drop a lock held by
 * this process (POSIX locks end when any descriptor of the file closes).
 */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f !== "gatehouse.lock")
      .map((f) => [f, new Bun.CryptoHasher("sha256").update(readFileSync(join(dir, f))).digest("hex")]),
  );
}

/** startAndStop: the appliance starts on the data dir (the whole app, OPC UA left out for speed). */
async function startAndStop(dir: string): Promise<void> {
  const config = parseServeConfig(
    [
      "--data-dir",
      dir,
      "--bind",
      "127.0.0.1",
      "--http-port",
      "0",
      "--https-port",
      "off",
      "--mqtt-port",
      "0",
      "--mqtts-port",
      "off",
      "--opcua-port",
      "off",
    ],
    {},
  );
  const app = createApp(config, silentLogger, { hashCost: testHashCost });
  await app.start();
  await app.stop();
}

describe("restore treats the backup as hostile", () => {
  let work: string;
  let live: string;
  let backup: string;
  let before: Record<string, string>;

  beforeAll(async () => {
    work = tempDir();
    live = join(work, "live");
    const { core, db } = testCore({ dir: live });
    await core.admins.setPassword("admin", "the-real-admin-password");
    await core.credentials.create({ type: "mqtt", username: "line-1" });
    await core.credentials.create({ type: "opcua", username: "scada" });
    core.stop();
    db.$client.close();
    backup = join(work, "backup.db");
    const made = gatehouse(["backup", backup, "--data-dir", live]);
    expect(made.code).toBe(0);
    before = snapshot(live);
  });

  /** tampered: a copy of the real backup changed by `change`, as an attacker would. */
  const tampered = (name: string, change: (db: Database) => void) => {
    const path = join(work, name);
    copyFileSync(backup, path);
    const db = new Database(path);
    change(db);
    db.close();
    return path;
  };

  it.each([
    [
      "a trigger on integrations (resets the admin password on the next insert)",
      (db: Database) =>
        db.run(
          "CREATE TRIGGER takeover AFTER INSERT ON integrations BEGIN UPDATE admins SET password_hash = 'attacker'; END",
        ),
      'extra trigger "takeover" on integrations',
    ],
    [
      "a view",
      (db: Database) => db.run("CREATE VIEW everything AS SELECT username, password_hash FROM integrations"),
      'extra view "everything"',
    ],
    ["an extra table", (db: Database) => db.run("CREATE TABLE notes (x TEXT)"), 'extra table "notes"'],
    [
      "an extra index",
      (db: Database) => db.run("CREATE INDEX integrations_hash_idx ON integrations (password_hash)"),
      'extra index "integrations_hash_idx" on integrations',
    ],
    [
      "a changed table",
      (db: Database) => db.run("ALTER TABLE settings ADD COLUMN extra TEXT"),
      'table "settings" differs',
    ],
    [
      "a dropped index",
      (db: Database) => db.run("DROP INDEX integrations_type_idx"),
      'missing index "integrations_type_idx"',
    ],
    [
      "a forged migration timestamp",
      (db: Database) => db.run("UPDATE __drizzle_migrations SET created_at = created_at + 1"),
      "migration history differs",
    ],
  ])("refuses %s with exit 2; the live database is untouched", (_, change, reason) => {
    const file = tampered(`tampered-${reason.replace(/\W+/g, "-")}.db`, change);
    const r = gatehouse(["restore", file, "--data-dir", live]);
    expect(r.err).toContain(reason);
    expect(r.err).toContain("nothing changed");
    expect(r.code).toBe(2);
    expect(snapshot(live)).toEqual(before);
  });

  it("refuses a backup with 40 000 random bytes in the middle; the live database is untouched and the appliance starts", async () => {
    const bytes = readFileSync(backup);
    const at = Math.floor(bytes.length / 2) - 20_000;
    bytes.set(crypto.getRandomValues(new Uint8Array(40_000)), at);
    const file = join(work, "corrupted.db");
    writeFileSync(file, bytes);
    const r = gatehouse(["restore", file, "--data-dir", live]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/damaged|not a readable SQLite database/);
    expect(snapshot(live)).toEqual(before);
    // no temp copy left behind
    expect(readdirSync(live).sort()).toEqual([...Object.keys(before), "gatehouse.lock"].sort());
    await startAndStop(live);
    const { core, db } = testCore({ dir: live });
    expect((await core.admins.signIn("admin", "the-real-admin-password")).session.username).toBe("admin");
    core.stop();
    db.$client.close();
    before = snapshot(live); // started and signed in: the live database has moved on
  }, 30_000);

  it("refuses what is not a database, too large, or not a regular file", () => {
    writeFileSync(join(work, "text.db"), "hello\n");
    expect(gatehouse(["restore", join(work, "text.db"), "--data-dir", live]).err).toContain("not a SQLite database");
    const truncated = readFileSync(backup).subarray(0, 4096 * 3 + 100);
    writeFileSync(join(work, "truncated.db"), truncated);
    expect(gatehouse(["restore", join(work, "truncated.db"), "--data-dir", live]).err).toContain("truncated");
    expect(gatehouse(["restore", "/dev/zero", "--data-dir", live])).toMatchObject({
      code: 2,
      err: expect.stringContaining("not a regular file"),
    });
    // the size bound (1 GiB in the CLI), here at 64 KiB
    expect(() => restoreDatabase(live, backup, () => {}, 64 * 1024)).toThrow(/at most 65536/);
    expect(snapshot(live)).toEqual(before);
  });

  it("restores a good backup: the old database is kept until the appliance has started on the new one", async () => {
    const target = tempDir();
    const { core, db } = testCore({ dir: target });
    await core.credentials.create({ type: "http", username: "to-be-replaced" });
    core.stop();
    db.$client.close();
    const r = gatehouse(["restore", backup, "--data-dir", target]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("gatehouse.db.previous");
    expect(statSync(join(target, "gatehouse.db")).mode & 0o777).toBe(0o600);
    expect(existsSync(join(target, "gatehouse.db.previous"))).toBe(true);
    const list = JSON.parse(gatehouse(["integrations", "list", "--json", "--data-dir", target]).out) as {
      username: string;
    }[];
    expect(list.map((i) => i.username).sort()).toEqual(["line-1", "scada"]);
    // `serve` removes it once it is up on the restored one
    const proc = Bun.spawn(
      [
        "bun",
        main,
        "serve",
        "--data-dir",
        target,
        "--bind",
        "127.0.0.1",
        "--http-port",
        "0",
        "--https-port",
        "off",
        "--mqtt-port",
        "off",
        "--mqtts-port",
        "off",
        "--opcua-port",
        "off",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    try {
      const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
      let text = "";
      while (!/removed the database kept from before the restore/.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve ended: ${text}`);
        text += new TextDecoder().decode(value);
      }
      expect(existsSync(join(target, "gatehouse.db.previous"))).toBe(false);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 30_000);

  it("an old database left with a full write-ahead log (a kill -9) keeps it in .previous, and the log never reaches the new one", async () => {
    const crashed = tempDir();
    const { core, db } = testCore({ dir: crashed });
    db.$client.run("PRAGMA wal_autocheckpoint = 0");
    await core.credentials.create({ type: "http", username: "only-in-the-log" });
    // the files as a SIGKILL leaves them: the row is in -wal only
    const target = tempDir();
    for (const f of ["gatehouse.db", "gatehouse.db-wal"]) copyFileSync(join(crashed, f), join(target, f));
    core.stop();
    db.$client.close();
    expect(statSync(join(target, "gatehouse.db-wal")).size).toBeGreaterThan(0);
    expect(gatehouse(["restore", backup, "--data-dir", target]).code).toBe(0);
    expect(existsSync(join(target, "gatehouse.db-wal"))).toBe(false);
    const restored = JSON.parse(gatehouse(["integrations", "list", "--json", "--data-dir", target]).out) as {
      username: string;
    }[];
    expect(restored.map((i) => i.username).sort()).toEqual(["line-1", "scada"]);
    const previous = new Database(join(target, "gatehouse.db.previous"), { readonly: true });
    expect(previous.query("SELECT username FROM integrations").all()).toEqual([{ username: "only-in-the-log" }]);
    previous.close();
  });

  it("refuses a backup made by a newer release, and what is not a Gatehouse backup", () => {
    const dir = tempDir();
    newDataDir(join(dir, "data"));
    const newer = join(dir, "newer.db");
    copyFileSync(backup, newer);
    const db = new Database(newer);
    db.run("INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('from-a-future-release', 0)");
    db.close();
    const refused = gatehouse(["restore", newer, "--data-dir", join(dir, "data")]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("newer release");
    const junk = join(dir, "junk.db");
    new Database(junk).run("CREATE TABLE t (x)");
    expect(gatehouse(["restore", junk, "--data-dir", join(dir, "data")]).err).toContain("not a Gatehouse backup");
    expect(existsSync(join(dir, "data", "gatehouse.db.previous"))).toBe(false);
  });

  it("restores an older release's backup (0.1.0, copied first: the fixture is never opened in place) and migrates it", async () => {
    // The fixture is the .db file alone (its header says WAL mode; the log was empty and is not kept).
    expect(existsSync(`${fixture}-wal`)).toBe(false);
    const dir = tempDir();
    const old = join(dir, "gatehouse-0.1.0.db");
    copyFileSync(fixture, old);
    newDataDir(join(dir, "data"));
    const fixtureBefore = readFileSync(fixture);
    const r = gatehouse(["restore", old, "--data-dir", join(dir, "data")]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("migrated from schema 1 to");
    expect(readFileSync(fixture).equals(fixtureBefore)).toBe(true);
    const { core } = testCore({ dir: join(dir, "data") });
    expect(core.credentials.list({ pageSize: 10 }).rows).toHaveLength(4);
    expect((await core.credentials.verify("mqtt", "line-1-plc", "line-1-password")).ok).toBe(true);
    expect((await core.admins.signIn("admin", "old-admin-password")).session.username).toBe("admin");
    core.stop();
  });
});

describe("files holding hashes are 0600 from the start (umask 022)", () => {
  it("backup, export (new and over an existing 0644 file), and the database", () => {
    const dir = tempDir();
    const data = newDataDir(join(dir, "data"));
    expect(gatehouse(["integrations", "add", "--type", "mqtt", "--username", "m1", "--data-dir", data]).code).toBe(0);
    expect(gatehouse(["backup", join(dir, "b.db"), "--data-dir", data]).code).toBe(0);
    expect(gatehouse(["export", join(dir, "e.json"), "--data-dir", data]).code).toBe(0);
    writeFileSync(join(dir, "old.json"), "{}", { mode: 0o644 });
    expect(gatehouse(["export", join(dir, "old.json"), "--data-dir", data]).code).toBe(0);
    for (const f of ["b.db", "e.json", "old.json", "data/gatehouse.db"])
      expect([f, statSync(join(dir, f)).mode & 0o777]).toEqual([f, 0o600]);
    expect(readFileSync(join(dir, "old.json"), "utf8")).toContain('"m1"');
    // a backup never replaces a file; no temp file is left beside it
    expect(gatehouse(["backup", join(dir, "b.db"), "--data-dir", data])).toMatchObject({
      code: 2,
      err: expect.stringContaining("exists"),
    });
    expect(readdirSync(dir).sort()).toEqual(["b.db", "data", "e.json", "old.json"]);
  });
});

describe("import --full treats the export as hostile", () => {
  it("refuses a file with a bad hash, shape or certificate, listing each problem; nothing is imported", async () => {
    const dir = tempDir();
    const source = join(dir, "source");
    const { core, db } = testCore({ dir: source });
    await core.credentials.create({ type: "mqtt", username: "line-1" });
    core.stop();
    db.$client.close();
    mkdirSync(join(source, "pki", "trusted", "certs"), { recursive: true });
    writeFileSync(
      join(source, "pki", "trusted", "certs", "client.pem"),
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    const exported = join(dir, "export.json");
    expect(gatehouse(["export", exported, "--data-dir", source]).code).toBe(0);
    const good = JSON.parse(readFileSync(exported, "utf8"));
    const target = newDataDir(join(dir, "target"));
    const variant = (name: string, change: (doc: typeof good) => void) => {
      const doc = structuredClone(good);
      change(doc);
      writeFileSync(join(dir, name), JSON.stringify(doc));
      return gatehouse(["import", "--full", join(dir, name), "--data-dir", target]);
    };
    const hugeIterations = variant("huge.json", (d) =>
      d.integrations.push({
        ...d.integrations[0],
        username: "huge",
        passwordHash: `$7$9999999$c29tZXNhbHRzYWx0$${"A".repeat(86)}==`,
      }),
    );
    expect(hugeIterations.code).toBe(2);
    expect(hugeIterations.err).toContain(
      'entry 2 ("huge"): password hash: iteration count 9999999 exceeds the maximum of 100000',
    );
    const shapes = variant("shapes.json", (d) => {
      d.integrations.push({ type: "mqtt", username: "x", passwordHash: 7, publishAcl: "#" });
      d.defaultPermissions.mqtt = { publishAcl: ["a/#/b"], subscribeAcl: [] };
      d.trustedCertificates["../../escape.pem"] = "AAAA";
      d.trustedCertificates["ok.pem"] = "not base64!";
    });
    expect(shapes.code).toBe(2);
    for (const expected of [
      "integration 2: passwordHash must be a string",
      "integration 2: publishAcl must be a list",
      "defaultPermissions mqtt.publishAcl",
      'trusted certificate "../../escape.pem": the name must end in .pem or .der',
      'trusted certificate "ok.pem": not base64',
    ])
      expect(shapes.err).toContain(expected);
    // nothing of either file arrived: no integration, no certificate, no temp file
    expect(JSON.parse(gatehouse(["integrations", "list", "--json", "--data-dir", target]).out)).toEqual([]);
    expect(existsSync(join(target, "pki"))).toBe(false);
    expect(existsSync(join(dir, "escape.pem"))).toBe(false);
    // the untouched export imports, with its certificate
    const ok = gatehouse(["import", "--full", exported, "--data-dir", target]);
    expect(ok.code).toBe(0);
    expect(readdirSync(join(target, "pki", "trusted", "certs"))).toEqual(["client.pem"]);
  });
});

describe("backup and the broker's store", () => {
  it("says that broker.db (retained messages, sessions, queues) is not in the backup", async () => {
    const dir = tempDir();
    await startAndStop(dir);
    expect(existsSync(join(dir, "broker.db"))).toBe(true);
    const r = gatehouse(["backup", join(dir, "b.db"), "--data-dir", dir]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("not included: broker.db");
    const copy = new Database(join(dir, "b.db"), { readonly: true });
    expect(copy.query("SELECT name FROM sqlite_master WHERE name = 'retained'").all()).toEqual([]);
    copy.close();
  });
});
