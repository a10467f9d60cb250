import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt, refusalCode } from "../helpers/mqtt.ts";

// A provisioning script adds a credential with the CLI and connects the device the moment the CLI
// exits. The running appliance must not refuse it because it has not yet noticed the other process's
// write (it polls SQLite's data_version every 500 ms, the production default used here).

let app: App;
let dir: string;
let base: string;
beforeAll(async () => {
  ({ app, dir, url: base } = await testApp(["--opcua-port", "off"], {}, { watchIntervalMs: 500 }));
}, 30_000);
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const main = join(import.meta.dir, "../../src/main.ts");
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["bun", main, ...args, "--data-dir", dir], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

describe("credentials the moment the CLI says they exist", () => {
  it("CLI add, then an immediate MQTT connect: 50 times in a row, all accepted", async () => {
    const mqttPort = app.address("mqtt")!.port;
    const refused: string[] = [];
    for (let i = 0; i < 50; i++) {
      const added = await cli("integrations", "add", "--type", "mqtt", "--username", `provisioned-${i}`, "--json");
      expect(added.code).toBe(0);
      const { password } = JSON.parse(added.out) as { password: string };
      const code = await refusalCode(mqttPort, {
        username: `provisioned-${i}`,
        password,
        clientId: `provisioned-${i}`,
      });
      if (code !== 0) refused.push(`provisioned-${i}: CONNACK ${code}`);
    }
    expect(refused).toEqual([]);
  }, 120_000);

  it("CLI disable, then an immediate connect: refused at once", async () => {
    const mqttPort = app.address("mqtt")!.port;
    const refusedLate: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { password } = await app.core.credentials.create({ type: "mqtt", username: `revoked-${i}` }).then((r) => r);
      const c = await connectMqtt(mqttPort, { username: `revoked-${i}`, password }); // known and cached
      await c.endAsync();
      expect((await cli("integrations", "disable", `revoked-${i}`)).code).toBe(0);
      const code = await refusalCode(mqttPort, { username: `revoked-${i}`, password });
      if (code !== 5) refusedLate.push(`revoked-${i}: CONNACK ${code}`);
    }
    expect(refusedLate).toEqual([]);
  }, 60_000);

  it("HTTP: CLI add, then an immediate request is accepted", async () => {
    for (let i = 0; i < 10; i++) {
      const added = await cli("integrations", "add", "--type", "http", "--username", `provisioned-http-${i}`, "--json");
      const { password } = JSON.parse(added.out) as { password: string };
      const res = await fetch(`${base}/api/v1/data/plant/provisioned/${i}`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`provisioned-http-${i}:${password}`).toString("base64")}` },
        body: "1",
      });
      expect([i, res.status]).toEqual([i, 202]);
    }
  }, 60_000);

  it("onboarding: CLI open, then an immediate registration is recorded, not told the window is closed", async () => {
    expect((await cli("onboarding", "open", "--minutes", "5")).code).toBe(0);
    const res = await fetch(`${base}/api/v1/register`, {
      method: "POST",
      body: JSON.stringify({ username: "fresh-device", password: "fresh-device-password-1", type: "http" }),
    });
    expect(res.status).toBe(202);
    expect((await cli("onboarding", "close")).code).toBe(0);
  }, 30_000);
});
