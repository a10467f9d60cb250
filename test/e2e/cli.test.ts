import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupTempDirs, newDataDir, tempDir } from "../helpers/app.ts";
import { buildBinary, runBinary } from "../helpers/binary.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { eventually } from "../helpers/wait.ts";

let binary: string;
beforeAll(async () => {
  binary = await buildBinary();
}, 120_000);
afterAll(cleanupTempDirs);

function cli(dir: string, args: string[], stdin?: string) {
  const res = Bun.spawnSync([join(dir, "gatehouse"), ...args, "--data-dir", join(dir, "data")], {
    cwd: dir,
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
  });
  return { code: res.exitCode, out: res.stdout.toString(), err: res.stderr.toString() };
}

describe("CLI verbs on the data dir", () => {
  it("add, list, disable, enable, remove, import, with --json", () => {
    const dir = tempDir("gatehouse-cli-");
    copyFileSync(binary, join(dir, "gatehouse"));
    // no database yet: refused, and none is made
    const none = cli(dir, ["integrations", "list"]);
    expect(none.code).toBe(2);
    expect(none.err).toContain("no Gatehouse database at");
    expect(existsSync(join(dir, "data"))).toBe(false);
    newDataDir(join(dir, "data")); // as the appliance's first start leaves it
    const added = cli(dir, ["integrations", "add", "--type", "mqtt", "--username", "line-4", "--json"]);
    expect(added.code).toBe(0);
    const { integration, password } = JSON.parse(added.out);
    expect(integration.username).toBe("line-4");
    expect(password.length).toBeGreaterThanOrEqual(22);

    const given = cli(
      dir,
      ["integrations", "add", "--type", "opcua", "--username", "scada", "--password-stdin"],
      "chosen-password\n",
    );
    expect(given.code).toBe(0);
    expect(given.out).not.toContain("chosen-password");

    expect(cli(dir, ["integrations", "add", "--type", "modbus"]).code).toBe(2);
    expect(cli(dir, ["integrations", "add", "--type", "mqtt", "--username", "line-4"]).err).toContain("already taken");

    writeFileSync(
      join(dir, "fleet.csv"),
      'username,type,password,description\nplc-1,mqtt,,"hall 1, left"\nplc-2,vrpc,given-password-2,\n',
    );
    const imported = cli(dir, ["integrations", "import", join(dir, "fleet.csv"), "--json"]);
    expect(imported.code).toBe(0);
    const rows = JSON.parse(imported.out);
    expect(rows[0].password).toBeString();
    expect(rows[1].password).toBeUndefined();

    const perms = cli(dir, [
      "integrations",
      "permissions",
      "line-4",
      "--publish",
      "plant/line4/#",
      "--subscribe",
      "plant/#",
      "--deny-subscribe",
      "plant/secret/#,plant/+/recipe",
      "--json",
    ]);
    expect(perms.code).toBe(0);
    expect(JSON.parse(perms.out)).toEqual({
      username: "line-4",
      publish: ["plant/line4/#"],
      subscribe: ["plant/#"],
      denyPublish: [],
      denySubscribe: ["plant/secret/#", "plant/+/recipe"],
    });
    expect(cli(dir, ["integrations", "permissions", "line-4", "--deny-publish", "a/#/b"]).code).toBe(2);
    expect(cli(dir, ["integrations", "permissions", "line-4"]).out).toContain(
      "deny subscribe: plant/secret/# plant/+/recipe",
    );

    expect(cli(dir, ["integrations", "disable", "plc-1"]).code).toBe(0);
    const list = JSON.parse(cli(dir, ["integrations", "list", "--json"]).out);
    expect(list.map((i: { username: string; active: boolean }) => `${i.username}:${i.active}`).sort()).toEqual([
      "line-4:true",
      "plc-1:false",
      "plc-2:true",
      "scada:true",
    ]);
    expect(cli(dir, ["integrations", "remove", "nobody"]).code).toBe(2);
    expect(cli(dir, ["integrations", "remove", "plc-2"]).code).toBe(0);
  }, 30_000);

  it("a change by the CLI takes effect in the running appliance at once", async () => {
    const dir = tempDir("gatehouse-cli-");
    const running = await runBinary(
      binary,
      dir,
      [
        "--data-dir",
        join(dir, "data"),
        "--bind",
        "127.0.0.1",
        "--http-port",
        "0",
        "--https-port",
        "0",
        "--mqtt-port",
        "0",
        "--mqtts-port",
        "0",
        "--opcua-port",
        "0",
      ],
      { GATEHOUSE_ADMIN_PASSWORD: "cli-admin-pass" },
    );
    try {
      // A second admin made by the CLI while the appliance runs can sign in there.
      expect(cli(dir, ["admin", "set-password", "--username", "ops"], "ops-password-1\n").code).toBe(0);
      expect(cli(dir, ["integrations", "add", "--type", "mqtt", "--username", "cli-made"]).code).toBe(0);
      // The appliance notices the external write (SQLite data_version) and reconciles.
      await running.waitFor(/integration created .*username=cli-made/, 5000);
      const base = `http://127.0.0.1:${running.ports.http}`;
      const { cookie } = await signIn(base, "ops", "ops-password-1");
      const read = async () =>
        (await (await fetch(`${base}/api/v1/integrations?q=cli-made`, { headers: { cookie } })).json()).items as {
          active: boolean;
        }[];
      await eventually(async () => expect(await read()).toHaveLength(1));
      expect(cli(dir, ["integrations", "disable", "cli-made"]).code).toBe(0);
      await eventually(async () => expect((await read())[0]?.active).toBe(false));
    } finally {
      expect(await running.stop()).toBe(0);
    }
  }, 30_000);
});

