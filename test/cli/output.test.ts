import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CredentialStore } from "../../src/core/credentials.ts";
import { EventBus } from "../../src/core/events.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { cleanupTempDirs, newDataDir, tempDir } from "../helpers/app.ts";
import { runCli } from "../helpers/serve.ts";

const main = join(import.meta.dir, "../../src/main.ts");
const root = join(import.meta.dir, "../..");
const fleet = 20_000;
let dir: string;

beforeAll(() => {
  dir = newDataDir();
  const db = openDataDir(dir);
  // a Mosquitto-style hash: adopted as it is, no hashing per row
  const passwordHash = `$7$101$c29tZXNhbHRzYWx0c2FsdA==$${"A".repeat(86)}==`;
  new CredentialStore(db, new EventBus()).adoptMany(
    Array.from({ length: fleet }, (_, i) => ({ type: "mqtt" as const, username: `device-${i}`, passwordHash })),
  );
  db.$client.close();
});
afterAll(cleanupTempDirs);

/** piped: `gatehouse ARGS | READER > out`, the shell's pipe; returns the exit codes and what reached `out`. */
function piped(args: string[], reader: string): { codes: string; text: string } {
  const out = join(tempDir(), "out");
  const quoted = ["bun", main, ...args].map((a) => `'${a}'`).join(" ");
  const r = Bun.spawnSync(["bash", "-c", `${quoted} | ${reader} > '${out}'; echo "\${PIPESTATUS[@]}"`], { cwd: root });
  return { codes: r.stdout.toString().trim(), text: readFileSync(out, "utf8") };
}

describe("output to a pipe arrives whole", () => {
  // The reader starts a second late: the pipe (64 KiB) is full long before the CLI has written all;
  // it must wait for the reader instead of exiting with the rest unwritten.
  it(`export of ${fleet} integrations into a slow reader: every byte, valid JSON, exit 0`, () => {
    const { codes, text } = piped(["export", "--data-dir", dir], "(sleep 1; cat)");
    expect(codes).toBe("0 0");
    const doc = JSON.parse(text) as { integrations: unknown[] };
    expect(doc.integrations).toHaveLength(fleet);
  }, 60_000);

  it("integrations list --json into a slow reader; gzip gets a whole stream", () => {
    const listed = piped(["integrations", "list", "--json", "--data-dir", dir], "(sleep 1; cat)");
    expect(listed.codes).toBe("0 0");
    expect(JSON.parse(listed.text)).toHaveLength(fleet);
    const zipped = piped(["export", "--data-dir", dir], "gzip | gzip -d");
    expect(zipped.codes).toBe("0 0 0");
    expect((JSON.parse(zipped.text) as { integrations: unknown[] }).integrations).toHaveLength(fleet);
  }, 60_000);
});

describe("every CLI error is one line on stderr, nothing on stdout", () => {
  it("the database busy past the wait: exit 1 and what to do", async () => {
    const other = new Database(join(dir, "gatehouse.db"));
    other.run("BEGIN IMMEDIATE"); // another process writing, for longer than the CLI waits (5 s)
    try {
      const r = await runCli(["integrations", "disable", "device-1", "--json", "--data-dir", dir]);
      expect(r).toEqual({
        code: 1,
        out: "",
        err: "gatehouse integrations: the database is busy (the appliance is writing); try again\n",
      });
    } finally {
      other.run("ROLLBACK");
      other.close();
    }
  }, 30_000);

  it("a target folder that does not exist is the caller's mistake: exit 2, one line naming it", async () => {
    const r = await runCli(["backup", join(tempDir(), "no", "such", "folder", "b.db"), "--data-dir", dir]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^gatehouse backup: the folder [^\n]* does not exist[^\n]*\n$/);
  });
});

describe("--help on a verb", () => {
  it("prints the verb's usage and exits 0, with no data dir anywhere (found from outside: it said there was no database)", async () => {
    const nowhere = join(tempDir(), "none");
    for (const verb of [
      "uplinks",
      "integrations",
      "onboarding",
      "bans",
      "admin",
      "backup",
      "restore",
      "export",
      "import",
    ]) {
      const r = await runCli([verb, "--help"], { env: { GATEHOUSE_DATA_DIR: nowhere } });
      expect([verb, r.code, r.err]).toEqual([verb, 0, ""]);
      // its own lines of `gatehouse --help` (found from outside: most printed a one-line stub), where its data
      // dir comes from, and nothing of another verb's
      expect(r.out).toStartWith(`usage:\n  gatehouse ${verb} `);
      expect(r.out).toContain("--data-dir DIR or GATEHOUSE_DATA_DIR");
      const verbs = [...r.out.matchAll(/^ {2}gatehouse (\w+)/gm)].map((m) => m[1]);
      expect(new Set(verbs)).toEqual(new Set([verb]));
      expect((await runCli(["--help"])).out).toContain(r.out.split("\n\n")[0]!.slice("usage:\n".length));
    }
    // a flag the verb does not know: the error, then its usage
    const bad = await runCli(["integrations", "list", "--nope"], { env: { GATEHOUSE_DATA_DIR: nowhere } });
    expect([bad.code, bad.err]).toEqual([2, expect.stringContaining("\n  gatehouse integrations add --type T")]);
    const status = await runCli(["uplinks", "status", "-h"], { env: { GATEHOUSE_DATA_DIR: nowhere } });
    expect([status.code, status.out]).toEqual([0, expect.stringContaining("gatehouse uplinks list | status")]);
  });
});

