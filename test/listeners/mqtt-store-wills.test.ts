import { describe, expect, it } from "bun:test";
import type { IClientOptions, MqttClient } from "mqtt";
import type { App } from "../../src/app.ts";
import { appsOfFile, metricValue } from "../helpers/app.ts";
import { connectMqtt, refusalCode } from "../helpers/mqtt.ts";

/**
 * Wills and growing replacements count against broker.db's cap and the integration's share (attack4 F1, F3):
 * one credential's wills or swollen retained values must not leave other integrations' new retained values
 * acknowledged and dropped.
 */
const { start } = appsOfFile();

/** startWith: a store of `storeBytes`, each integration's share `shareBytes` */
const startWith = (storeBytes: number, shareBytes: number) =>
  start(["--mqtt-store-max-bytes", String(storeBytes), "--mqtt-store-max-integration-bytes", String(shareBytes)]);

const made = async (app: App, username: string) => {
  const { integration, password } = await app.core.credentials.create({ type: "mqtt", username });
  return {
    id: integration.id,
    opts: (extra: IClientOptions = {}): IClientOptions => ({ username, password, ...extra }),
  };
};

const metric = metricValue;

const will = (i: number, size: number) => ({
  topic: `wills/${i}`,
  payload: Buffer.alloc(size, 0x77),
  qos: 1 as const,
  retain: true,
});

describe("wills count toward the store (attack4 F1)", () => {
  it("an integration's wills past its share are refused at CONNECT (MQTT 5 0x97, 3.1.1 3); its charge stays within the share", async () => {
    const share = 64 * 1024;
    const { app, port } = await startWith(1024 * 1024, share);
    const alice = await made(app, "wills-alice");
    const clients: MqttClient[] = [];
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      try {
        clients.push(
          await connectMqtt(port, alice.opts({ protocolVersion: 5, clientId: `wa-${i}`, will: will(i, 9000) })),
        );
        codes.push(0);
      } catch (err) {
        codes.push((err as { code?: number }).code ?? -1);
      }
    }
    // 64 KiB holds six or seven 9 KB wills; the rest are refused with quota exceeded
    expect(codes.filter((c) => c === 0).length).toBeGreaterThanOrEqual(5);
    expect(codes.filter((c) => c === 0).length).toBeLessThan(8);
    expect(new Set(codes.filter((c) => c !== 0))).toEqual(new Set([0x97]));
    const charged =
      (await metric(app, "gatehouse_mqtt_store_integration_bytes", `{integration_id="${alice.id}",kind="own"}`)) ?? 0;
    expect(charged).toBeGreaterThan(5 * 9000);
    expect(charged).toBeLessThanOrEqual(share);
    // 3.1.1 hears "server unavailable"
    expect(await refusalCode(port, alice.opts({ protocolVersion: 4, clientId: "wa-311", will: will(99, 9000) }))).toBe(
      3,
    );
    // a will-less connection of the same integration still gets in
    expect(await refusalCode(port, alice.opts({ clientId: "wa-plain" }))).toBe(0);
    // a connection that ends cleanly drops its will and gives its charge back
    await clients.pop()!.endAsync();
    const after =
      (await metric(app, "gatehouse_mqtt_store_integration_bytes", `{integration_id="${alice.id}",kind="own"}`)) ?? 0;
    expect(after).toBeLessThan(charged - 9000);
    for (const c of clients) c.end(true);
  });

  it("wills of two integrations stop at the store's cap (CONNACK 0x97 past it)", async () => {
    const cap = 1024 * 1024;
    const { app, port } = await startWith(cap, cap);
    // two integrations, each allowed the whole store: the store's cap is what stops them
    const both = [await made(app, "wills-cap-alice"), await made(app, "wills-cap-bob")];
    const clients: MqttClient[] = [];
    let refused = 0;
    for (let i = 0; i < 24; i++) {
      try {
        clients.push(
          await connectMqtt(
            port,
            both[i % 2]!.opts({ protocolVersion: 5, clientId: `wc-${i}`, will: will(i, 60_000) }),
          ),
        );
      } catch (err) {
        expect((err as { code?: number }).code).toBe(0x97);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    const data = (await metric(app, "gatehouse_mqtt_store_bytes", '{kind="data"}')) ?? 0;
    expect(data).toBeLessThanOrEqual(cap);
    for (const c of clients) c.end(true);
  });
});

describe("a growing replacement counts against the store's cap (attack4 F3)", () => {
  it("a retained topic cannot swell past the cap; a smaller replacement still works", async () => {
    const cap = 1024 * 1024;
    const { app, port } = await startWith(cap, cap);
    // two integrations, each allowed the whole store: the store's cap is what must stop the swelling
    const alice = await made(app, "swell-alice");
    const bob = await made(app, "swell-bob");
    const a = await connectMqtt(port, alice.opts({ protocolVersion: 5 }));
    const b = await connectMqtt(port, bob.opts({ protocolVersion: 5 }));
    for (let i = 0; i < 12; i++) await (i % 2 ? b : a).publishAsync(`swell/${i}`, "hello", { qos: 1, retain: true });
    // each swells its six topics to 100 KB: 600 KB each, within its share, 1.2 MB together
    for (let i = 0; i < 12; i++)
      await (i % 2 ? b : a)
        .publishAsync(`swell/${i}`, Buffer.alloc(100_000, 0x73), { qos: 1, retain: true })
        .catch(() => undefined);
    const data = (await metric(app, "gatehouse_mqtt_store_bytes", '{kind="data"}')) ?? 0;
    expect(data).toBeLessThanOrEqual(cap);
    // a replacement no larger than the old value always works, even with the store full
    await a.publishAsync("swell/0", "bye", { qos: 1, retain: true });
    const found = new Map<string, number>();
    for await (const m of app.core.bus.retained("swell/#")) found.set(m.topic, m.payload.length);
    expect(found.get("swell/0")).toBe(3);
    expect([...found.values()].filter((n) => n === 5).length).toBeGreaterThan(0);
    await a.endAsync();
    await b.endAsync();
  });
});
