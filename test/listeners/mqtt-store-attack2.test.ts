import { afterAll, describe, expect, it } from "bun:test";
import type { IClientOptions } from "mqtt";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt, subackCodes } from "../helpers/mqtt.ts";

/** The broker store against what one credential can make it keep, and broker.db files from outside (findings attack2). */
afterAll(cleanupTempDirs);

const apps: App[] = [];
afterAll(async () => {
  for (const a of apps) await a.stop();
});

async function start(args: string[] = [], dir?: string) {
  const t = await testApp(["--opcua-port", "off", ...args], {}, {}, dir);
  apps.push(t.app);
  return { ...t, port: t.app.address("mqtt")!.port };
}

const made = async (app: App, username: string) => {
  const { password } = await app.core.credentials.create({ type: "mqtt", username });
  return (extra: IClientOptions = {}): IClientOptions => ({ username, password, ...extra });
};

const filters = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}/${i}/#`);

describe("subscriptions are bounded (F1)", () => {
  it("a session holds at most --mqtt-max-subscriptions: SUBACK 0x97 at MQTT 5, 0x80 at 3.1.1, past it", async () => {
    const { app, port } = await start(["--mqtt-max-subscriptions", "5"]);
    const opts = await made(app, "subs-a");
    const v5 = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-v5", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    // one SUBSCRIBE of 7 new filters: 5 granted, 2 refused as over quota
    expect(await subackCodes(v5, filters("plant/a", 7))).toEqual([0, 0, 0, 0, 0, 0x97, 0x97]);
    // a filter the session holds already is only a change of options
    expect(await subackCodes(v5, ["plant/a/0/#"])).toEqual([0]);
    expect(await subackCodes(v5, ["plant/b"])).toEqual([0x97]);
    await v5.endAsync();
    const v4 = await connectMqtt(port, opts({ protocolVersion: 4, clientId: "subs-v4" }));
    expect(await subackCodes(v4, filters("plant/c", 6))).toEqual([0, 0, 0, 0, 0, 0x80]);
    await v4.endAsync();
    // the refused filters were not stored with the persistent session
    const again = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-v5", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    expect(await subackCodes(again, ["plant/a/6/#"])).toEqual([0x97]);
    await again.endAsync();
  });

  it("an integration's stored sessions hold at most --mqtt-max-integration-subscriptions together", async () => {
    const { app, port } = await start(["--mqtt-max-integration-subscriptions", "6"]);
    const opts = await made(app, "subs-b");
    const one = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-b1", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    expect(await subackCodes(one, filters("plant/d", 4))).toEqual([0, 0, 0, 0]);
    await one.endAsync();
    const two = await connectMqtt(
      port,
      opts({ protocolVersion: 5, clientId: "subs-b2", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    expect(await subackCodes(two, filters("plant/e", 4))).toEqual([0, 0, 0x97, 0x97]);
    await two.endAsync();
    // another integration is not affected
    const other = await connectMqtt(
      port,
      (await made(app, "subs-c"))({
        protocolVersion: 5,
        clean: false,
        clientId: "c1",
        properties: { sessionExpiryInterval: 3600 },
      }),
    );
    expect(await subackCodes(other, filters("plant/f", 4))).toEqual([0, 0, 0, 0]);
    await other.endAsync();
  });
});
