import { afterAll, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { statSync } from "node:fs";
import { join } from "node:path";
import { createCore } from "../../src/core/index.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { acceptsTable, requestTypeOf } from "../../src/listeners/index.ts";
import { cleanupTempDirs, tempDir, testHashCost } from "../helpers/app.ts";
import { type RunningBinary, runSource } from "../helpers/binary.ts";
import { connectMqtt, rawMqtt, refusalCode } from "../helpers/mqtt.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * Acknowledged means durable (shared/HOSTILE.md): the appliance as a child process, killed with SIGKILL right
 * after it acknowledged, then started again on the same data dir.
 */
afterAll(cleanupTempDirs);

const running: RunningBinary[] = [];
afterAll(async () => {
  for (const r of running) if (r.proc.exitCode === null) await r.stop("SIGKILL");
});

interface Fixture {
  dir: string;
  creds: Record<string, string>;
  token: string;
}

/** prepare: a data dir with integrations (and an API token) made before the appliance first starts. */
async function prepare(): Promise<Fixture> {
  const dir = tempDir("gatehouse-durable-");
  const db = openDataDir(dir);
  const core = createCore(db, silentLogger, { hashCost: testHashCost, accepts: acceptsTable(), requestTypeOf });
  const creds: Record<string, string> = {};
  for (const [type, username] of [
    ["mqtt", "sensor"],
    ["mqtt", "reader"],
    ["mqtt", "other"],
    ["http", "gateway"],
  ] as const)
    creds[username] = (await core.credentials.create({ type, username })).password;
  const token = core.admins.createApiToken("durable-test").token;
  db.$client.close();
  return { dir, creds, token };
}

async function serve(f: Fixture, extra: string[] = []): Promise<RunningBinary> {
  const r = await runSource([
    "serve",
    "--data-dir",
    f.dir,
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
    ...extra,
  ]);
  running.push(r);
  return r;
}

/** crash: SIGKILL, no chance to flush anything. */
async function crash(r: RunningBinary): Promise<void> {
  r.proc.kill("SIGKILL");
  await r.proc.exited;
}

const as = (f: Fixture, username: string, extra: IClientOptions = {}): IClientOptions => ({
  username,
  password: f.creds[username],
  ...extra,
});

/** session: a client with its CONNACK's session present flag and every message from the first byte on. */
function session(port: number, opts: IClientOptions) {
  const inbox: { topic: string; payload: string; dup: boolean }[] = [];
  const waiting: (() => void)[] = [];
  return new Promise<{ client: MqttClient; sessionPresent: boolean; take(n: number): Promise<typeof inbox> }>(
    (resolve, reject) => {
      const client = mqtt.connect({ host: "127.0.0.1", port, reconnectPeriod: 0, protocolVersion: 4, ...opts });
      client.on("message", (topic, payload, packet) => {
        inbox.push({ topic, payload: payload.toString(), dup: packet.dup });
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

const basic = (f: Fixture, user: string) => `Basic ${Buffer.from(`${user}:${f.creds[user]}`).toString("base64")}`;

describe("acknowledged means durable: kill -9 right after the acknowledgement", () => {
  it("500 retained QoS 1 messages, each PUBACKed, are all there after SIGKILL and a restart", async () => {
    const f = await prepare();
    const first = await serve(f);
    const c = await connectMqtt(first.ports.mqtt!, as(f, "sensor"));
    await Promise.all(
      Array.from({ length: 500 }, (_, i) => c.publishAsync(`plant/t/${i}`, `v${i}`, { qos: 1, retain: true })),
    );
    await crash(first);
    c.end(true);

    const second = await serve(f);
    const r = await session(second.ports.mqtt!, as(f, "reader"));
    await r.client.subscribeAsync("plant/t/#", { qos: 1 });
    const got = await r.take(500);
    expect(new Set(got.map((m) => `${m.topic}=${m.payload}`))).toEqual(
      new Set(Array.from({ length: 500 }, (_, i) => `plant/t/${i}=v${i}`)),
    );
    // an empty retained message deletes, durably too
    const c2 = await connectMqtt(second.ports.mqtt!, as(f, "sensor"));
    await c2.publishAsync("plant/t/7", "", { qos: 1, retain: true });
    await crash(second);
    r.client.end(true);
    c2.end(true);
    const third = await serve(f);
    const base = `http://127.0.0.1:${third.ports.http}`;
    const headers = { authorization: basic(f, "gateway") };
    expect((await fetch(`${base}/api/v1/data/plant/t/7`, { headers })).status).toBe(404);
    expect((await (await fetch(`${base}/api/v1/data/plant/t/8`, { headers })).json()).payload).toBe("v8");
    await third.stop();
  }, 60_000);

  it("HTTP 202 for POST ?retain=true&qos=1, then SIGKILL: the value is there after the restart", async () => {
    const f = await prepare();
    const first = await serve(f);
    const base = `http://127.0.0.1:${first.ports.http}`;
    const headers = { authorization: basic(f, "gateway") };
    const posts = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        fetch(`${base}/api/v1/data/line/valve/${i}?retain=true&qos=1`, { method: "POST", headers, body: `open-${i}` }),
      ),
    );
    expect(posts.map((p) => p.status)).toEqual(posts.map(() => 202));
    await crash(first);

    const second = await serve(f);
    const again = `http://127.0.0.1:${second.ports.http}`;
    for (const i of [0, 17, 49]) {
      const res = await fetch(`${again}/api/v1/data/line/valve/${i}`, { headers });
      expect(res.status).toBe(200);
      expect((await res.json()).payload).toBe(`open-${i}`);
    }
    await second.stop();
  }, 60_000);

  it("QoS 1 messages PUBACKed for an offline persistent session all arrive after SIGKILL, in order; its subscriptions are back", async () => {
    const f = await prepare();
    const first = await serve(f);
    const port = first.ports.mqtt!;
    const sub = await connectMqtt(port, as(f, "reader", { clientId: "reader-1", clean: false }));
    await sub.subscribeAsync("plant/#", { qos: 1 });
    await sub.endAsync();
    const pub = await connectMqtt(port, as(f, "sensor"));
    for (let i = 0; i < 300; i++) void pub.publishAsync("plant/line/count", `m-${i}`, { qos: 1 });
    await pub.publishAsync("plant/line/count", "m-300", { qos: 1 }); // PUBACKs come in order: all 301 acknowledged
    await crash(first);
    pub.end(true);

    const second = await serve(f);
    const back = await session(second.ports.mqtt!, as(f, "reader", { clientId: "reader-1", clean: false }));
    expect(back.sessionPresent).toBe(true);
    const got = await back.take(301);
    expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 301 }, (_, i) => `m-${i}`));
    expect(got.every((m) => !m.dup)).toBe(true); // queued while away: sent for the first time
    // the subscription came back with the session: a new message reaches it without a SUBSCRIBE
    const pub2 = await connectMqtt(second.ports.mqtt!, as(f, "sensor"));
    await pub2.publishAsync("plant/line/state", "running", { qos: 1 });
    expect((await back.take(1))[0]).toMatchObject({ topic: "plant/line/state", payload: "running" });
    await Promise.all([pub2.endAsync(), back.client.endAsync()]);
    await second.stop();
  }, 60_000);

  it("a message sent and not acknowledged before the crash comes again with DUP=1; one queued while away with DUP=0", async () => {
    const f = await prepare();
    const first = await serve(f);
    const raw = await rawMqtt(first.ports.mqtt!);
    const connect = {
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: false,
      clientId: "raw-reader",
      keepalive: 60,
      username: "reader",
      password: Buffer.from(f.creds.reader!),
    };
    raw.send(connect);
    expect(await raw.next()).toMatchObject({ cmd: "connack", returnCode: 0 });
    raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "plant/#", qos: 1 }] });
    expect(await raw.next()).toMatchObject({ cmd: "suback", granted: [1] });
    const pub = await connectMqtt(first.ports.mqtt!, as(f, "sensor"));
    await pub.publishAsync("plant/a", "first", { qos: 1 });
    expect(await raw.next()).toMatchObject({ cmd: "publish", topic: "plant/a", dup: false }); // never acknowledged
    raw.destroy();
    await raw.closed;
    await pub.publishAsync("plant/b", "second", { qos: 1 });
    await crash(first);
    pub.end(true);

    const second = await serve(f);
    const again = await rawMqtt(second.ports.mqtt!);
    again.send(connect);
    expect(await again.next()).toMatchObject({ cmd: "connack", sessionPresent: true });
    const a = await again.next();
    const b = await again.next();
    expect([a?.topic, a?.payload.toString(), a?.dup]).toEqual(["plant/a", "first", true]);
    expect([b?.topic, b?.payload.toString(), b?.dup]).toEqual(["plant/b", "second", false]);
    again.send({ cmd: "puback", messageId: a!.messageId });
    again.send({ cmd: "puback", messageId: b!.messageId });
    again.destroy();
    await second.stop();
  }, 60_000);

  it("a stored session's client id stays its integration's across a restart; broker.db is 0600 with its own schema version", async () => {
    const f = await prepare();
    const first = await serve(f);
    const sub = await connectMqtt(first.ports.mqtt!, as(f, "reader", { clientId: "line-7", clean: false }));
    await sub.subscribeAsync("plant/#", { qos: 1 });
    await sub.endAsync();
    await crash(first);

    const second = await serve(f);
    const port = second.ports.mqtt!;
    expect(await refusalCode(port, as(f, "other", { clientId: "line-7", clean: false }))).toBe(2);
    expect(await refusalCode(port, as(f, "other", { clientId: "line-7", clean: true }))).toBe(2);
    expect(await refusalCode(port, as(f, "reader", { clientId: "line-7", clean: false }))).toBe(0);
    await second.stop();
    const file = join(f.dir, "broker.db");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const db = new Database(file, { readonly: true });
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: 3 });
    db.close();
  }, 60_000);
});

