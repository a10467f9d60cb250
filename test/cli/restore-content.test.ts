import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../../src/app.ts";
import { parseServeConfig } from "../../src/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { cleanupTempDirs, newDataDir, tempDir, testCore, testHashCost } from "../helpers/app.ts";
import { runCli } from "../helpers/serve.ts";

afterAll(cleanupTempDirs);

let backup: string;
beforeAll(async () => {
  const { core, db, dir } = testCore();
  await core.admins.setPassword("admin", "the-real-admin-password");
  await core.credentials.create({ type: "mqtt", username: "line-1" });
  core.stop();
  db.$client.close();
  backup = join(tempDir(), "backup.db");
  expect((await runCli(["backup", backup, "--data-dir", dir])).code).toBe(0);
});

/** tampered: a copy of the good backup with `sql` run on it, as someone with a SQLite shell would. */
function tampered(sql: string): string {
  const path = join(tempDir(), "tampered.db");
  copyFileSync(backup, path);
  const db = new Database(path);
  db.run(sql);
  db.close();
  return path;
}

describe("restore checks every value, not only the schema", () => {
  it.each([
    [
      "a BLOB username",
      "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES (x'00ff41', 'mqtt', 'x', 1, 1)",
      "integrations.username: 1 value(s) that are not text",
    ],
    [
      "text where a date goes",
      "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES ('n2', 'mqtt', 'x', 'yesterday', 'never')",
      "integrations.created_at: 1 value(s) that are not integer",
    ],
    [
      "a date no page can show",
      "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES ('n3', 'mqtt', 'x', 9000000000000000000, 1)",
      "integrations.created_at: 1 value(s) that are not integer (a time in ms a date can show)",
    ],
    [
      "a real in an admin session's expiry",
      "INSERT INTO admin_sessions (id, admin_id, csrf_token, created_at, expires_at) VALUES ('s', 1, 'c', 1, 1.5)",
      "admin_sessions.expires_at",
    ],
    [
      "a type this release does not know",
      "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES ('weird', 'superuser', 'x', 1, 1)",
      'integration "weird" has type "superuser", which this release does not know',
    ],
  ])("refuses %s with exit 2, naming it; the live database is untouched", async (_, sql, reason) => {
    const live = newDataDir();
    const before = readFileSync(join(live, "gatehouse.db"));
    const r = await runCli(["restore", tampered(sql), "--data-dir", live]);
    expect(r.err).toContain(reason);
    expect(r.err).toContain("nothing changed");
    expect(r.code).toBe(2);
    expect(readFileSync(join(live, "gatehouse.db")).equals(before)).toBe(true);
    expect(readdirSync(live).sort()).toEqual(["gatehouse.db", "gatehouse.lock"]);
  });

  it("a good backup still restores, and its pages render", async () => {
    const live = newDataDir();
    const r = await runCli(["restore", backup, "--data-dir", live]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("import --full checks every certificate's target before anything is written", () => {
  it("a folder where a certificate goes: refused, and no integration was imported", async () => {
    const source = newDataDir();
    expect(
      (await runCli(["integrations", "add", "--type", "mqtt", "--username", "a-1", "--data-dir", source])).code,
    ).toBe(0);
    expect(
      (await runCli(["integrations", "add", "--type", "mqtt", "--username", "a-2", "--data-dir", source])).code,
    ).toBe(0);
    mkdirSync(join(source, "pki", "trusted", "certs"), { recursive: true });
    writeFileSync(join(source, "pki", "trusted", "certs", "clash.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n");
    const exported = join(tempDir(), "export.json");
    expect((await runCli(["export", exported, "--data-dir", source])).code).toBe(0);
    const target = newDataDir();
    mkdirSync(join(target, "pki", "trusted", "certs", "clash.pem"), { recursive: true });
    const r = await runCli(["import", "--full", exported, "--data-dir", target]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("clash.pem exists and is not a regular file");
    const listed = await runCli(["integrations", "list", "--json", "--data-dir", target]);
    expect(JSON.parse(listed.out)).toEqual([]);
    expect(readdirSync(join(target, "pki", "trusted", "certs"))).toEqual(["clash.pem"]);
  });
});

describe("readiness knows a full disk", () => {
  it("/readyz is 503 and says why while the data dir's file system has less free space than the floor", async () => {
    const dir = newDataDir();
    const config = parseServeConfig(
      ["--data-dir", dir, "--bind", "127.0.0.1", "--http-port", "0", "--https-port", "off"].concat([
        "--mqtt-port",
        "off",
        "--mqtts-port",
        "off",
        "--opcua-port",
        "off",
      ]),
      {},
    );
    for (const [floor, status] of [
      [1, 200],
      [Number.MAX_SAFE_INTEGER, 503],
    ] as const) {
      const app = createApp(config, silentLogger, { hashCost: testHashCost }, { minFreeBytes: floor });
      await app.start();
      try {
        const res = await fetch(`http://127.0.0.1:${app.address("http")!.port}/readyz`);
        expect(res.status).toBe(status);
        if (status === 503) expect(await res.text()).toContain("free on the data dir's file system, below the");
      } finally {
        await app.stop();
      }
    }
  }, 30_000);
});

describe("a far-off onboarding window", () => {
  it("loads without a timer overflow, is open, and closes when told", async () => {
    const { core, db } = testCore();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      db.$client.run(
        "INSERT INTO onboarding_window (id, open_until, types, opened_by) VALUES (1, 8000000000000000, NULL, 'restored')",
      );
      core.onboarding.reload();
      // a warning is emitted on a later turn of the event loop: give it two
      for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
      expect(core.onboarding.status().open).toBe(true);
      core.onboarding.close("closed");
      expect(core.onboarding.status().open).toBe(false);
    } finally {
      process.off("warning", onWarning);
      core.stop();
    }
    expect(warnings).toEqual([]);
    expect(existsSync(db.$client.filename)).toBe(true);
  });
});
