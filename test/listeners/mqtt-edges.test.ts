import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import * as mqttPacket from "mqtt-packet";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectPacket, connectWithInbox, rawMqtt, type RawMqtt } from "../helpers/mqtt.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * MQTT protocol edges, each checked against Mosquitto 2.0.11 by hand (raw sockets): will properties,
 * DUP on redelivery, packets pipelined behind CONNECT, malformed CONNECTs, invalid topic aliases.
 */
let app: App;
let port: number;
beforeAll(async () => {
  ({ app } = await testApp(["--opcua-port", "off"]));
  port = app.address("mqtt")!.port;
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const make = async (username: string) => (await app.core.credentials.create({ type: "mqtt", username })).password;
let watchers = 0;

/** login: a raw client past its CONNACK (return code 0). */
async function login(version: 4 | 5, fields: Record<string, unknown>): Promise<RawMqtt> {
  const c = await rawMqtt(port, "127.0.0.1", version);
  c.send(connectPacket({ protocolVersion: version, ...fields }));
  const ack = await c.next();
  expect([ack?.cmd, ack?.returnCode ?? ack?.reasonCode]).toEqual(["connack", 0]);
  return c;
}

/** until: the broker's packets up to the first that `match`es (inclusive); all of them if the connection closes first. */
async function until(c: RawMqtt, match: (p: Record<string, any>) => boolean): Promise<Record<string, any>[]> {
  const seen: Record<string, any>[] = [];
  for (;;) {
    const p = await c.next();
    if (!p) return seen;
    seen.push(p);
    if (match(p)) return seen;
  }
}

/** rest: every packet the broker sends until it closes the connection. */
const rest = (c: RawMqtt) => until(c, () => false);

/** str: an MQTT UTF-8 string (two length bytes, then the bytes) */
const str = (s: string) => [Buffer.byteLength(s) >> 8, Buffer.byteLength(s) & 0xff, ...Buffer.from(s)];

/** varint: an MQTT Variable Byte Integer (remaining length, property length) */
function varint(n: number): number[] {
  const out: number[] = [];
  do {
    out.push((n % 128) | (n >= 128 ? 128 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return out;
}

/** rawPacket: a fixed header byte, the remaining length, the body */
const rawPacket = (header: number, body: number[]) => new Uint8Array([header, ...varint(body.length), ...body]);

/** connectBytes: a CONNECT as raw bytes, for shapes mqtt-packet refuses to encode (MQTT 5 `properties` encoded, default none). */
function connectBytes(o: {
  protocol: "MQTT" | "MQIsdp";
  level: 3 | 4 | 5;
  flags: number;
  clientId: string;
  username?: string;
  password?: string;
  properties?: number[];
}): Uint8Array {
  const properties = o.level === 5 ? (o.properties ?? [0]) : [];
  const body = [...str(o.protocol), o.level, o.flags, 0, 30, ...properties, ...str(o.clientId)];
  if (o.username !== undefined) body.push(...str(o.username));
  if (o.password !== undefined) body.push(...str(o.password));
  return rawPacket(0x10, body);
}

/** watch: an mqtt.js subscriber; `nothingBut(marker)` proves nothing else arrived before a marker published after. */
async function watch(filter: string) {
  const username = `watcher-${++watchers}`;
  const w = await connectWithInbox(port, { username, password: await make(username) });
  await w.client.subscribeAsync(filter, { qos: 1 });
  return {
    ...w,
    /** nothingBut: publishes `topic` and expects it to be the next message the watcher gets */
    async nothingBut(topic: string) {
      await w.client.publishAsync(topic, "marker", { qos: 1 });
      expect(await w.next()).toEqual({ topic, payload: "marker" });
    },
    end: () => w.client.endAsync(),
  };
}

/** pahoSubscriber: Paho Python v5 subscribed to `filter`, as its own process; `event()` is its next JSON line. */
function pahoSubscriber(username: string, password: string, filter: string) {
  const p = Bun.spawn(
    ["/usr/bin/python3", `${import.meta.dir}/../fixtures/paho5-receive.py`, String(port), username, password, filter],
    { stdout: "pipe", stderr: "pipe" },
  );
  const reader = p.stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  return {
    async event(): Promise<Record<string, any> | undefined> {
      for (;;) {
        const nl = buffered.indexOf("\n");
        if (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          return JSON.parse(line);
        }
        const { value, done } = await reader.read();
        if (done) return undefined;
        buffered += decoder.decode(value);
      }
    },
    stop: () => p.kill(),
  };
}

describe("wills: only PUBLISH properties go out (§3.3.2.3)", () => {
  const willProperties = {
    willDelayInterval: 1,
    contentType: "text/plain",
    payloadFormatIndicator: true,
    messageExpiryInterval: 600,
    responseTopic: "wills/ack",
    correlationData: Buffer.from("c-1"),
    userProperties: { site: "hall-2" },
  };

  it("Paho Python v5 receives a delayed will with its properties and no Will Delay Interval (0x18)", async () => {
    const devicePassword = await make("will-device");
    const pahoPassword = await make("will-paho");
    const rawPassword = await make("will-raw");
    const paho = pahoSubscriber("will-paho", pahoPassword, "wills/#");
    try {
      expect(await paho.event()).toEqual({ event: "subscribed", reasons: [1] });
      const raw = await login(5, { username: "will-raw", password: Buffer.from(rawPassword), clientId: "will-raw" });
      raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "wills/#", qos: 0 }] });
      expect((await raw.next())?.cmd).toBe("suback");
      const device = await login(5, {
        username: "will-device",
        password: Buffer.from(devicePassword),
        clientId: "will-device-1",
        clean: false,
        properties: { sessionExpiryInterval: 30 },
        will: {
          topic: "wills/device-1",
          payload: Buffer.from("gone"),
          qos: 1,
          retain: false,
          properties: willProperties,
        },
      });
      device.destroy(); // no DISCONNECT: the will goes out after its 1 s delay
      const onWire = await raw.next();
      expect(onWire).toMatchObject({ cmd: "publish", topic: "wills/device-1", payload: Buffer.from("gone") });
      expect(onWire!.properties).toEqual({
        contentType: "text/plain",
        payloadFormatIndicator: true,
        messageExpiryInterval: 600,
        responseTopic: "wills/ack",
        correlationData: Buffer.from("c-1"),
        userProperties: { site: "hall-2" },
      });
      const got = await paho.event();
      expect(got).toMatchObject({ event: "message", topic: "wills/device-1", payload: "gone" });
      expect(got!.properties).toEqual({
        PayloadFormatIndicator: 1,
        MessageExpiryInterval: 600,
        ContentType: "text/plain",
        ResponseTopic: "wills/ack",
        CorrelationData: Buffer.from("c-1").toString("hex"),
        UserProperty: [["site", "hall-2"]],
      });
      raw.destroy();
    } finally {
      paho.stop();
    }
  }, 30_000);

  it("an immediate will that names a Will Delay Interval of 0 goes out without it too", async () => {
    const password = await make("will-now");
    const w = await login(5, { username: "will-now", password: Buffer.from(password), clientId: "will-now-watch" });
    w.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "wills-now/#", qos: 0 }] });
    expect((await w.next())?.cmd).toBe("suback");
    const d = await login(5, {
      username: "will-now",
      password: Buffer.from(password),
      clientId: "will-now-1",
      will: {
        topic: "wills-now/x",
        payload: Buffer.from("bye"),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 0, contentType: "text/plain" },
      },
    });
    d.destroy();
    const p = await w.next();
    expect(p).toMatchObject({ cmd: "publish", topic: "wills-now/x", properties: { contentType: "text/plain" } });
    expect(p!.properties).not.toHaveProperty("willDelayInterval");
    w.destroy();
  });

  it("a will with a property wills cannot carry is a malformed CONNECT: closed without CONNACK", async () => {
    const password = await make("will-odd");
    const c = await rawMqtt(port, "127.0.0.1", 5);
    const will = {
      topic: "w/x",
      payload: Buffer.from("x"),
      qos: 0,
      retain: false,
      properties: { subscriptionIdentifier: 3 },
    };
    c.send(
      connectPacket({
        protocolVersion: 5,
        username: "will-odd",
        password: Buffer.from(password),
        clientId: "will-odd",
        will,
      }),
    );
    expect(await rest(c)).toEqual([]);
  });

  it("a client's PUBLISH with a property PUBLISH cannot carry gets DISCONNECT 0x81 and goes nowhere (as Mosquitto)", async () => {
    const password = await make("odd-publisher");
    const w = await watch("odd/#");
    for (const properties of [{ willDelayInterval: 5 }, { sessionExpiryInterval: 9 }, { subscriptionIdentifier: 4 }]) {
      const c = await login(5, {
        username: "odd-publisher",
        password: Buffer.from(password),
        clientId: "odd-publisher",
      });
      c.send({ cmd: "publish", topic: "odd/x", payload: "p", qos: 1, messageId: 1, properties });
      expect((await rest(c)).map((p) => [p.cmd, p.reasonCode])).toEqual([["disconnect", 0x81]]);
    }
    await w.nothingBut("odd/marker");
    await w.end();
  });
});