describe("refusals said as refusals (found from outside)", () => {
  /** code: the exit code of `gatehouse ARGS` with stdout and stderr where the shell sends them */
  const code = (args: string[], redirect: string) => {
    const quoted = ["bun", main, ...args].map((a) => `'${a}'`).join(" ");
    return Bun.spawnSync(["bash", "-c", `${quoted} ${redirect}; echo $?`], { cwd: root })
      .stdout.toString()
      .trim();
  };

  it("an error whose stderr cannot be written still exits 2; a usage that cannot be written exits 1", () => {
    // waiting for a stream that had failed emptied the event loop: exit 0 for every refusal with `2>/dev/full`
    expect(code(["integrations", "--nope"], "2>/dev/full")).toBe("2");
    expect(code(["integrations", "remove", "nosuch", "--data-dir", dir], "2>/dev/full")).toBe("2");
    expect(code(["bogus"], "2>/dev/full")).toBe("2");
    for (const help of [["--help"], ["-h"], ["serve", "--help"], ["integrations", "--help"]])
      expect([help, code(help, ">/dev/full 2>/dev/null")]).toEqual([help, "1"]);
  }, 30_000);

  it("what was typed is shown as text, bounded, in an error; an argument too many is refused, not ignored", async () => {
    const title = "\u001b]0;PWNED\u0007\u001b[2J\u009b31m";
    for (const args of [
      [`bogus${title}`],
      ["integrations", "list", `--x${title}`],
      ["uplinks", "enable", `n${title}`],
    ]) {
      const r = await runCli([...args, "--data-dir", dir]);
      expect([args, r.code]).toEqual([args, 2]);
      expect(r.err).toContain("\\u001b]0;PWNED\\u0007\\u001b[2J\\u009b31m");
      expect(r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    }
    const long = await runCli([`bogus${"A".repeat(20_000)}`]);
    expect(long.err.length).toBeLessThan(15_000);
    expect(long.err).toContain("more characters");
    // `integrations remove a b` removed a alone and said so, exit 0
    for (const args of [
      ["integrations", "enable", "device-1", "device-2"],
      ["uplinks", "remove", "a", "b"],
      ["bans", "remove", "1", "2"],
      ["onboarding", "list", "x"],
      ["backup", "a.db", "b.db"],
      ["version", "x"],
    ]) {
      const r = await runCli([...args, "--data-dir", dir]);
      expect([args, r.code, r.err]).toEqual([
        args,
        2,
        expect.stringMatching(/unexpected argument "(device-2|b|2|x|b\.db|--data-dir)"/),
      ]);
    }
  }, 60_000);
});

describe("what a verb shows of stored names (found from outside)", () => {
  it("plain answers show control characters as text (uplinks list, bans list); export - writes to stdout", async () => {
    const esc = "\u001b]0;PWNED\u0007\u001b[2J";
    const added = await runCli([
      "uplinks",
      "add",
      "shown",
      "--url",
      "mqtt://127.0.0.1:1",
      "--forward",
      `a/${esc}`,
      "--data-dir",
      dir,
    ]);
    expect(added.code).toBe(0);
    const banned = await runCli(["bans", "add", "--client-id", `c${esc}`, "--data-dir", dir]);
    expect(banned.code).toBe(0);
    // a line break or a tab in a stored value forges no row or column of a listing
    const forged = await runCli(["bans", "add", "--client-id", "x\n999\tclient-id\tforged", "--data-dir", dir]);
    expect(forged.code).toBe(0);
    const rows = (await runCli(["bans", "list", "--data-dir", dir])).out.trim().split("\n");
    expect(rows.map((r) => r.split("\t").length)).toEqual([4, 4]); // two bans, four columns each
    for (const verb of [
      ["uplinks", "list"],
      ["bans", "list"],
    ]) {
      const r = await runCli([...verb, "--data-dir", dir]);
      expect([verb, r.code]).toEqual([verb, 0]);
      expect(r.out).toContain("\\u001b]0;PWNED\\u0007\\u001b[2J");
      expect(r.out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/); // tabs and line breaks are its own
    }
    const exported = await runCli(["export", "-", "--data-dir", dir]);
    expect(exported.code).toBe(0);
    expect((JSON.parse(exported.out) as { integrations: unknown[] }).integrations).toHaveLength(fleet);
  }, 60_000);
});
