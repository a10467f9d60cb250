import { afterAll, describe, expect, it } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { createCore } from "../../src/core/index.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { cleanupTempDirs, tempDir, testHashCost } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

/**
 * test/fixtures/gatehouse-0.1.0.db was written by release 0.1.0 (four integrations of every type, one
 * deactivated, topic permissions, two admins, one API token). Every later release must open it in
 * place with all of that intact and every old password still working.
 */
describe("upgrade in place from 0.1.0", () => {
  const open = () => {
    const dir = tempDir();
    copyFileSync(join(import.meta.dir, "../fixtures/gatehouse-0.1.0.db"), join(dir, "gatehouse.db"));
    const db = openDataDir(dir);
    return { db, core: createCore(db, silentLogger, { hashCost: testHashCost }) };
  };

  it("keeps every integration, permission, admin and token", async () => {
    const { core } = open();
    const all = core.credentials.list({ pageSize: 200 }).rows;
    expect(all.map((i) => `${i.type}:${i.username}:${i.active}`).sort()).toEqual([
      "http:webhook:false",
      "mqtt:line-1-plc:true",
      "opcua:scada-client:true",
      "vrpc:heisenware/agent-1:true",
    ]);
    const plc = core.credentials.findByUsername("line-1-plc")!;
    expect(plc.description).toBe("Line 1 <PLC> & co");
    expect(plc.publishAcl).toEqual(["plant/line1/#"]);
    expect(plc.subscribeAcl).toEqual(["plant/line1/cmd/#", "plant/+/status"]);
    expect((await core.credentials.verify("mqtt", "line-1-plc", "line-1-password")).ok).toBe(true);
    expect((await core.credentials.verify("opcua", "scada-client", "scada-password")).ok).toBe(true);
    expect(await core.credentials.verify("http", "webhook", "webhook-password")).toMatchObject({
      ok: false,
      reason: "deactivated",
    });
    expect((await core.admins.signIn("admin", "old-admin-password")).session.username).toBe("admin");
    expect((await core.admins.signIn("operator", "operator-password")).session.username).toBe("operator");
    // a token made before tokens had a role keeps what it could do: everything
    expect(core.admins.resolveApiToken("gh_biUDSpZhCOz9qPyA4QRbhr2-1efu6QUxtFkYL_LK8Y4")).toMatchObject({
      name: "ci-token",
      role: "full",
    });
    core.stop();
  });

  it("opens twice (migrations are applied once)", () => {
    const dir = tempDir();
    copyFileSync(join(import.meta.dir, "../fixtures/gatehouse-0.1.0.db"), join(dir, "gatehouse.db"));
    openDataDir(dir).$client.close();
    const db = openDataDir(dir);
    expect(db.$client.query("SELECT count(*) AS n FROM integrations").get()).toEqual({ n: 4 });
    db.$client.close();
  });
});
