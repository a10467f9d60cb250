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