describe("DUP on redelivery [MQTT-3.3.1-1]", () => {
  it("QoS 1 and 2 sent before the reconnect come again with DUP=1; one queued while away goes out with DUP=0", async () => {
    const password = await make("dup-device");
    const sub = await login(4, {
      username: "dup-device",
      password: Buffer.from(password),
      clientId: "dup-sub",
      clean: false,
    });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "dup/#", qos: 2 }] });
    expect((await sub.next())?.cmd).toBe("suback");
    const pub = await login(4, { username: "dup-device", password: Buffer.from(password), clientId: "dup-pub" });
    pub.send({ cmd: "publish", topic: "dup/one", payload: "1", qos: 1, messageId: 11 });
    pub.send({ cmd: "publish", topic: "dup/two", payload: "2", qos: 2, messageId: 12 });
    // not acknowledged; QoS 2 is stored before it is routed, QoS 1 acknowledged first: either may come first
    const first = [(await sub.next())!, (await sub.next())!].sort((a, b) => a.topic.localeCompare(b.topic));
    expect(first.map((p) => [p.topic, p.qos, p.dup])).toEqual([
      ["dup/one", 1, false],
      ["dup/two", 2, false],
    ]);
    const integrationId = app.core.credentials.findByUsername("dup-device")!.id;
    const gone = waitFor(
      app.core.events,
      "session.closed",
      (e) => e.session.integrationId === integrationId && e.session.clientId === "dup-sub",
    );
    sub.destroy();
    await gone;
    expect(await until(pub, (p) => p.cmd === "pubrec")).toContainEqual(
      expect.objectContaining({ cmd: "puback", messageId: 11 }),
    );
    pub.send({ cmd: "pubrel", messageId: 12 });
    pub.send({ cmd: "publish", topic: "dup/three", payload: "3", qos: 1, messageId: 13 });
    await until(pub, (p) => p.cmd === "puback" && p.messageId === 13);
    const back = await login(4, {
      username: "dup-device",
      password: Buffer.from(password),
      clientId: "dup-sub",
      clean: false,
    });
    const again = [(await back.next())!, (await back.next())!, (await back.next())!].sort((a, b) =>
      a.topic.localeCompare(b.topic),
    );
    expect(again.map((p) => [p.topic, p.qos, p.dup, p.messageId])).toEqual([
      ["dup/one", 1, true, first[0]!.messageId],
      ["dup/three", 1, false, expect.any(Number)],
      ["dup/two", 2, true, first[1]!.messageId],
    ]);
    back.destroy();
    pub.destroy();
  });
});

