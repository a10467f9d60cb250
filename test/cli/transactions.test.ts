import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CredentialStore } from "../../src/core/credentials.ts";
import { EventBus } from "../../src/core/events.ts";
import { reconcileSlice } from "../../src/core/credentials/reconcile.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { dataVersion } from "../../src/db/client.ts";
import { cleanupTempDirs, newDataDir, tempDir, testCore, testHashCost } from "../helpers/app.ts";
import { waitFor } from "../helpers/wait.ts";
import { runCli } from "../helpers/serve.ts";

afterAll(cleanupTempDirs);

const main = join(import.meta.dir, "../../src/main.ts");
const root = join(import.meta.dir, "../..");
const mosquittoHash = `$7$101$c29tZXNhbHRzYWx0c2FsdA==$${"A".repeat(86)}==`;

/**
 * watchedImport: runs a CLI import while another connection (the appliance's) reads, as often as it
 * can, how many integrations and how many of their activity rows there are; returns every pair seen.
 */
async function watchedImport(dir: string, args: string[]): Promise<{ code: number; err: string; seen: string[] }> {
  const reader = new Database(join(dir, "gatehouse.db"), { readonly: true });
  const seen = new Set<string>();
  const look = () => {
    const { i, a } = reader
      .query(
        "SELECT (SELECT count(*) FROM integrations) AS i, (SELECT count(*) FROM activity WHERE action = 'integration.created') AS a",
      )
      .get() as { i: number; a: number };
    seen.add(`${i}/${a}`);
  };
  const p = Bun.spawn(["bun", main, ...args, "--data-dir", dir], { cwd: root, stdout: "pipe", stderr: "pipe" });
  let done = false;
  const exited = p.exited.then((code) => ((done = true), code));
  while (!done) {
    look();
    await Bun.sleep(1);
  }
  look();
  reader.close();
  return { code: await exited, err: await new Response(p.stderr).text(), seen: [...seen] };
}

describe("a CLI import is one transaction with its activity rows", () => {
  it("integrations import FILE: another connection sees none or all, rows and activity together", async () => {
    const dir = newDataDir();
    const n = 2000;
    const file = join(tempDir(), "fleet.csv");
    writeFileSync(file, `type,username\n${Array.from({ length: n }, (_, i) => `mqtt,device-${i}`).join("\n")}\n`);
    const r = await watchedImport(dir, ["integrations", "import", file]);
    expect(r.err).toContain(`imported ${n} in`);
    expect(r.code).toBe(0);
    expect(r.seen.filter((s) => s !== "0/0" && s !== `${n}/${n}`)).toEqual([]);
    expect(r.seen).toContain(`${n}/${n}`);
  }, 60_000);

  it("a Mosquitto password file: the same", async () => {
    const dir = newDataDir();
    const n = 2000;
    const passwd = join(tempDir(), "passwd");
    writeFileSync(passwd, Array.from({ length: n }, (_, i) => `user-${i}:${mosquittoHash}`).join("\n"));
    const r = await watchedImport(dir, ["integrations", "import", "--mosquitto-passwd", passwd]);
    expect(r.code).toBe(0);
    expect(r.seen.filter((s) => s !== "0/0" && s !== `${n}/${n}`)).toEqual([]);
    expect(r.seen).toContain(`${n}/${n}`);
  }, 60_000);
});

describe("read-only verbs write nothing the appliance would notice", () => {
  it("list, backup, export and onboarding list leave PRAGMA data_version of another connection as it was", async () => {
    const dir = newDataDir();
    expect(
      (await runCli(["integrations", "add", "--type", "mqtt", "--username", "line-1", "--data-dir", dir])).code,
    ).toBe(0);
    const appliance = openDataDir(dir);
    try {
      const work = tempDir();
      for (const verb of [
        ["integrations", "list"],
        ["integrations", "list", "--json"],
        ["backup", join(work, "b.db")],
        ["export", join(work, "e.json")],
        ["export"],
        ["onboarding", "list"],
      ]) {
        const before = dataVersion(appliance);
        const r = await runCli([...verb, "--data-dir", dir]);
        expect([verb.join(" "), r.code]).toEqual([verb.join(" "), 0]);
        expect([verb.join(" "), dataVersion(appliance)]).toEqual([verb.join(" "), before]);
      }
      // and a write is noticed
      const before = dataVersion(appliance);
      expect((await runCli(["integrations", "disable", "line-1", "--data-dir", dir])).code).toBe(0);
      expect(dataVersion(appliance)).not.toBe(before);
    } finally {
      appliance.$client.close();
    }
  }, 60_000);
});

