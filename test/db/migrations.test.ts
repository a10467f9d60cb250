import { describe, expect, it } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import journal from "../../drizzle/meta/_journal.json";
import { embeddedMigrations, loadMigrations } from "../../src/db/migrate.ts";

describe("embedded migrations", () => {
  it("embed every migration drizzle-kit wrote, and nothing else", () => {
    const onDisk = readdirSync(join(import.meta.dir, "../../drizzle"))
      .filter((f) => f.endsWith(".sql"))
      .map((f) => f.replace(/\.sql$/, ""));
    expect(Object.keys(embeddedMigrations).sort()).toEqual(onDisk.sort());
    expect(journal.entries.map((e) => e.tag).sort()).toEqual(onDisk.sort());
  });

  it("hash each file as drizzle's own reader does", async () => {
    const [first] = loadMigrations();
    const text = await Bun.file(join(import.meta.dir, "../../drizzle", `${journal.entries[0]!.tag}.sql`)).text();
    expect(first!.hash).toBe(new Bun.CryptoHasher("sha256").update(text).digest("hex"));
  });
});