describe("packets pipelined behind CONNECT (3.1.1 §3.1.4)", () => {
  for (const n of [100, 1000]) {
    it(`${n} QoS 1 publishes sent with the CONNECT, before the CONNACK, are all acknowledged and delivered in order`, async () => {
      const password = await make(`pipeliner-${n}`);
      const w = await watch(`pipe-${n}/#`);
      const c = await rawMqtt(port);
      const packets = [
        connectPacket({ username: `pipeliner-${n}`, password: Buffer.from(password), clientId: `pipeliner-${n}` }),
        { cmd: "subscribe", messageId: 1, subscriptions: [{ topic: `pipe-${n}-self/#`, qos: 0 }] },
        ...Array.from({ length: n }, (_, i) => ({
          cmd: "publish",
          topic: `pipe-${n}/x`,
          payload: String(i),
          qos: 1,
          messageId: i + 2,
        })),
      ];
      c.send(Buffer.concat(packets.map((p) => mqttPacket.generate(p as never))));
      let pubacks = 0;
      const answers = await until(c, (p) => p.cmd === "puback" && ++pubacks === n);
      expect(answers[0]).toMatchObject({ cmd: "connack", returnCode: 0 });
      // the SUBACK waits on the subscription store: PUBACKs may overtake it; each kind keeps its order
      if (!answers.some((p) => p.cmd === "suback")) expect((await c.next())?.cmd).toBe("suback");
      expect(answers.filter((p) => p.cmd === "puback").map((p) => p.messageId)).toEqual(
        Array.from({ length: n }, (_, i) => i + 2),
      );
      const delivered: string[] = [];
      for (let i = 0; i < n; i++) delivered.push((await w.next()).payload);
      expect(delivered).toEqual(Array.from({ length: n }, (_, i) => String(i)));
      c.destroy();
      await w.end();
    });
  }

  it("a refused login's pipeline goes nowhere: CONNACK 4, then the connection closes", async () => {
    await make("pipe-stranger");
    const w = await watch("stranger-pipe/#");
    const c = await rawMqtt(port);
    const packets = [
      connectPacket({
        username: "pipe-stranger",
        password: Buffer.from("not-the-password"),
        clientId: "pipe-stranger",
      }),
      ...Array.from({ length: 1000 }, (_, i) => ({
        cmd: "publish",
        topic: "stranger-pipe/x",
        payload: String(i),
        qos: 1,
        messageId: i + 1,
      })),
    ];
    c.send(Buffer.concat(packets.map((p) => mqttPacket.generate(p as never))));
    expect((await rest(c)).map((p) => [p.cmd, p.returnCode])).toEqual([["connack", 4]]);
    await w.nothingBut("stranger-pipe/marker");
    await w.end();
  });
});