describe("backup, restore, export and import between appliances", () => {
  it("a second appliance takes over with every device's credentials; a backup taken while running restores", async () => {
    const a = tempDir("gatehouse-a-");
    const b = tempDir("gatehouse-b-");
    copyFileSync(binary, join(a, "gatehouse"));
    copyFileSync(binary, join(b, "gatehouse"));
    const serveArgs = (dir: string) => [
      "--data-dir",
      join(dir, "data"),
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
    ];
    const first = await runBinary(binary, a, serveArgs(a), { GATEHOUSE_ADMIN_PASSWORD: "a-admin-password" });
    let exported: string;
    let device: { username: string; password: string };
    try {
      const added = JSON.parse(cli(a, ["integrations", "add", "--type", "mqtt", "--username", "line-9", "--json"]).out);
      device = { username: "line-9", password: added.password };
      expect(
        cli(
          a,
          ["integrations", "add", "--type", "opcua", "--username", "scada-9", "--password-stdin"],
          "a-chosen-password\n",
        ).code,
      ).toBe(0);
      // while it runs: a consistent backup and an export
      expect(cli(a, ["backup", join(a, "backup.db")]).code).toBe(0);
      exported = join(a, "export.json");
      expect(cli(a, ["export", exported]).code).toBe(0);
      const restoreWhileRunning = cli(a, ["restore", join(a, "backup.db")]);
      expect(restoreWhileRunning.code).toBe(2);
      expect(restoreWhileRunning.err).toContain("stop it first");
      // a second appliance on the same data dir is refused (exit 2, naming the first)
      const second = Bun.spawnSync([join(a, "gatehouse"), ...serveArgs(a)], { cwd: a });
      expect(second.exitCode).toBe(2);
      expect(second.stdout.toString()).toContain(`in use by another Gatehouse process (pid ${first.proc.pid})`);
      // an export into a reader that starts late arrives whole (the binary waits for the pipe)
      const piped = Bun.spawnSync([
        "bash",
        "-c",
        `'${join(a, "gatehouse")}' export --data-dir '${join(a, "data")}' | (sleep 1; cat)`,
      ]);
      expect((JSON.parse(piped.stdout.toString()) as { integrations: unknown[] }).integrations).toHaveLength(2);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    newDataDir(join(b, "data"));
    expect(cli(b, ["import", "--full", exported]).code).toBe(0);
    const second = await runBinary(binary, b, serveArgs(b), { GATEHOUSE_ADMIN_PASSWORD: "b-admin-password" });
    try {
      const c = await connectMqtt(second.ports.mqtt!, device);
      expect(c.connected).toBe(true);
      await c.endAsync();
    } finally {
      expect(await second.stop()).toBe(0);
    }
    // restore the backup into a third data dir: the same integrations
    const c3 = tempDir("gatehouse-c-");
    copyFileSync(binary, join(c3, "gatehouse"));
    newDataDir(join(c3, "data"));
    expect(cli(c3, ["restore", join(a, "backup.db")]).code).toBe(0);
    const list = JSON.parse(cli(c3, ["integrations", "list", "--json"]).out) as { username: string }[];
    expect(list.map((i) => i.username).sort()).toEqual(["line-9", "scada-9"]);
  }, 60_000);
});
