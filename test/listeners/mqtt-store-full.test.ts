import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { AcceptPool } from "../../src/core/accept-pool.ts";
import { BusNotStoredError } from "../../src/core/bus.ts";
import type { Core } from "../../src/core/index.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { createDeviceApi } from "../../src/listeners/http/device-api.ts";
import { createMqttListener } from "../../src/listeners/mqtt/index.ts";
import { cleanupTempDirs, testCore } from "../helpers/app.ts";
import { connectMqtt, nextMessage, type RawMqtt, rawMqtt } from "../helpers/mqtt.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * A full disk stops the broker store, and nothing else. broker.db's writer is opened with SQLite's
 * max_page_count (the `maxPageCount` seam): past it SQLite answers SQLITE_FULL exactly as on a full disk,
 * without filling this machine's disk. gatehouse.db lives beside it, as in production.
 */
let core: Core;
let listener: ReturnType<typeof createMqttListener>;
let port: number;
let file: string;
const pool = new AcceptPool({ capacity: 100, timeoutMs: 10_000 });

beforeAll(async () => {
  const t = testCore();
  core = t.core;
  core.start();
  file = join(t.dir, "broker.db");
  listener = createMqttListener(
    { core, log: silentLogger, pool },
    { host: "127.0.0.1", port: 0, store: { file, maxPageCount: 48 } },
  );
  await listener.start();
  port = listener.address()!.port;
});
afterAll(async () => {
  await listener.stop();
  pool.stop();
  core.stop();
  cleanupTempDirs();
});

const login = async (username: string, type: "mqtt" | "http" = "mqtt") => {
  const { password } = await core.credentials.create({ type, username });
  return { username, password };
};

async function rawClient(username: string, password: string, protocolVersion: 4 | 5, clientId: string) {
  const raw = await rawMqtt(port, "127.0.0.1", protocolVersion);
  raw.send({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion,
    clean: true,
    clientId,
    keepalive: 60,
    username,
    password: Buffer.from(password),
  });
  expect(await raw.next()).toMatchObject({ cmd: "connack" });
  return raw;
}

const metric = async (name: string) => {
  const line = (await core.metrics.render()).split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1]);
};

