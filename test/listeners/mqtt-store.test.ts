import { describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { existsSync, readdirSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { appsOfFile, metricValue, tempDir } from "../helpers/app.ts";
import { connectMqtt, rawMqtt, refusalCode, subackCodes } from "../helpers/mqtt.ts";
import { runCli } from "../helpers/serve.ts";
import { eventually } from "../helpers/wait.ts";

/** The broker store's bounds (README: MQTT limits), and broker.db across upgrades. */
const { start, stop } = appsOfFile();

const made = async (app: App, username: string) => {
  const { password } = await app.core.credentials.create({ type: "mqtt", username });
  return (extra: IClientOptions = {}): IClientOptions => ({ username, password, ...extra });
};

/** session: a client, its CONNACK's session present flag, and every message from the first byte on. */
function session(port: number, opts: IClientOptions) {
  const inbox: string[] = [];
  const waiting: (() => void)[] = [];
  return new Promise<{ client: MqttClient; sessionPresent: boolean; take(n: number): Promise<string[]> }>(
    (resolve, reject) => {
      const client = mqtt.connect({ host: "127.0.0.1", port, reconnectPeriod: 0, protocolVersion: 4, ...opts });
      client.on("message", (_topic, payload) => {
        inbox.push(payload.toString());
        for (const w of waiting.splice(0)) w();
      });
      client.once("connect", (connack) =>
        resolve({
          client,
          sessionPresent: connack.sessionPresent,
          async take(n) {
            while (inbox.length < n) await new Promise<void>((r) => waiting.push(r));
            return inbox.splice(0, n);
          },
        }),
      );
      client.once("error", (err) => (client.end(true), reject(err)));
    },
  );
}

const metric = metricValue;

/** offlineSubscriber: a persistent session subscribed to plant/#, then gone. */
async function offlineSubscriber(port: number, opts: IClientOptions) {
  const c = await connectMqtt(port, { ...opts, clean: false });
  await c.subscribeAsync("plant/#", { qos: 1 });
  await c.endAsync();
}

describe("bounds of what one integration can make the broker keep", () => {
  it("a session's queue keeps its newest messages: past --mqtt-max-queued the oldest are dropped, and counted", async () => {
    const { app, port } = await start(["--mqtt-max-queued", "5"]);
    const reader = await made(app, "q-reader");
    const pub = await connectMqtt(port, (await made(app, "q-pub"))());
    await offlineSubscriber(port, reader({ clientId: "q-1" }));
    for (let i = 0; i < 8; i++) await pub.publishAsync("plant/x", `m-${i}`, { qos: 1 });
    const back = await session(port, reader({ clientId: "q-1", clean: false }));
    expect(await back.take(5)).toEqual(["m-3", "m-4", "m-5", "m-6", "m-7"]);
    expect(await metric(app, "gatehouse_mqtt_dropped_messages_total", '{reason="queue-full"}')).toBe(3);
    await Promise.all([back.client.endAsync(), pub.endAsync()]);
  });

  it("and past --mqtt-max-queued-bytes", async () => {
    const { app, port } = await start(["--mqtt-max-queued-bytes", "4096"]);
    const reader = await made(app, "qb-reader");
    const pub = await connectMqtt(port, (await made(app, "qb-pub"))());
    await offlineSubscriber(port, reader({ clientId: "qb-1" }));
    for (let i = 0; i < 4; i++) await pub.publishAsync("plant/x", `${i}`.repeat(1500), { qos: 1 });
    const back = await session(port, reader({ clientId: "qb-1", clean: false }));
    expect((await back.take(2)).map((m) => m[0])).toEqual(["2", "3"]);
    expect(await metric(app, "gatehouse_mqtt_dropped_messages_total", '{reason="queue-full"}')).toBe(2);
    await Promise.all([back.client.endAsync(), pub.endAsync()]);
  });

  it("past --mqtt-max-sessions the session offline longest is dropped; with all connected a new one is refused", async () => {
    const { app, port } = await start(["--mqtt-max-sessions", "2"]);
    const dev = await made(app, "fleet");
    await offlineSubscriber(port, dev({ clientId: "s1" }));
    await offlineSubscriber(port, dev({ clientId: "s2" }));
    const s3 = await connectMqtt(port, dev({ clientId: "s3", clean: false })); // s1 makes room
    expect(await metric(app, "gatehouse_mqtt_sessions_ended_total", '{reason="sessions-limit"}')).toBe(1);
    const s2 = await session(port, dev({ clientId: "s2", clean: false }));
    expect(s2.sessionPresent).toBe(true);
    // s2 and s3 connected: no room for another persistent session; a clean one is fine
    expect(await refusalCode(port, dev({ clientId: "s1", clean: false }))).toBe(3);
    expect(
      await refusalCode(
        port,
        dev({ clientId: "s1", clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 60 } }),
      ),
    ).toBe(0x97);
    expect(await refusalCode(port, dev({ clientId: "s1", clean: true }))).toBe(0);
    await s2.client.endAsync();
    const s1 = await session(port, dev({ clientId: "s1", clean: false })); // s2 makes room now
    expect(s1.sessionPresent).toBe(false); // it was dropped for s3 before
    expect(await metric(app, "gatehouse_mqtt_stored_sessions")).toBe(2);
    await Promise.all([s1.client.endAsync(), s3.endAsync()]);
  });

  it("a client id longer than --mqtt-max-client-id (128) is refused at every protocol level", async () => {
    const { app, port } = await start();
    const dev = await made(app, "long-ids");
    const id = (n: number) => "x".repeat(n);
    expect(await refusalCode(port, dev({ clientId: id(128), clean: false }))).toBe(0);
    expect(await refusalCode(port, dev({ clientId: id(129) }))).toBe(2);
    expect(await refusalCode(port, dev({ clientId: id(65_000), clean: false }))).toBe(2);
    expect(await refusalCode(port, dev({ clientId: id(129), protocolVersion: 5 }))).toBe(0x85);
    expect(await refusalCode(port, dev({ clientId: id(129), protocolVersion: 3, protocolId: "MQIsdp" }))).toBe(2);
    expect(app.core.sessions.list({}).some((s) => (s.clientId?.length ?? 0) > 128)).toBe(false);
  });

  it("a 3.1.1 session with clean session off ends --mqtt-max-session-expiry after its connection", async () => {
    const { app, port } = await start(["--mqtt-max-session-expiry", "1"]);
    const reader = await made(app, "exp-reader");
    const other = await made(app, "exp-other");
    await offlineSubscriber(port, reader({ clientId: "exp-1" }));
    expect(await refusalCode(port, other({ clientId: "exp-1" }))).toBe(2); // still reader's
    await eventually(async () => expect(await metric(app, "gatehouse_mqtt_stored_sessions")).toBe(0), 5_000);
    expect(await metric(app, "gatehouse_mqtt_sessions_ended_total", '{reason="expired"}')).toBe(1);
    expect(await refusalCode(port, other({ clientId: "exp-1" }))).toBe(0); // free again
  });

  it("past --mqtt-store-max-bytes new queued messages and new retained topics are dropped and counted; a retained value is still replaced", async () => {
    // the whole store: one integration may hold all of it here (its share is mqtt-store-share.test.ts')
    const cap = String(1024 * 1024);
    const { app, port } = await start(["--mqtt-store-max-bytes", cap, "--mqtt-store-max-integration-bytes", cap]);
    const reader = await made(app, "full-reader");
    const pub = await connectMqtt(port, (await made(app, "full-pub"))());
    await pub.publishAsync("plant/state", "first", { qos: 1, retain: true });
    await offlineSubscriber(port, reader({ clientId: "full-1" }));
    const big = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 20; i++) await pub.publishAsync("plant/x", big, { qos: 1 }); // all acknowledged
    const dropped = (await metric(app, "gatehouse_mqtt_dropped_messages_total", '{reason="store-full"}'))!;
    expect(dropped).toBeGreaterThan(0);
    expect(await metric(app, "gatehouse_mqtt_queued_messages")).toBe(20 - dropped);
    expect(await metric(app, "gatehouse_mqtt_store_bytes", '{kind="data"}')).toBeLessThanOrEqual(1024 * 1024);
    await pub.publishAsync("plant/state", "second", { qos: 1, retain: true });
    await pub.publishAsync("plant/new-topic", big, { qos: 1, retain: true });
    const retained: Record<string, number> = {};
    for await (const m of app.core.bus.retained("plant/#")) retained[m.topic] = m.payload.length;
    expect(retained).toEqual({ "plant/state": "second".length });
    expect(await metric(app, "gatehouse_mqtt_dropped_messages_total", '{reason="retained-store-full"}')).toBe(1);
    // while the store is full a persistent session gets no new filter (a clean one does: nothing to store)
    const second = await connectMqtt(port, reader({ clientId: "full-2", clean: false }));
    expect(await subackCodes(second, ["other/#"])).toEqual([128]);
    second.end(true);
    const clean = await connectMqtt(port, reader({ clientId: "full-3" }));
    expect(await subackCodes(clean, ["other/#"])).toEqual([0]);
    clean.end(true);
    await pub.endAsync();
  });

  it("QoS 2 messages received and never released are bounded like a queue: past it the connection closes", async () => {
    const { app, port } = await start(["--mqtt-max-queued", "3"]);
    const dev = await made(app, "qos2-hoarder");
    const raw = await rawMqtt(port);
    const creds = dev();
    raw.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      clientId: "hoarder",
      keepalive: 60,
      username: creds.username,
      password: Buffer.from(String(creds.password)),
    });
    expect(await raw.next()).toMatchObject({ cmd: "connack", returnCode: 0 });
    for (const messageId of [1, 2, 3]) {
      raw.send({ cmd: "publish", topic: "plant/q2", payload: "x", qos: 2, messageId });
      expect(await raw.next()).toMatchObject({ cmd: "pubrec", messageId });
    }
    raw.send({ cmd: "publish", topic: "plant/q2", payload: "x", qos: 2, messageId: 4 });
    expect(await raw.next()).toBeUndefined(); // closed, no PUBREC
  });
});