describe("what a crash cut: wills and session expiry", () => {
  it("wills of the connections a SIGKILL cut are published at the next start, as far as their integration may", async () => {
    const f = await prepare();
    const first = await serve(f);
    const port = first.ports.mqtt!;
    const will = (topic: string) => ({ topic, payload: Buffer.from("offline"), qos: 1 as const, retain: true });
    const a = await connectMqtt(port, as(f, "sensor", { clientId: "dev-a", will: will("status/dev-a") }));
    const b = await connectMqtt(port, as(f, "other", { clientId: "dev-b", will: will("status/dev-b") }));
    await crash(first);
    a.end(true);
    b.end(true);
    // while the appliance is down, "other" is deleted (the CLI on a stopped appliance)
    const db = openDataDir(f.dir);
    const core = createCore(db, silentLogger, { hashCost: testHashCost, accepts: acceptsTable(), requestTypeOf });
    core.credentials.remove(core.credentials.findByUsername("other")!.id);
    db.$client.close();

    const second = await serve(f);
    const base = `http://127.0.0.1:${second.ports.http}`;
    const headers = { authorization: basic(f, "gateway") };
    const res = await fetch(`${base}/api/v1/data/status/dev-a`, { headers });
    expect(res.status).toBe(200);
    expect((await res.json()).payload).toBe("offline");
    expect((await fetch(`${base}/api/v1/data/status/dev-b`, { headers })).status).toBe(404);
    await second.stop();
  }, 60_000);

  it("an MQTT 5 session keeps its expiry across a SIGKILL and ends after it", async () => {
    const f = await prepare();
    const first = await serve(f);
    const v5 = {
      protocolVersion: 5 as const,
      clientId: "v5-dev",
      clean: false,
      properties: { sessionExpiryInterval: 2 },
    };
    const c = await connectMqtt(first.ports.mqtt!, as(f, "reader", v5));
    await c.subscribeAsync("plant/#", { qos: 1 });
    await crash(first);
    c.end(true);

    const second = await serve(f);
    const port = second.ports.mqtt!;
    expect(await refusalCode(port, as(f, "other", { clientId: "v5-dev" }))).toBe(2); // still reader's
    await eventually(
      async () => expect(await refusalCode(port, as(f, "other", { clientId: "v5-dev" }))).toBe(0),
      10_000,
    );
    await second.stop();
  }, 60_000);
});

