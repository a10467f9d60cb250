import { afterAll, describe, expect, it } from "bun:test";
import { readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trimFolder } from "../../src/listeners/opcua/certificates.ts";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

describe("the rejected certificates folder", () => {
  it("keeps the newest ones only: scanners cannot fill the disk", async () => {
    const dir = tempDir();
    for (let i = 0; i < 250; i++) {
      const f = join(dir, `cert-${i}.pem`);
      writeFileSync(f, "x");
      utimesSync(f, new Date(1_000_000 + i * 1000), new Date(1_000_000 + i * 1000));
    }
    writeFileSync(join(dir, "notes.txt"), "left alone");
    expect(await trimFolder(dir, 200)).toBe(50);
    const left = readdirSync(dir);
    expect(left).toHaveLength(201);
    expect(left).not.toContain("cert-0.pem");
    expect(left).toContain("cert-249.pem");
    expect(left).toContain("notes.txt");
  });
});
