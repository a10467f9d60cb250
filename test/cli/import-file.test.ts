import { afterAll, describe, expect, it } from "bun:test";
import { truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCsvTable, parseImport } from "../../src/cli/import-file.ts";
import { cleanupTempDirs, newDataDir, tempDir } from "../helpers/app.ts";
import { runCli } from "../helpers/serve.ts";

afterAll(cleanupTempDirs);

interface Listed {
  username: string;
  active: boolean;
  description: string;
  publishAcl: string[];
  subscribeAcl: string[];
  denySubscribeAcl: string[];
}

async function listed(dir: string): Promise<Listed[]> {
  const r = await runCli(["integrations", "list", "--json", "--data-dir", dir]);
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as Listed[];
}

async function importFile(name: string, text: string) {
  const dir = newDataDir();
  const file = join(tempDir(), name);
  writeFileSync(file, text);
  return { dir, ...(await runCli(["integrations", "import", file, "--json", "--data-dir", dir])) };
}

describe("integrations import reads a file from outside with bounds", () => {
  it("refuses a FIFO and a device at once (nothing is read), and a file over 16 MiB unread", async () => {
    const dir = newDataDir();
    const fifo = join(tempDir(), "fleet.csv");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    // no writer ever opens the FIFO: reading it would wait forever
    for (const file of [fifo, "/dev/zero"]) {
      const r = await runCli(["integrations", "import", file, "--data-dir", dir]);
      expect([file, r.code]).toEqual([file, 2]);
      expect(r.err).toContain("not a regular file");
    }
    const big = join(tempDir(), "big.csv");
    writeFileSync(big, "type\n");
    truncateSync(big, 16 * 1024 * 1024 + 1); // sparse: nothing written
    const r = await runCli(["integrations", "import", big, "--data-dir", dir]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("at most 16777216");
    expect(await listed(dir)).toEqual([]);
  });
});

describe("integrations import takes what the API's create takes, and refuses the rest", () => {
  it("JSON: active, description and permission lists are honoured", async () => {
    const r = await importFile(
      "fleet.json",
      JSON.stringify([
        {
          type: "mqtt",
          username: "press-1",
          password: "a-chosen-password",
          description: "hall 1",
          active: false,
          publishAcl: ["plant/press-1/#"],
          subscribeAcl: [],
          denySubscribeAcl: ["plant/secret/#"],
        },
      ]),
    );
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const [press] = await listed(r.dir);
    expect(press).toMatchObject({
      username: "press-1",
      active: false,
      description: "hall 1",
      publishAcl: ["plant/press-1/#"],
      subscribeAcl: [],
      denySubscribeAcl: ["plant/secret/#"],
    });
  });

  it("CSV: the same columns (any case); a list in a cell, separated by spaces or commas", async () => {
    const r = await importFile(
      "fleet.csv",
      'type,username,Active,publishAcl,subscribeacl\nmqtt,press-2,false,"plant/a/# plant/b/#",\nmqtt,press-3,,,plant/+/status\n',
    );
    expect(r.code).toBe(0);
    const rows = (await listed(r.dir)).sort((a, b) => a.username.localeCompare(b.username));
    expect(rows.map((i) => [i.username, i.active, i.publishAcl, i.subscribeAcl])).toEqual([
      ["press-2", false, ["plant/a/#", "plant/b/#"], ["#"]],
      ["press-3", true, ["#"], ["plant/+/status"]],
    ]);
  });

  it("refuses unknown fields and columns, non-text passwords, bad values; lists every problem by entry or line; imports nothing", async () => {
    const json = await importFile(
      "fleet.json",
      JSON.stringify([
        { type: "mqtt", username: "a-1", publishACL: ["x/#"] },
        { type: "mqtt", username: "a-2", password: 12345678 },
        { type: "mqtt", username: "a-3", active: "no" },
        { type: "mqtt", username: "a-4", subscribeAcl: ["a/#/b"] },
        { type: "mqtt", username: "a-1" },
        { type: "mqtt", username: "ok-one" },
      ]),
    );
    expect(json.code).toBe(2);
    for (const expected of [
      'entry 1: unknown field "publishACL"',
      "entry 2: password must be text",
      "entry 3: active must be true or false",
      "entry 4: subscribeAcl: each entry must be a valid MQTT topic filter",
      'entry 5: username "a-1" is already in entry 1',
      "nothing imported",
    ])
      expect(json.err).toContain(expected);
    expect(await listed(json.dir)).toEqual([]);

    const header = await importFile("fleet.csv", "usrname,type,password\nplc-1,mqtt,\n");
    expect(header.code).toBe(2);
    expect(header.err).toContain('line 1 (the header): unknown column "usrname"');
    expect(await listed(header.dir)).toEqual([]);

    const rows = await importFile("fleet.csv", "type,username\nmqtt,plc-1\n\nmqtt,plc-2,extra\nmqtt,plc-3,,\n");
    expect(rows.code).toBe(2);
    expect(rows.err).toContain("line 4: unknown field");
    expect(rows.err).toContain("line 5: unknown field");
    expect(await listed(rows.dir)).toEqual([]);
  });

  it("prints every created row with its name, made-up names included", async () => {
    const r = await importFile("fleet.csv", "type,password\nmqtt,a-chosen-password\nhttp,\n");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { username: string; password?: string }[];
    expect(out).toHaveLength(2);
    expect(out.every((o) => o.username.length > 0)).toBe(true);
    expect(out[0]!.password).toBeUndefined();
    expect(out[1]!.password).toBeString();
  });
});

describe("the CSV parser", () => {
  it("refuses an unclosed quote and text after a closing quote, naming the line", () => {
    expect(() => parseCsvTable('type,description\nmqtt,"open\n')).toThrow(/line 2: a quoted field is never closed/);
    expect(() => parseCsvTable('type,description\nmqtt,"a"b\n')).toThrow(/line 2: text after a closing quote/);
  });

  it("counts lines inside quoted fields; keeps a field of megabytes whole", () => {
    const long = "x".repeat(8 * 1024 * 1024);
    const { rows } = parseCsvTable(`type,description\nmqtt,"two\nlines"\nmqtt,${long}\n`);
    expect(rows.map((r) => r.line)).toEqual([2, 4]);
    expect(rows[1]!.fields[1]!.length).toBe(long.length);
    expect(() => parseImport(`type,description\nmqtt,${long}\n`, "x.csv")).toThrow(
      /line 2: description must be at most/,
    );
  });
});
