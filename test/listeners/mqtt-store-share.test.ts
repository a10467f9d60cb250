import { describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import type { IClientOptions, MqttClient } from "mqtt";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { appsOfFile, metricValue, tempDir } from "../helpers/app.ts";
import { runCli } from "../helpers/serve.ts";
import { closed, connectMqtt, connectWithInbox, nextMessage, subackCodes } from "../helpers/mqtt.ts";
import { AttributeIds, connectOpcua, DataType } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * Each integration's share of broker.db (attack2 F6): one device credential filling the store must not turn off
 * retained values and persistent sessions for every other integration.
 */
/** the store is 1 MiB; an integration's share is then an eighth of it by default, 128 KiB */
const cap = 1024 * 1024;
const share = cap / 8;

const { start, stop } = appsOfFile(["--mqtt-store-max-bytes", String(cap)]);

const made = async (app: App, username: string, type: "mqtt" | "http" = "mqtt") => {
  const { integration, password } = await app.core.credentials.create({ type, username });
  return {
    id: integration.id,
    password,
    opts: (extra: IClientOptions = {}): IClientOptions => ({ username, password, ...extra }),
  };
};

const metric = metricValue;

/** chargeOf: the bytes of broker.db charged to an integration of `kind`, as the metric shows it (0 when it has none) */
const chargeOf = async (app: App, id: number, kind: "own" | "queued") =>
  (await metric(app, "gatehouse_mqtt_store_integration_bytes", `{integration_id="${id}",kind="${kind}"}`)) ?? 0;

/** charge: both kinds together */
const charge = async (app: App, id: number) => (await chargeOf(app, id, "own")) + (await chargeOf(app, id, "queued"));

const retainedUnder = async (app: App, filter: string) => {
  const found = new Map<string, string>();
  for await (const m of app.core.bus.retained(filter)) found.set(m.topic, m.payload.toString());
  return found;
};

const value = Buffer.alloc(1000, 0x61);

/**
 * fill: `n` new retained topics of 1000 bytes at once, QoS 1 over MQTT 5; returns the topics kept (acknowledged)
 * and the reason codes of those refused.
 */
async function fill(client: MqttClient, prefix: string, n: number) {
  const topics = Array.from({ length: n }, (_, i) => `${prefix}/${i}`);
  const results = await Promise.allSettled(topics.map((t) => client.publishAsync(t, value, { qos: 1, retain: true })));
  const kept = topics.filter((_, i) => results[i]!.status === "fulfilled");
  const refused = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as { code?: number }).code] : []));
  return { kept, refused };
}

const v5 = { protocolVersion: 5 as const };