describe("malformed and refused CONNECTs", () => {
  it("a password without a user name: 3.1.1 and 3.1 close without CONNACK [MQTT-3.1.2-22] [MQTT-3.1.4-1]; MQTT 5 allows it (0x86 here)", async () => {
    for (const [protocol, level] of [
      ["MQTT", 4],
      ["MQIsdp", 3],
    ] as const) {
      const c = await rawMqtt(port, "127.0.0.1", level);
      c.send(connectBytes({ protocol, level, flags: 0x42, clientId: "no-user", password: "secret-pw" }));
      expect([protocol, await rest(c)]).toEqual([protocol, []]);
    }
    const v5 = await rawMqtt(port, "127.0.0.1", 5);
    v5.send(connectBytes({ protocol: "MQTT", level: 5, flags: 0x42, clientId: "no-user", password: "secret-pw" }));
    expect((await rest(v5)).map((p) => [p.cmd, p.reasonCode])).toEqual([["connack", 0x86]]);
  });

  it("MQTT 3.1 (MQIsdp) with an empty client id gets CONNACK 2; with one, it connects", async () => {
    const password = await make("old-device");
    const empty = await rawMqtt(port, "127.0.0.1", 3);
    empty.send(
      connectBytes({ protocol: "MQIsdp", level: 3, flags: 0xc2, clientId: "", username: "old-device", password }),
    );
    expect((await rest(empty)).map((p) => [p.cmd, p.returnCode])).toEqual([["connack", 2]]);
    const named = await rawMqtt(port, "127.0.0.1", 3);
    named.send(
      connectBytes({
        protocol: "MQIsdp",
        level: 3,
        flags: 0xc2,
        clientId: "old-device-1",
        username: "old-device",
        password,
      }),
    );
    expect(await named.next()).toMatchObject({ cmd: "connack", returnCode: 0 });
    named.destroy();
  });
});