describe("stored sessions and their integration", () => {
  it("deleting an integration forgets its stored sessions in broker.db: after a restart the id is free", async () => {
    const { app, port, dir } = await start();
    const reader = await made(app, "del-reader");
    const other = await made(app, "del-other");
    await offlineSubscriber(port, reader({ clientId: "del-1" }));
    const pub = await connectMqtt(port, (await made(app, "del-pub"))());
    await pub.publishAsync("plant/x", "queued", { qos: 1 });
    await pub.endAsync();
    const rows = () => {
      const db = new Database(join(dir, "broker.db"), { readonly: true });
      try {
        return ["sessions", "subscriptions", "queue", "messages"].map(
          (t) => (db.query(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n,
        );
      } finally {
        db.close();
      }
    };
    expect(rows()).toEqual([1, 1, 1, 1]);
    app.core.credentials.remove(app.core.credentials.findByUsername("del-reader")!.id);
    await eventually(() => expect(rows()).toEqual([0, 0, 0, 0]));
    await stop(app);
    const again = await start([], dir);
    const back = await session(again.port, other({ clientId: "del-1", clean: false }));
    expect(back.sessionPresent).toBe(false);
    await back.client.endAsync();
  });

  it("a deactivated integration's stored session is forgotten at the next start", async () => {
    const { app, port, dir } = await start();
    const reader = await made(app, "off-reader");
    await offlineSubscriber(port, reader({ clientId: "off-1" }));
    await stop(app);
    // deactivated while the broker was down (the CLI on a stopped appliance)
    const again = await start([], dir);
    again.app.core.credentials.setActive(again.app.core.credentials.findByUsername("off-reader")!.id, false);
    await stop(again.app);
    const third = await start([], dir);
    expect(await metric(third.app, "gatehouse_mqtt_stored_sessions")).toBe(0);
  });
});

/** changedWhileStopped: a persistent session with one queued message, the appliance stopped, then `change` done. */
async function changedWhileStopped(name: string, change: (dir: string) => Promise<void>) {
  const { app, port, dir } = await start();
  const reader = await made(app, name);
  await offlineSubscriber(port, reader({ clientId: `${name}-1` }));
  const pub = await connectMqtt(port, (await made(app, `${name}-pub`))());
  await pub.publishAsync("plant/x", "queued", { qos: 1 });
  await pub.endAsync();
  await stop(app);
  await change(dir);
  const again = await start([], dir);
  return { ...again, back: () => session(again.port, reader({ clientId: `${name}-1`, clean: false })) };
}

describe("an integration changed while the appliance was stopped (attack2 F7)", () => {
  const cli = async (...args: string[]) => expect((await runCli(args)).code).toBe(0);

  it("deactivated and reactivated with the CLI: its stored session and queue are forgotten at start", async () => {
    const { app, back } = await changedWhileStopped("f7-off-on", async (dir) => {
      await cli("integrations", "disable", "f7-off-on", "--data-dir", dir);
      await cli("integrations", "enable", "f7-off-on", "--data-dir", dir);
    });
    expect(await metric(app, "gatehouse_mqtt_stored_sessions")).toBe(0);
    const s = await back();
    expect(s.sessionPresent).toBe(false);
    await s.client.endAsync();
  });

  it("any edit while stopped, permissions only too, forgets them (the store cannot tell what changed)", async () => {
    const { back } = await changedWhileStopped("f7-acl", async (dir) => {
      await cli("integrations", "permissions", "f7-acl", "--subscribe", "plant/#", "--data-dir", dir);
    });
    const s = await back();
    expect(s.sessionPresent).toBe(false);
    await s.client.endAsync();
  });

  it("unchanged, or changed while running (then restarted): resumed with its queue", async () => {
    const { app, dir, back } = await changedWhileStopped("f7-same", async () => undefined);
    const s = await back();
    expect(s.sessionPresent).toBe(true);
    expect(await s.take(1)).toEqual(["queued"]);
    await s.client.endAsync();
    // a permissions edit and a deactivate/activate pair while running: the sessions carry the new stamp
    const id = app.core.credentials.findByUsername("f7-same")!.id;
    app.core.credentials.update(id, { description: "moved to line 2" });
    app.core.credentials.setActive(id, false);
    app.core.credentials.setActive(id, true);
    await offlineSubscriber(app.address("mqtt")!.port, (await made(app, "f7-same-2"))({ clientId: "f7-same-2" }));
    app.core.credentials.update(app.core.credentials.findByUsername("f7-same-2")!.id, { subscribeAcl: ["plant/#"] });
    await stop(app);
    const third = await start([], dir);
    expect(await metric(third.app, "gatehouse_mqtt_stored_sessions")).toBe(1);
  });

  it("a broker.db of version 1 (no stamp) opens with its sessions kept, upgraded to 3", async () => {
    const { back } = await changedWhileStopped("f7-v1", async (dir) => {
      const db = new Database(join(dir, "broker.db"));
      db.run("ALTER TABLE sessions DROP COLUMN integration_updated");
      // nor the owners of retained values (version 3)
      db.run("ALTER TABLE retained DROP COLUMN owner");
      db.run("ALTER TABLE retained DROP COLUMN owner_created");
      db.run("PRAGMA user_version = 1");
      db.close();
    });
    const s = await back();
    expect(s.sessionPresent).toBe(true);
    expect(await s.take(1)).toEqual(["queued"]);
    await s.client.endAsync();
  });
});

describe("broker.db across releases", () => {
  it("a data dir of the previous release (no broker.db) starts, with an empty broker.db made 0600", async () => {
    const dir = tempDir();
    copyFileSync(join(import.meta.dir, "../fixtures/gatehouse-0.1.0.db"), join(dir, "gatehouse.db"));
    const { app, port } = await start([], dir);
    expect(await refusalCode(port, { username: "line-1-plc", password: "line-1-password" })).toBe(0);
    expect(existsSync(join(dir, "broker.db"))).toBe(true);
    await stop(app);
    const db = new Database(join(dir, "broker.db"), { readonly: true });
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: 3 });
    db.close();
  });

  it("a broker.db of a newer release is refused with a clear error and left as it is", async () => {
    const dir = tempDir();
    const db = new Database(join(dir, "broker.db"), { create: true });
    db.run("PRAGMA user_version = 99");
    db.close();
    await expect(start([], dir)).rejects.toThrow(/broker\.db has schema 99.*newer release/);
    const after = new Database(join(dir, "broker.db"), { readonly: true });
    expect(after.query("PRAGMA user_version").get()).toEqual({ user_version: 99 });
    after.close();
  });

  it("a broker.db SQLite cannot read is moved aside and the broker starts empty", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "broker.db"), Buffer.alloc(8192, 0x41));
    const { app, port } = await start([], dir);
    const dev = await made(app, "after-damage");
    expect(await refusalCode(port, dev())).toBe(0);
    expect(readdirSync(dir).some((f) => f.startsWith("broker.db.unreadable-"))).toBe(true);
  });
});

