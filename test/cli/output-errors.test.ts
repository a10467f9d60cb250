import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { CredentialStore } from "../../src/core/credentials.ts";
import { EventBus } from "../../src/core/events.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { cleanupTempDirs, newDataDir } from "../helpers/app.ts";

const main = join(import.meta.dir, "../../src/main.ts");
const root = join(import.meta.dir, "../..");
afterAll(cleanupTempDirs);

function dataDir(): string {
  const dir = newDataDir();
  const db = openDataDir(dir);
  new CredentialStore(db, new EventBus()).adoptMany([
    {
      type: "mqtt" as const,
      username: "device-1",
      passwordHash: `$7$101$c29tZXNhbHRzYWx0c2FsdA==$${"A".repeat(86)}==`,
    },
  ]);
  db.$client.close();
  return dir;
}

/** shell: `gatehouse ARGS REDIRECT`, its exit code and stderr (the shell's own redirection, as a backup script has it). */
function shell(args: string[], redirect: string): { code: number; err: string } {
  const quoted = ["bun", main, ...args].map((a) => `'${a}'`).join(" ");
  const r = Bun.spawnSync(["bash", "-c", `${quoted} ${redirect}`], { cwd: root });
  return { code: r.exitCode, err: r.stderr.toString() };
}

describe("output that cannot be written is a failure (F4)", () => {
  const dir = dataDir();
  it("export > /dev/full exits 1 with one line on stderr", () => {
    const r = shell(["export", "--data-dir", dir], "> /dev/full");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot write the output: .*ENOSPC/);
  });

  it("integrations list --json > /dev/full exits 1", () => {
    expect(shell(["integrations", "list", "--json", "--data-dir", dir], "> /dev/full").code).toBe(1);
  });

  it("export to a normal file still exits 0", () => {
    expect(shell(["export", "--data-dir", dir], "> /dev/null").code).toBe(0);
  });
});

describe("backup into a folder that does not exist (F10)", () => {
  it("exits 2 with one line naming the folder", () => {
    const dir = dataDir();
    const r = shell(["backup", "--data-dir", dir, join(dir, "no-such-folder", "x.db")], "");
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/no-such-folder does not exist/);
  });
});