describe("broker.db full (SQLITE_FULL)", () => {
  let pub: RawMqtt;
  let reader: { username: string; password: string };

  it("a 3.1.1 QoS 1 PUBLISH that cannot be stored gets no PUBACK: its connection closes, to send it again later", async () => {
    reader = await login("full-reader");
    const sub = await connectMqtt(port, { ...reader, clientId: "full-r", clean: false });
    await sub.subscribeAsync("plant/#", { qos: 1 });
    await sub.endAsync();
    const p = await login("full-pub");
    pub = await rawClient(p.username, p.password, 4, "full-pub-4");
    const payload = Buffer.alloc(8 * 1024, 1);
    let acked = 0;
    for (let id = 1; id <= 200; id++) {
      pub.send({ cmd: "publish", topic: "plant/x", payload, qos: 1, messageId: id });
      const answer = await pub.next();
      if (answer === undefined) break; // closed: not acknowledged
      expect(answer).toMatchObject({ cmd: "puback", messageId: id });
      acked++;
    }
    expect(acked).toBeGreaterThan(0);
    expect(acked).toBeLessThan(200);
    expect(pub.isClosed).toBe(true);
    expect(await metric("gatehouse_mqtt_store_failing")).toBe(1);
    // every message acknowledged is in broker.db (the refused one is not; it was never acknowledged)
    const db = new Database(file, { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM queue WHERE client_id = 'full-r'").get()).toEqual({ n: acked });
    db.close();
  });

  it("an MQTT 5 client gets PUBACK 0x97; a retained message over the bus (HTTP) is refused with 503", async () => {
    const p = await login("full-pub5");
    const v5 = await rawClient(p.username, p.password, 5, "full-pub-5");
    v5.send({ cmd: "publish", topic: "plant/y", payload: Buffer.alloc(8 * 1024, 2), qos: 1, messageId: 7 });
    expect(await v5.next()).toMatchObject({ cmd: "puback", messageId: 7, reasonCode: 0x97 });
    v5.destroy();
    await expect(
      core.bus.publish({ topic: "line/value", payload: Buffer.alloc(64 * 1024), retain: true, qos: 1 }),
    ).rejects.toBeInstanceOf(BusNotStoredError);
    const api = createDeviceApi(core, silentLogger, {
      onlineWindowMs: 60_000,
      maxBodyBytes: 1024 * 1024,
      maxBatch: 10,
      forwardAuthProxy: "off",
    });
    api.start();
    const gw = await login("full-gateway", "http");
    const res = await api.mount.fetch(
      new Request("http://appliance/api/v1/data/line/value?retain=true&qos=1", {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`${gw.username}:${gw.password}`).toString("base64")}` },
        body: Buffer.alloc(64 * 1024, 3),
      }),
      "127.0.0.1",
    );
    expect(res.status).toBe(503);
    expect((await res.json()).error).toBe("not_stored");
    api.stop();
  });

  it("everything that needs no disk goes on: QoS 0, QoS 1 to online clients, logins, admin writes", async () => {
    const live = await connectMqtt(port, { ...(await login("live-sub")) });
    await live.subscribeAsync("live/#", { qos: 1 });
    const p = await login("live-pub");
    const raw = await rawClient(p.username, p.password, 4, "live-pub-4");
    const got = nextMessage(live, 5_000);
    raw.send({ cmd: "publish", topic: "live/x", payload: "still here", qos: 1, messageId: 3 });
    expect(await raw.next()).toMatchObject({ cmd: "puback", messageId: 3 });
    expect(await got).toEqual({ topic: "live/x", payload: "still here" });
    const qos0 = nextMessage(live, 5_000);
    raw.send({ cmd: "publish", topic: "live/y", payload: "qos 0", qos: 0 });
    expect(await qos0).toEqual({ topic: "live/y", payload: "qos 0" });
    raw.destroy();
    await live.endAsync();
    // gatehouse.db is another file: the admin's writes are not held up
    const admin = await core.credentials.create({ type: "mqtt", username: "made-while-full" });
    expect(core.credentials.get(admin.integration.id)?.username).toBe("made-while-full");
  });

  it("once there is room again the store heals: the whole state is written again and PUBACKs come back", async () => {
    // the persistent session's queue was what filled it
    core.credentials.remove(core.credentials.findByUsername("full-reader")!.id);
    await eventually(async () => expect(await metric("gatehouse_mqtt_store_failing")).toBe(0), 10_000);
    const p = await login("healed-pub");
    const raw = await rawClient(p.username, p.password, 4, "healed-4");
    raw.send({ cmd: "publish", topic: "plant/state", payload: "ok", qos: 1, retain: true, messageId: 9 });
    expect(await raw.next()).toMatchObject({ cmd: "puback", messageId: 9 });
    raw.destroy();
  });
});

describe("what was answered 'not stored' is not kept (attack2 F8)", () => {
  it("after room returns, a persistent subscriber gets none of the refused messages and no refused retained value is kept", async () => {
    const t = testCore();
    t.core.start();
    const f8file = join(t.dir, "broker.db");
    const l = createMqttListener(
      { core: t.core, log: silentLogger, pool },
      { host: "127.0.0.1", port: 0, store: { file: f8file, maxPageCount: 48 } },
    );
    await l.start();
    const p8 = l.address()!.port;
    const made = async (username: string) => ({
      username,
      ...(await t.core.credentials.create({ type: "mqtt", username })),
    });
    try {
      const bob = await made("f8-bob");
      const sub = await connectMqtt(p8, {
        username: bob.username,
        password: bob.password,
        clientId: "f8-bob",
        clean: false,
      });
      await sub.subscribeAsync("q/#", { qos: 1 });
      await sub.endAsync();
      const filler = await made("f8-filler");
      const fsub = await connectMqtt(p8, {
        username: filler.username,
        password: filler.password,
        clientId: "f8-f",
        clean: false,
      });
      await fsub.subscribeAsync("fill/#", { qos: 1 });
      await fsub.endAsync();
      // fill broker.db until a PUBLISH is refused
      const pubber = await made("f8-pub");
      const raw = async (v: 4 | 5, clientId: string) => {
        const r = await rawMqtt(p8, "127.0.0.1", v);
        r.send({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: v,
          clean: true,
          clientId,
          keepalive: 60,
          username: pubber.username,
          password: Buffer.from(pubber.password),
        });
        expect(await r.next()).toMatchObject({ cmd: "connack" });
        return r;
      };
      const fill = await raw(4, "f8-fill");
      for (let id = 1; id <= 500; id++) {
        fill.send({ cmd: "publish", topic: "fill/x", payload: Buffer.alloc(8 * 1024, 1), qos: 1, messageId: id });
        if ((await fill.next()) === undefined) break;
      }
      expect(fill.isClosed).toBe(true);
      // 3.1.1: no PUBACK; MQTT 5: 0x97; the bus (HTTP): not stored (each larger than the room left: the store
      // heals at once when the refused message is taken back, so a small one would fit)
      const v4 = await raw(4, "f8-v4");
      v4.send({ cmd: "publish", topic: "q/full311", payload: Buffer.alloc(8 * 1024, 2), qos: 1, messageId: 1 });
      expect(await v4.next()).toBeUndefined();
      const v5 = await raw(5, "f8-v5");
      v5.send({
        cmd: "publish",
        topic: "q/full5",
        payload: Buffer.alloc(8 * 1024, 3),
        qos: 1,
        retain: true,
        messageId: 2,
      });
      expect(await v5.next()).toMatchObject({ cmd: "puback", messageId: 2, reasonCode: 0x97 });
      v5.destroy();
      await expect(
        t.core.bus.publish({ topic: "q/http", payload: Buffer.alloc(64 * 1024, 4), retain: true, qos: 1 }),
      ).rejects.toBeInstanceOf(BusNotStoredError);
      // room again: the filler goes, the store heals
      t.core.credentials.remove(t.core.credentials.findByUsername("f8-filler")!.id);
      const failing = async () =>
        Number(
          (await t.core.metrics.render())
            .split("\n")
            .find((x) => x.startsWith("gatehouse_mqtt_store_failing "))
            ?.split(" ")[1],
        );
      await eventually(async () => expect(await failing()).toBe(0), 10_000);
      const ok = await raw(4, "f8-after");
      ok.send({ cmd: "publish", topic: "q/after", payload: "stored", qos: 1, messageId: 3 });
      expect(await ok.next()).toMatchObject({ cmd: "puback", messageId: 3 });
      ok.destroy();
      const db = new Database(f8file, { readonly: true });
      expect(db.query("SELECT topic FROM retained WHERE topic LIKE 'q/%'").all()).toEqual([]);
      expect(db.query("SELECT topic FROM messages WHERE topic LIKE 'q/%' ORDER BY id").all()).toEqual([
        { topic: "q/after" },
      ]);
      db.close();
      // bob's queue holds only what was acknowledged: the first message he gets is q/after
      const back = await connectMqtt(p8, {
        username: bob.username,
        password: bob.password,
        clientId: "f8-bob",
        clean: false,
      });
      const first = nextMessage(back, 10_000);
      expect(await first).toEqual({ topic: "q/after", payload: "stored" });
      await back.endAsync();
    } finally {
      await l.stop();
      t.core.stop();
    }
  });
});