describe("QoS 1 and 2 through the store, raw", () => {
  it("a QoS 2 PUBLISH stored for a persistent session is not published twice when sent again after a restart", async () => {
    const { app, port, dir } = await start();
    const dev = await made(app, "qos2-dev");
    const reader = await made(app, "qos2-reader");
    const r = await session(port, reader({ clientId: "qos2-r" }));
    await r.client.subscribeAsync("plant/#", { qos: 2 });
    const raw = await rawMqtt(port);
    const connect = {
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: false,
      clientId: "qos2-1",
      keepalive: 60,
      ...dev(),
      password: Buffer.from(String(dev().password)),
    };
    raw.send(connect);
    expect(await raw.next()).toMatchObject({ cmd: "connack", returnCode: 0 });
    raw.send({ cmd: "publish", topic: "plant/q2", payload: "once", qos: 2, messageId: 42 });
    expect(await raw.next()).toMatchObject({ cmd: "pubrec", messageId: 42 });
    expect(await r.take(1)).toEqual(["once"]);
    raw.destroy();
    await r.client.endAsync();
    await stop(app);
    const again = await start([], dir);
    const r2 = await session(again.port, reader({ clientId: "qos2-r2" }));
    await r2.client.subscribeAsync("plant/#", { qos: 2 });
    const raw2 = await rawMqtt(again.port);
    raw2.send(connect); // (aedes reports a session present only when it has subscriptions)
    expect(await raw2.next()).toMatchObject({ cmd: "connack", returnCode: 0 });
    // the PUBREC was lost: the client sends the PUBLISH again (DUP), then PUBREL
    raw2.send({ cmd: "publish", topic: "plant/q2", payload: "once", qos: 2, messageId: 42, dup: true });
    expect(await raw2.next()).toMatchObject({ cmd: "pubrec", messageId: 42 });
    raw2.send({ cmd: "pubrel", messageId: 42 });
    expect(await raw2.next()).toMatchObject({ cmd: "pubcomp", messageId: 42 });
    await r2.client.publishAsync("plant/marker", "after", { qos: 1 });
    expect(await r2.take(1)).toEqual(["after"]); // "once" did not come a second time before it
    raw2.destroy();
    await r2.client.endAsync();
  });
});