describe("an MQTT 5 property given twice (only User Properties may be) is a malformed packet", () => {
  const twice = (id: number, value: number) => {
    const one = [id, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
    return [...varint(10), ...one, ...one];
  };
  const connect = (username: string, password: string, properties: number[]) =>
    connectBytes({ protocol: "MQTT", level: 5, flags: 0xc2, clientId: username, username, password, properties });

  it("CONNECT, DISCONNECT and PUBLISH with Session or Message Expiry twice close that connection; the broker goes on", async () => {
    const password = await make("twice");
    const w = await watch("twice/#");
    // a CONNECT with Session Expiry Interval twice: closed without CONNACK (it used to connect, and its close
    // armed aedes' session timer with NaN, which threw on the event loop and stopped the appliance)
    const first = await rawMqtt(port, "127.0.0.1", 5);
    first.send(connect("twice", password, twice(0x11, 16)));
    expect(await rest(first)).toEqual([]);
    // a DISCONNECT with it twice (the same crash, on a connection that was in)
    const second = await login(5, { username: "twice", password: Buffer.from(password), clientId: "twice" });
    second.send(rawPacket(0xe0, [0x00, ...twice(0x11, 16)]));
    await second.closed;
    // a PUBLISH with Message Expiry twice: not stored, not passed on
    const third = await login(5, { username: "twice", password: Buffer.from(password), clientId: "twice" });
    third.send(rawPacket(0x32, [...str("twice/x"), 0, 1, ...twice(0x02, 60), ...Buffer.from("p")]));
    expect(await rest(third)).toEqual([]);
    await w.nothingBut("twice/marker");
    // User Properties may repeat (§3.3.2.3.7): such a PUBLISH goes through with both values
    const fourth = await login(5, { username: "twice", password: Buffer.from(password), clientId: "twice" });
    fourth.send({
      cmd: "publish",
      topic: "twice/y",
      payload: "q",
      qos: 1,
      messageId: 2,
      properties: { userProperties: { k: ["1", "2"] } },
    });
    expect((await fourth.next())?.cmd).toBe("puback");
    expect(await w.next()).toEqual({ topic: "twice/y", payload: "q" });
    fourth.destroy();
    await w.end();
  });
});

describe("a packet identifier that is missing, cut short or 0 makes the packet malformed [MQTT-2.2.1-3]", () => {
  it("a QoS 1 PUBLISH without one, with half of one, or with 0, and a SUBSCRIBE with 0: closed, nothing routed or answered", async () => {
    const password = await make("nopid");
    const device = (v: 4 | 5) => login(v, { username: "nopid", password: Buffer.from(password), clientId: "nopid" });
    const w = await watch("nopid/#");
    const cases = [
      // topic only: mqtt-packet read no identifier and routed the message, answering `40 02` (a PUBACK cut short)
      rawPacket(0x32, str("nopid/a")),
      // one byte of it, the next packet in the same write: its first byte must not become the identifier's second
      new Uint8Array([...rawPacket(0x32, [...str("nopid/b"), 0x01]), 0xc0, 0x00]),
      rawPacket(0x32, [...str("nopid/c"), 0, 0, ...Buffer.from("p")]),
      rawPacket(0x82, [0, 0, ...str("nopid/#"), 1]),
    ];
    for (const bytes of cases) {
      const c = await device(4);
      c.send(bytes);
      expect(await rest(c)).toEqual([]);
    }
    // MQTT 5 the same
    const five = await device(5);
    five.send(rawPacket(0x32, [...str("nopid/d"), 0, 0, 0, ...Buffer.from("p")]));
    expect(await rest(five)).toEqual([]);
    // none of them reached a subscriber; the broker goes on, and identifier 65 535 is fine
    await w.nothingBut("nopid/marker");
    const ok = await device(4);
    ok.send(rawPacket(0x32, [...str("nopid/e"), 0xff, 0xff, ...Buffer.from("p")]));
    expect(await ok.next()).toMatchObject({ cmd: "puback", messageId: 65_535 });
    expect(await w.next()).toEqual({ topic: "nopid/e", payload: "p" });
    ok.destroy();
    await w.end();
  });
});

describe("the CONNECT's own size limit (--mqtt-max-connect, 64 KiB)", () => {
  it("a CONNECT that claims more is closed as soon as its length is read; one under it, and larger packets after login, pass", async () => {
    const password = await make("big-connect");
    // a stranger announcing a 70 000-byte CONNECT and sending a little of it: closed at once, not held
    const stranger = await rawMqtt(port, "127.0.0.1", 4);
    stranger.send(new Uint8Array([0x10, 0xf0, 0xa2, 0x04, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54]));
    expect(await rest(stranger)).toEqual([]);
    // a device with a 60 KB will gets in; a 200 KB PUBLISH after its login is bounded by the packet limit
    const w = await watch("big/#");
    const c = await login(4, {
      username: "big-connect",
      password: Buffer.from(password),
      clientId: "big-connect",
      will: { topic: "big/will", payload: Buffer.alloc(60_000, "w"), qos: 0, retain: false },
    });
    c.send({ cmd: "publish", topic: "big/x", payload: Buffer.alloc(200_000, "p"), qos: 1, messageId: 3 });
    expect((await c.next())?.cmd).toBe("puback");
    expect((await w.next())?.topic).toBe("big/x");
    c.send({ cmd: "disconnect" });
    await c.closed;
    await w.end();
  });
});

describe("MQTT 5 topic aliases", () => {
  for (const alias of [0, 17]) {
    it(`Topic Alias ${alias} (advertised maximum 16) gets DISCONNECT 0x94; nothing sent behind it is handled`, async () => {
      const password = await make(`aliaser-${alias}`);
      const w = await watch(`alias-${alias}/#`);
      const c = await rawMqtt(port, "127.0.0.1", 5);
      const v5 = (p: object) => mqttPacket.generate(p as never, { protocolVersion: 5 });
      c.send(
        Buffer.concat([
          v5(
            connectPacket({
              protocolVersion: 5,
              username: `aliaser-${alias}`,
              password: Buffer.from(password),
              clientId: `aliaser-${alias}`,
            }),
          ),
          v5({
            cmd: "publish",
            topic: `alias-${alias}/x`,
            payload: "aliased",
            qos: 0,
            properties: { topicAlias: alias },
          }),
          ...Array.from({ length: 5 }, (_, i) =>
            v5({ cmd: "publish", topic: `alias-${alias}/after`, payload: String(i), qos: 1, messageId: i + 1 }),
          ),
          v5({ cmd: "pingreq" }),
        ]),
      );
      const answers = await rest(c);
      expect(answers[0]).toMatchObject({ cmd: "connack", reasonCode: 0, properties: { topicAliasMaximum: 16 } });
      expect(answers.slice(1).map((p) => [p.cmd, p.reasonCode])).toEqual([["disconnect", 0x94]]);
      await w.nothingBut(`alias-${alias}/marker`);
      await w.end();
    });
  }
});