describe("the appliance's reconcile finds what another process changed", () => {
  it("a change in the same millisecond as the appliance's own write of that row is still seen", async () => {
    const { core, dir } = testCore();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "press-1" });
    // the CLI: another connection and store, loaded now, with a clock that reads the same millisecond
    const frozen = Date.now() + 60_000;
    const cli = new CredentialStore(openDataDir(dir), new EventBus(), { hashCost: testHashCost, now: () => frozen });
    const appliance = new CredentialStore(core.db, core.events, { hashCost: testHashCost, now: () => frozen });
    appliance.setActive(integration.id, false); // the appliance writes the row at `frozen`...
    core.syncExternalChanges();
    const updated = waitFor(core.events, "integration.updated", (e) => e.passwordChanged);
    await cli.resetPassword(integration.id, "a-new-password-1"); // ...and the CLI writes it at `frozen` too
    expect(core.syncExternalChanges()).toBe(true);
    expect((await updated).integration.username).toBe("press-1");
    expect((await core.credentials.verify("mqtt", "press-1", "a-new-password-1")).ok).toBe(false); // deactivated
    expect(core.credentials.get(integration.id)!.active).toBe(false);
    core.stop();
  });

  it("creations, changes and removals by another process arrive; an unchanged database loads no row", async () => {
    const { core, dir } = testCore();
    const cli = new CredentialStore(openDataDir(dir), new EventBus(), { hashCost: testHashCost });
    const a = cli.adopt({ type: "mqtt", username: "a", passwordHash: mosquittoHash });
    const b = cli.adopt({ type: "mqtt", username: "b", passwordHash: mosquittoHash });
    expect(core.syncExternalChanges()).toBe(true);
    expect(core.credentials.count()).toBe(2);
    cli.remove(a.id);
    cli.update(b.id, { description: "moved" });
    cli.adopt({ type: "http", username: "c", passwordHash: mosquittoHash });
    expect(core.syncExternalChanges()).toBe(true);
    expect(core.credentials.findByUsername("a")).toBeUndefined();
    expect(core.credentials.findByUsername("b")!.description).toBe("moved");
    expect(core.credentials.findByUsername("c")!.type).toBe("http");
    const revision = core.credentials.findByUsername("b")!.revision;
    await core.credentials.reload();
    expect(core.credentials.findByUsername("b")!.revision).toBe(revision); // not reloaded: unchanged
    core.stop();
  });

  it("many rows are applied a slice at a time: the event loop turns in between, logins wait for all, this process's writes meanwhile are kept", async () => {
    const { core, dir } = testCore();
    const n = 3 * reconcileSlice;
    const fleet = core.credentials.adoptMany(
      Array.from({ length: n }, (_, i) => ({
        type: "mqtt" as const,
        username: `device-${i}`,
        passwordHash: mosquittoHash,
      })),
    );
    // another process changes every one of them (one transaction) and removes one
    const cliDb = openDataDir(dir);
    const cli = new CredentialStore(cliDb, new EventBus(), { hashCost: testHashCost });
    cliDb.$client.transaction(() => {
      for (const i of fleet) cli.update(i.id, { description: "changed by the cli" });
      cli.remove(fleet[0]!.id);
    })();
    const last = fleet.at(-1)!; // applied in the last slice
    let turns = 0;
    const ticking = setInterval(() => turns++, 0);
    try {
      expect(core.syncExternalChanges()).toBe(true);
      expect(core.credentials.get(last.id)!.description).toBe(""); // not applied yet
      // this process writes the row before its slice comes: its write is newer and stays
      core.credentials.update(last.id, { description: "changed here, later" });
      const madeHere = await core.credentials.create({ type: "http", username: "made-meanwhile" });
      // a login asks for every change another process made: it waits for all of them
      const fresh = core.fresh();
      expect(fresh).toBeInstanceOf(Promise);
      await fresh;
      expect(turns).toBeGreaterThan(0);
      expect(core.credentials.get(last.id)!.description).toBe("changed here, later");
      expect(core.credentials.get(fleet[1]!.id)!.description).toBe("changed by the cli");
      expect(core.credentials.get(fleet[0]!.id)).toBeUndefined();
      expect(core.credentials.get(madeHere.integration.id)).toBeDefined(); // newer than the snapshot: kept
      expect(core.credentials.count()).toBe(n);
    } finally {
      clearInterval(ticking);
      core.stop();
    }
  });
});