describe("with Mosquitto's own clients", () => {
  it("mosquitto_pub -q 1 to an offline mosquitto_sub -c session, SIGKILL, restart: mosquitto_sub gets every message", async () => {
    const f = await prepare();
    const first = await serve(f);
    const auth = (user: string) => ["-h", "127.0.0.1", "-u", user, "-P", f.creds[user]!, "-V", "mqttv311"];
    const sub = (port: number, extra: string[]) =>
      Bun.spawn(
        [
          "mosquitto_sub",
          ...auth("reader"),
          "-p",
          String(port),
          "-c",
          "-i",
          "mosq-reader",
          "-q",
          "1",
          "-t",
          "plant/#",
          ...extra,
        ],
        {
          stdout: "pipe",
          stderr: "pipe",
        },
      );
    // the persistent session: subscribed once, then gone (-E: exit right after the SUBACK)
    expect(await sub(first.ports.mqtt!, ["-E"]).exited).toBe(0);
    for (const v of ["a", "b", "c"]) {
      const pub = Bun.spawn([
        "mosquitto_pub",
        ...auth("sensor"),
        "-p",
        String(first.ports.mqtt!),
        "-q",
        "1",
        "-t",
        "plant/m",
        "-m",
        v,
      ]);
      expect(await pub.exited).toBe(0); // it exits once its PUBACK came
    }
    await crash(first);

    const second = await serve(f);
    const back = sub(second.ports.mqtt!, ["-C", "3", "-W", "20"]);
    expect(await back.exited).toBe(0);
    expect((await new Response(back.stdout).text()).trim().split("\n")).toEqual(["a", "b", "c"]);
    await second.stop();
  }, 60_000);
});