describe("one integration fills its share, not the store (attack2 F6)", () => {
  it("alice's 800 retained topics: bob's persistent subscribe is granted, carol's retained value is kept; alice past her share gets PUBACK 0x97", async () => {
    const { app, port } = await start();
    const alice = await made(app, "share-alice");
    const bob = await made(app, "share-bob");
    const carol = await made(app, "share-carol");
    const a = await connectMqtt(port, alice.opts(v5));
    // 800 new topics of ~1.5 KiB stored each: more than the whole store
    const { kept, refused } = await fill(a, "plant/alice", 800);

    // bob's persistent session still gets its filter at the QoS it asked for
    const b = await connectMqtt(port, bob.opts({ clientId: "share-bob-1", clean: false }));
    expect(await b.subscribeAsync("plant/#", { qos: 1 })).toEqual([{ topic: "plant/#", qos: 1 }]);
    await b.endAsync();
    // carol's QoS 1 retained value on a new topic is stored, and a new subscriber gets it (larger than one of
    // alice's: what a full store has left between her last topic and its cap cannot hold it by chance)
    const c = await connectMqtt(port, carol.opts());
    const carolValue = `carol-${"c".repeat(2000)}`;
    await c.publishAsync("plant/carol", carolValue, { qos: 1, retain: true });
    await c.endAsync();
    const reader = await connectMqtt(port, carol.opts());
    const got = nextMessage(reader, 5_000);
    await reader.subscribeAsync("plant/carol", { qos: 1 });
    expect(await got).toEqual({ topic: "plant/carol", payload: carolValue });
    await reader.endAsync();

    // alice was refused past her share, with quota exceeded, and kept her connection (MQTT 5)
    expect(refused.length).toBeGreaterThan(0);
    expect(new Set(refused)).toEqual(new Set([0x97]));
    expect(kept.length).toBe(800 - refused.length);
    expect((await retainedUnder(app, "plant/alice/#")).size).toBe(kept.length);
    expect(await charge(app, alice.id)).toBeLessThanOrEqual(share);
    expect(await charge(app, alice.id)).toBeGreaterThan(share - 2 * (value.length + 600));
    expect(await metric(app, "gatehouse_mqtt_store_share_refused_total", `{integration_id="${alice.id}"}`)).toBe(
      refused.length,
    );
    expect(await metric(app, "gatehouse_mqtt_dropped_messages_total", '{reason="integration-share"}')).toBe(
      refused.length,
    );
    expect(a.connected).toBe(true);

    // her next new topic is refused; replacing one of hers is not; clearing one frees room for a new one
    await expect(a.publishAsync("plant/alice/new-1", value, { qos: 1, retain: true })).rejects.toMatchObject({
      code: 0x97,
    });
    await a.publishAsync(kept[1]!, Buffer.alloc(1000, 0x62), { qos: 1, retain: true });
    // ...unless it grows past her share: her topics cannot be swollen one by one once she holds it
    await expect(a.publishAsync(kept[2]!, Buffer.alloc(4000, 0x63), { qos: 1, retain: true })).rejects.toMatchObject({
      code: 0x97,
    });
    const before = await charge(app, alice.id);
    await a.publishAsync(kept[0]!, "", { qos: 1, retain: true });
    expect(await charge(app, alice.id)).toBeLessThan(before);
    await a.publishAsync("plant/alice/new-1", value, { qos: 1, retain: true });
    await expect(a.publishAsync("plant/alice/new-2", value, { qos: 1, retain: true })).rejects.toMatchObject({
      code: 0x97,
    });
    const now = await retainedUnder(app, "plant/alice/#");
    expect(now.has(kept[0]!)).toBe(false);
    expect(now.get(kept[1]!)).toBe("b".repeat(1000));
    expect(now.get(kept[2]!)).toBe("a".repeat(1000));
    expect(now.has("plant/alice/new-1")).toBe(true);
    expect(now.has("plant/alice/new-2")).toBe(false);
    await a.endAsync();
  });

  it("MQTT 3.1.1 past the share: no PUBACK, the connection closes; HTTP answers 503 not_stored; QoS 0 is dropped", async () => {
    const { app, port, url } = await start();
    const dev = await made(app, "share-311");
    const a = await connectMqtt(port, dev.opts(v5));
    const { refused } = await fill(a, "plant/full311", 200);
    expect(refused.length).toBeGreaterThan(0);
    await a.endAsync();
    // QoS 0 has no acknowledgement: the value is not kept, the connection stays
    const q0 = await connectMqtt(port, dev.opts());
    await q0.publishAsync("plant/full311/qos0", value, { qos: 0, retain: true });
    const old = await connectMqtt(port, dev.opts());
    const gone = closed(old);
    old.publish("plant/full311/qos1", value, { qos: 1, retain: true });
    await gone;
    expect(q0.connected).toBe(true);
    await q0.endAsync();
    const kept = await retainedUnder(app, "plant/full311/#");
    expect(kept.has("plant/full311/qos0")).toBe(false);
    expect(kept.has("plant/full311/qos1")).toBe(false);

    // an HTTP integration has its share too
    const gw = await made(app, "share-http", "http");
    const auth = `Basic ${Buffer.from(`share-http:${gw.password}`).toString("base64")}`;
    let status = 202;
    let n = 0;
    while (status === 202 && n < 400) {
      const res = await fetch(`${url}/api/v1/data/line/${n++}?retain=true&qos=1`, {
        method: "POST",
        headers: { authorization: auth },
        body: value,
      });
      status = res.status;
      if (status !== 202) expect(((await res.json()) as { error?: string }).error).toBe("not_stored");
    }
    expect(status).toBe(503);
    expect(n).toBeLessThan(400);
    expect(await charge(app, gw.id)).toBeLessThanOrEqual(share);
    // the MQTT integration is untouched by it
    expect((await retainedUnder(app, "line/#")).size).toBe(n - 1);
  });

  it("a persistent session's queue counts against its integration's share, never its publisher's", async () => {
    const { app, port } = await start();
    const bob = await made(app, "queue-bob");
    const carol = await made(app, "queue-carol");
    const b = await connectMqtt(
      port,
      bob.opts({ ...v5, clientId: "queue-bob-1", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    await b.subscribeAsync("plant/#", { qos: 1 });
    await b.endAsync();
    const c = await connectMqtt(port, carol.opts(v5));
    // 30 messages of 10 KB for bob's queue: 300 KB, more than his share; all acknowledged to carol
    for (let i = 0; i < 30; i++) await c.publishAsync("plant/q", Buffer.alloc(10_000, i), { qos: 1 });
    const notQueued = (await metric(app, "gatehouse_mqtt_store_share_refused_total", `{integration_id="${bob.id}"}`))!;
    expect(notQueued).toBeGreaterThan(0);
    expect(await metric(app, "gatehouse_mqtt_queued_messages")).toBe(30 - notQueued);
    expect(await chargeOf(app, bob.id, "queued")).toBeLessThanOrEqual(share);
    expect(await chargeOf(app, carol.id, "queued")).toBe(0);
    // carol keeps her own share: her retained value is kept
    await c.publishAsync("plant/carol", "still", { qos: 1, retain: true });
    expect((await retainedUnder(app, "plant/carol")).get("plant/carol")).toBe("still");
    await c.endAsync();
    // bob's queue at his share stops only more queuing: another persistent session of his gets its new filter
    // (attack4 F4: what others queue for him is checked apart from what he keeps himself)
    const second = { ...v5, clientId: "queue-bob-2", clean: false, properties: { sessionExpiryInterval: 3600 } };
    const two = await connectMqtt(port, bob.opts(second));
    expect(await subackCodes(two, ["other/#"])).toEqual([0]);
    two.end(true);
    // his first session comes back and takes its queue: that frees his share
    const one = await connectWithInbox(port, bob.opts({ ...second, clientId: "queue-bob-1" }));
    for (let i = 0; i < 30 - notQueued; i++) await one.next();
    await one.client.endAsync();
    // (carol's small "still" may wait there still: it matched his filter too)
    expect(await eventually(async () => (await chargeOf(app, bob.id, "queued")) < 2_000)).toBe(true);
  });

  it("a retained topic another integration publishes moves its charge there; deleting an integration frees its share, its values stay", async () => {
    const { app, port, dir } = await start();
    const alice = await made(app, "move-alice");
    const carol = await made(app, "move-carol");
    const a = await connectMqtt(port, alice.opts(v5));
    const { kept } = await fill(a, "plant/move", 200);
    await a.endAsync();
    const full = await charge(app, alice.id);
    const c = await connectMqtt(port, carol.opts(v5));
    await c.publishAsync(kept[0]!, value, { qos: 1, retain: true });
    await c.endAsync();
    const moved = full - (await charge(app, alice.id));
    expect(moved).toBeGreaterThan(value.length);
    expect(await charge(app, carol.id)).toBe(moved);

    app.core.credentials.remove(alice.id);
    expect(await charge(app, alice.id)).toBe(0);
    expect((await retainedUnder(app, "plant/move/#")).size).toBe(kept.length);
    await stop(app);
    const db = new Database(join(dir, "broker.db"), { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM retained WHERE owner IS NOT NULL").get()).toEqual({ n: 1 });
    db.close();
    const back = await start([], dir);
    expect(await charge(back.app, alice.id)).toBe(0);
    expect(await charge(back.app, carol.id)).toBe(moved);
    expect((await retainedUnder(back.app, "plant/move/#")).size).toBe(kept.length);
  });
});

describe("what others queue for an integration is checked apart from its own (attack4 F4)", () => {
  it("alice fills bob's offline session's queue: bob's own retained value and new filter are still kept", async () => {
    const { app, port } = await start();
    const alice = await made(app, "f4-alice");
    const bob = await made(app, "f4-bob");
    const b = await connectMqtt(
      port,
      bob.opts({ ...v5, clientId: "f4-bob-1", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    await b.subscribeAsync("cmd/#", { qos: 1 });
    await b.endAsync();
    // alice queues 20 x 10 KB for bob: more than his share; alice is acknowledged every time
    const a = await connectMqtt(port, alice.opts(v5));
    for (let i = 0; i < 20; i++) await a.publishAsync("cmd/x", Buffer.alloc(10_000, 0x78), { qos: 1 });
    await a.endAsync();
    // bob's own retained status and a new persistent filter are kept
    const b2 = await connectMqtt(
      port,
      bob.opts({ ...v5, clientId: "f4-bob-2", clean: false, properties: { sessionExpiryInterval: 3600 } }),
    );
    await b2.publishAsync("bobown/status", Buffer.alloc(5000, 0x62), { qos: 1, retain: true });
    expect(await subackCodes(b2, ["bobown/#"])).toEqual([0]);
    expect((await retainedUnder(app, "bobown/#")).size).toBe(1);
    expect(await chargeOf(app, bob.id, "queued")).toBeLessThanOrEqual(share);
    expect(await chargeOf(app, bob.id, "queued")).toBeGreaterThan(share - 2 * 10_600);
    expect(await chargeOf(app, alice.id, "queued")).toBe(0);
    expect(await chargeOf(app, bob.id, "own")).toBeGreaterThan(5000);
    await b2.endAsync();
  });
});

describe("charges come back from broker.db", () => {
  it("an integration removed while the appliance was stopped: its values stay, nobody's; its id is charged nothing", async () => {
    const { app, port, dir } = await start();
    const gone = await made(app, "stopped-gone");
    const a = await connectMqtt(port, gone.opts(v5));
    const { kept } = await fill(a, "plant/gone", 200);
    await a.endAsync();
    expect(await charge(app, gone.id)).toBeGreaterThan(share / 2);
    await stop(app);
    const cli = await runCli(["integrations", "remove", "stopped-gone", "--data-dir", dir]);
    expect(cli.code).toBe(0);
    const back = await start([], dir);
    expect(await charge(back.app, gone.id)).toBe(0);
    expect((await retainedUnder(back.app, "plant/gone/#")).size).toBe(kept.length);
    await stop(back.app);
    const db = new Database(join(dir, "broker.db"), { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM retained WHERE owner IS NOT NULL").get()).toEqual({ n: 0 });
    db.close();
  });

  it("after a restart each integration is charged as before: alice is still at her share, clearing still frees it", async () => {
    const { app, port, dir } = await start();
    const alice = await made(app, "restart-alice");
    const bob = await made(app, "restart-bob");
    const a = await connectMqtt(port, alice.opts(v5));
    const { kept, refused } = await fill(a, "plant/restart", 200);
    expect(refused.length).toBeGreaterThan(0);
    await a.endAsync();
    const b = await connectMqtt(port, bob.opts({ clientId: "restart-bob-1", clean: false }));
    await b.subscribeAsync("plant/#", { qos: 1 });
    await b.endAsync();
    const c = await connectMqtt(port, alice.opts());
    for (let i = 0; i < 5; i++) await c.publishAsync("plant/q", Buffer.alloc(5000, i), { qos: 1 });
    await c.endAsync();
    const charges = [await charge(app, alice.id), await charge(app, bob.id)];
    const data = await metric(app, "gatehouse_mqtt_store_bytes", '{kind="data"}');
    expect(charges[1]).toBeGreaterThan(5 * 5000);
    await stop(app);

    const back = await start([], dir);
    expect([await charge(back.app, alice.id), await charge(back.app, bob.id)]).toEqual(charges);
    expect(await metric(back.app, "gatehouse_mqtt_store_bytes", '{kind="data"}')).toBe(data);
    const again = await connectMqtt(back.port, alice.opts(v5));
    await expect(again.publishAsync("plant/restart/new", value, { qos: 1, retain: true })).rejects.toMatchObject({
      code: 0x97,
    });
    await again.publishAsync(kept[0]!, "", { qos: 1, retain: true });
    await again.publishAsync("plant/restart/new", value, { qos: 1, retain: true });
    await again.endAsync();
  });

  it("an OPC UA Write of a retained value is charged to the writing session's integration and refused past its share", async () => {
    const { app, port } = await start(["--opcua-port", "0"]);
    const feeder = await made(app, "ua-feeder");
    const f = await connectMqtt(port, feeder.opts());
    const topics = Array.from({ length: 200 }, (_, i) => `ua/tag/${i}`);
    for (const t of topics) await f.publishAsync(t, "x", { qos: 1, retain: true });
    const { integration, password } = await app.core.credentials.create({ type: "opcua", username: "ua-writer" });
    const c = await connectOpcua(app.address("opcua")!.port, { userName: "ua-writer", password });
    const write = (t: string) =>
      c.session
        .write({
          nodeId: `ns=1;s=Topics/${t}`,
          attributeId: AttributeIds.Value,
          value: { value: { dataType: DataType.String, value: "w".repeat(1000) } },
        })
        .then((st) => st.name);
    await eventually(async () => expect(await write(topics.at(-1)!)).toBe("Good")); // the mirror has them all
    const results: string[] = [];
    for (const t of topics.slice(0, -1)) results.push(await write(t));
    // 200 values of 1000 bytes do not fit in a 128 KiB share: the later ones are refused, none half-kept
    expect(results.filter((r) => r === "Good").length).toBeGreaterThan(50);
    expect(results.filter((r) => r === "Good").length).toBeLessThan(199);
    expect(new Set(results)).toEqual(new Set(["Good", "BadResourceUnavailable"]));
    expect(await charge(app, integration.id)).toBeGreaterThan(share / 2);
    expect(await charge(app, integration.id)).toBeLessThanOrEqual(share);
    // another integration still stores its own value
    expect(await f.publishAsync("ua/other", "fine", { qos: 1, retain: true }).then(() => "ok")).toBe("ok");
    await c.close();
    await f.endAsync();
    await stop(app);
  }, 60_000);

  it("a broker.db of version 2 (the release before) opens as version 3 with every row: values nobody's, sessions resumed", async () => {
    const dir = tempDir();
    for (const f of ["broker.db", "gatehouse.db"])
      copyFileSync(join(import.meta.dir, "../fixtures/broker-v2", f), join(dir, f));
    // the fixture's session went offline when it was made (6 Dec 2026) with a 1-day expiry: as the upgrade
    // happens now, it went offline a moment ago (found: the test failed for good a day after it was written)
    const old = new Database(join(dir, "broker.db"));
    old.run("UPDATE sessions SET offline_since = ?", [Date.now() - 1000]);
    old.close();
    const { app, port } = await start([], dir);
    expect(Object.fromEntries(await retainedUnder(app, "plant/#"))).toEqual({ "plant/retained": "v2-value" });
    // the v2 session resumes with its 3 queued messages (the retained one matched its filter too)
    const s = await connectWithInbox(port, {
      username: "v2-sub",
      password: "v2-sub-password-1",
      clientId: "v2-sub-1",
      clean: false,
    });
    const inbox = [await s.next(), await s.next(), await s.next()].map((m) => m.payload);
    expect(inbox.sort()).toEqual(["queued-1", "queued-2", "v2-value"]);
    await s.client.endAsync();
    await stop(app);
    const db = new Database(join(dir, "broker.db"), { readonly: true });
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: 3 });
    expect(db.query("SELECT topic, owner, owner_created FROM retained").all()).toEqual([
      { topic: "plant/retained", owner: null, owner_created: null },
    ]);
    expect(db.query("SELECT count(*) AS n FROM sessions").get()).toEqual({ n: 1 });
    db.close();
  });
});
