import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

const gatehouse = (args: string[]) => {
  const r = Bun.spawnSync(["bun", join(import.meta.dir, "../../src/main.ts"), ...args]);
  return { code: r.exitCode, err: r.stderr.toString(), out: r.stdout.toString() };
};

describe("restore", () => {
  it("refuses a backup made by a newer release, and what is not a Gatehouse backup", () => {
    const dir = tempDir();
    const newer = join(dir, "newer.db");
    copyFileSync(join(import.meta.dir, "../fixtures/gatehouse-0.1.0.db"), newer);
    const db = new Database(newer);
    db.run("INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('from-a-future-release', 0)");
    db.close();
    const refused = gatehouse(["restore", newer, "--data-dir", join(dir, "data")]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("newer release");
    const junk = join(dir, "junk.db");
    new Database(junk).close();
    expect(gatehouse(["restore", junk, "--data-dir", join(dir, "data")]).err).toContain("not a Gatehouse backup");
    // an older release's backup restores, upgraded in place
    const old = gatehouse(["restore", join(import.meta.dir, "../fixtures/gatehouse-0.1.0.db"), "--data-dir", join(dir, "data")]);
    expect(old.code).toBe(0);
    expect(JSON.parse(gatehouse(["integrations", "list", "--json", "--data-dir", join(dir, "data")]).out)).toHaveLength(4);
  });
});
