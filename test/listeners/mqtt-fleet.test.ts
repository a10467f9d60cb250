import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import {
  closed,
  connectMqtt,
  connectPacket,
  connectWithInbox,
  nextMessage,
  rawMqtt,
  refusalCode,
  subackCodes,
} from "../helpers/mqtt.ts";
import * as mqttPacket from "mqtt-packet";
import { eventually } from "../helpers/wait.ts";

/** The shapes a real fleet produces: short-lived publishers, shared client ids, persistent sessions, wills. */
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

const make = async (
  username: string,
  acl: { publishAcl?: string[]; subscribeAcl?: string[]; denyPublishAcl?: string[]; denySubscribeAcl?: string[] } = {},
) => {
  const made = await app.core.credentials.create({ type: "mqtt", username });
  if (Object.keys(acl).length) app.core.credentials.update(made.integration.id, acl);
  return made;
};

describe("no ghost sessions", () => {
  it("200 publishers that close right after CONNACK leave no session", async () => {
    const { password } = await make("short-lived");
    const runs = Array.from({ length: 200 }, async (_, i) => {
      const c = await rawMqtt(port);
      // CONNECT and PUBLISH in one write, then gone the moment CONNACK arrives (mosquitto_pub's shape).
      c.send(connectPacket({ clientId: `pub-${i}`, username: "short-lived", password: Buffer.from(password) }));
      c.send({ cmd: "publish", topic: "t", payload: Buffer.from("x"), qos: 0, retain: false });
      const connack = await c.next();
      c.destroy();
      await c.closed;
      return connack?.returnCode;
    });
    expect(new Set(await Promise.all(runs))).toEqual(new Set([0]));
    await eventually(() => expect(app.core.sessions.size).toBe(0));
  }, 30_000);

  it("five clients fighting over one client id leave no session once they stop", async () => {
    const { integration, password } = await make("fighter");
    const stopAt = Date.now() + 3_000;
    const fighter = async () => {
      let logins = 0;
      while (Date.now() < stopAt) {
        const c = await rawMqtt(port);
        c.send(connectPacket({ clientId: "contested", username: "fighter", password: Buffer.from(password) }));
        if ((await c.next())?.returnCode === 0) logins++;
        c.destroy();
        await c.closed;
      }
      return logins;
    };
    const logins = await Promise.all(Array.from({ length: 5 }, fighter));
    expect(logins.reduce((a, b) => a + b, 0)).toBeGreaterThan(5);
    await eventually(() => expect(app.core.sessions.countFor(integration.id)).toBe(0));
    expect(app.core.sessions.size).toBe(0);
  }, 30_000);
});

describe("a client id belongs to one integration", () => {
  it("another integration cannot take over a live connection (CONNACK 2), the same one can", async () => {
    const y = await make("owner-y");
    const z = await make("intruder-z");
    const live = await connectMqtt(port, { username: "owner-y", password: y.password, clientId: "line-3-plc" });
    expect(await refusalCode(port, { username: "intruder-z", password: z.password, clientId: "line-3-plc" })).toBe(2);
    expect(live.connected).toBe(true);
    expect(app.core.loginLog.recent(5).map((f) => f.reason)).toContain("client-id-in-use");
    const gone = closed(live);
    const again = await connectMqtt(port, { username: "owner-y", password: y.password, clientId: "line-3-plc" }); // [MQTT-3.1.4-2]
    await gone;
    await again.endAsync();
  });

  it("never hands a persistent session, its subscriptions or queued messages to another integration", async () => {
    const y = await make("persist-y");
    const z = await make("persist-z");
    const pub = await make("persist-pub");
    const c = await connectMqtt(port, {
      username: "persist-y",
      password: y.password,
      clientId: "keeper",
      clean: false,
    });
    await c.subscribeAsync("secret/#", { qos: 1 });
    await c.endAsync();
    const p = await connectMqtt(port, { username: "persist-pub", password: pub.password });
    await p.publishAsync("secret/recipe", "queued for Y only", { qos: 1 });
    // While Y's session exists, its id is Y's.
    expect(
      await refusalCode(port, { username: "persist-z", password: z.password, clientId: "keeper", clean: false }),
    ).toBe(2);
    // Y deleted: its session goes with it; Z starts clean and receives nothing of Y's.
    app.core.credentials.remove(y.integration.id);
    const zc = await connectMqtt(port, {
      username: "persist-z",
      password: z.password,
      clientId: "keeper",
      clean: false,
    });
    const first = nextMessage(zc);
    await zc.subscribeAsync("z/own", { qos: 1 });
    await p.publishAsync("secret/recipe", "live, not for Z's filter", { qos: 1 });
    await p.publishAsync("z/own", "mine", { qos: 1 });
    expect(await first).toEqual({ topic: "z/own", payload: "mine" });
    await zc.endAsync();
    // Z's own session persists from now on.
    await p.publishAsync("z/own", "while away", { qos: 1 });
    const back = await connectWithInbox(port, {
      username: "persist-z",
      password: z.password,
      clientId: "keeper",
      clean: false,
    });
    expect(await back.next()).toEqual({ topic: "z/own", payload: "while away" });
    await Promise.all([back.client.endAsync(), p.endAsync()]);
  });
});

describe("permissions at every delivery", () => {
  it("a narrowed subscribe permission holds for queued and live messages", async () => {
    const reader = await make("narrowed", { subscribeAcl: ["area/#"] });
    const pub = await make("narrow-pub");
    const c = await connectMqtt(port, {
      username: "narrowed",
      password: reader.password,
      clientId: "narrowed-1",
      clean: false,
    });
    await c.subscribeAsync("area/#", { qos: 1 });
    await c.endAsync();
    app.core.credentials.update(reader.integration.id, { subscribeAcl: ["area/public/#"] });
    const p = await connectMqtt(port, { username: "narrow-pub", password: pub.password });
    await p.publishAsync("area/secret/1", "no", { qos: 1 });
    await p.publishAsync("area/public/1", "yes", { qos: 1 });
    const back = await connectWithInbox(port, {
      username: "narrowed",
      password: reader.password,
      clientId: "narrowed-1",
      clean: false,
    });
    expect(await back.next()).toEqual({ topic: "area/public/1", payload: "yes" });
    // The restored `area/#` was refused under the new permission; a live subscription inside it works.
    expect(await subackCodes(back.client, ["area/#", "area/public/#"])).toEqual([128, 0]);
    await p.publishAsync("area/secret/2", "no", { qos: 1 });
    await p.publishAsync("area/public/2", "yes", { qos: 1 });
    expect(await back.next()).toEqual({ topic: "area/public/2", payload: "yes" });
    await Promise.all([back.client.endAsync(), p.endAsync()]);
  });

  it("a refused publish reaches nobody: not live, not an offline # subscriber, not the retained store", async () => {
    const spy = await make("hash-spy");
    const limited = await make("limited-pub", { publishAcl: ["allowed/#"] });
    const s = await connectMqtt(port, {
      username: "hash-spy",
      password: spy.password,
      clientId: "spy-1",
      clean: false,
    });
    await s.subscribeAsync("#", { qos: 1 });
    await s.endAsync();
    const p = await connectMqtt(port, { username: "limited-pub", password: limited.password });
    await p.publishAsync("forbidden/x", "leak", { qos: 1, retain: true }); // acknowledged [MQTT-3.3.5-2]
    await p.publishAsync("allowed/x", "fine", { qos: 1 });
    const back = await connectWithInbox(port, {
      username: "hash-spy",
      password: spy.password,
      clientId: "spy-1",
      clean: false,
    });
    expect(await back.next()).toEqual({ topic: "allowed/x", payload: "fine" });
    const retained: string[] = [];
    for await (const m of app.core.bus.retained("#")) retained.push(m.topic);
    expect(retained).not.toContain("forbidden/x");
    await Promise.all([back.client.endAsync(), p.endAsync()]);
  });
});

describe("bursts", () => {
  it("200 wrong passwords for one username sent at once over MQTT get at most the limit's hashes", async () => {
    await make("burst-target");
    const before = app.core.credentials.stats.hashVerifies;
    const codes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => refusalCode(port, { username: "burst-target", password: `wrong-${i}` })),
    );
    expect(codes.every((c) => c === 4)).toBe(true);
    expect(app.core.credentials.stats.hashVerifies - before).toBeLessThanOrEqual(app.core.credentials.throttle.limit);
  }, 30_000);
});

describe("kicks are exact", () => {
  it("a login verified with the old password while a reset is written does not stay connected", async () => {
    const { integration, password } = await make("racing");
    const attempts = Array.from({ length: 7 }, () =>
      connectMqtt(port, { username: "racing", password, reconnectPeriod: 0 }).then(
        (c) => c,
        () => undefined,
      ),
    );
    await app.core.credentials.resetPassword(integration.id);
    const clients = await Promise.all(attempts);
    await Promise.all(clients.map((c) => (c ? closed(c) : undefined)));
    expect(clients.filter((c) => c?.connected)).toEqual([]);
    await eventually(() => expect(app.core.sessions.countFor(integration.id)).toBe(0));
  });
});

describe("wills", () => {
  const revocations: [string, (id: number) => unknown][] = [
    ["deactivate", (id) => app.core.credentials.setActive(id, false)],
    ["delete", (id) => app.core.credentials.remove(id)],
    ["password reset", (id) => app.core.credentials.resetPassword(id)],
    ["permission change", (id) => app.core.credentials.update(id, { subscribeAcl: ["other/#"] })],
    [
      "the Disconnect button",
      (id) => app.core.sessions.kickSession(app.core.sessions.list({ integrationId: id })[0]!.id),
    ],
  ];
  for (const [name, revoke] of revocations) {
    it(`a client revoked by ${name} does not get its will published`, async () => {
      const watcher = await make(`will-watcher-${name.replaceAll(" ", "-")}`);
      const dev = await make(`will-dev-${name.replaceAll(" ", "-")}`);
      const w = await connectMqtt(port, { username: watcher.integration.username, password: watcher.password });
      await w.subscribeAsync("wills/#");
      const topic = `wills/${dev.integration.id}`;
      const d = await connectMqtt(port, {
        username: dev.integration.username,
        password: dev.password,
        will: { topic, payload: Buffer.from("offline"), qos: 0, retain: false },
      });
      const gone = closed(d);
      await revoke(dev.integration.id);
      await gone;
      const first = nextMessage(w);
      const sentinel = await connectMqtt(port, { username: watcher.integration.username, password: watcher.password });
      await sentinel.publishAsync("wills/sentinel", "after", { qos: 1 });
      expect(await first).toEqual({ topic: "wills/sentinel", payload: "after" });
      await Promise.all([w.endAsync(), sentinel.endAsync()]);
    });
  }

  it("a client that loses its connection on its own gets its will", async () => {
    const watcher = await make("will-watcher-natural");
    const dev = await make("will-dev-natural");
    const w = await connectMqtt(port, { username: "will-watcher-natural", password: watcher.password });
    await w.subscribeAsync("wills/#");
    const d = await connectMqtt(port, {
      username: "will-dev-natural",
      password: dev.password,
      will: { topic: "wills/natural", payload: Buffer.from("offline"), qos: 0, retain: false },
    });
    const got = nextMessage(w);
    (d as unknown as { stream: { destroy(): void } }).stream.destroy();
    expect(await got).toEqual({ topic: "wills/natural", payload: "offline" });
    d.end(true);
    await w.endAsync();
  });
});

describe("malformed input closes that connection", () => {
  const login = async (username: string) => {
    const { password } = await make(username);
    const c = await rawMqtt(port);
    c.send(connectPacket({ clientId: username, username, password: Buffer.from(password) }));
    expect((await c.next())?.returnCode).toBe(0);
    return c;
  };

  it("a topic with U+0000 or bad UTF-8 in PUBLISH, and a bad filter in SUBSCRIBE", async () => {
    const nul = await login("nul-sender");
    nul.send({ cmd: "publish", topic: "poison/\u0000x", payload: Buffer.from("x"), qos: 0, retain: true });
    await nul.closed;
    // bad UTF-8: topic bytes ff fe written by hand (mqtt-packet would encode a string correctly)
    const bad = await login("utf8-sender");
    bad.send(new Uint8Array([0x30, 0x06, 0x00, 0x02, 0xff, 0xfe, 0x61, 0x62]));
    await bad.closed;
    const sub = await login("bad-filter");
    sub.send(new Uint8Array([0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 0xc3, 0x28, 0x00]));
    await sub.closed;
    const retained: string[] = [];
    for await (const m of app.core.bus.retained("#")) retained.push(m.topic);
    expect(retained.filter((t) => t.startsWith("poison"))).toEqual([]);
  });

  it("an empty client id with a persistent session gets CONNACK 2 [MQTT-3.1.3-8]", async () => {
    const { password } = await make("no-id");
    const c = await rawMqtt(port);
    const bytes = new Uint8Array(
      mqttPacket.generate(
        connectPacket({ clientId: "", clean: true, username: "no-id", password: Buffer.from(password) }) as never,
      ),
    );
    bytes[9] = bytes[9]! & ~0x02; // clean session off: a packet mqtt-packet itself refuses to write
    c.send(bytes);
    expect((await c.next())?.returnCode).toBe(2);
    await c.closed;
  });

  it("will QoS 3 is a protocol error: closed without CONNACK", async () => {
    const { password } = await make("will-qos3");
    const c = await rawMqtt(port);
    // CONNECT, will flag + will QoS 3 (flags 0xDE: user, password, will QoS 3, will, clean)
    const fields = connectPacket({
      clientId: "w3",
      username: "will-qos3",
      password: Buffer.from(password),
      will: { topic: "w", payload: Buffer.from("x"), qos: 2, retain: false },
    });
    const bytes = new Uint8Array(mqttPacket.generate(fields as never));
    const flagsAt = 2 + 2 + 4 + 1; // fixed header (2), protocol name (2+4), level (1)
    bytes[flagsAt] = bytes[flagsAt]! | 0x18;
    c.send(bytes);
    expect(await c.next()).toBeUndefined();
  });

  it("protocol levels other than 3 and 4 get CONNACK 1, and MQTT 5 is listed among failed logins", async () => {
    const c = await rawMqtt(port);
    c.send(new Uint8Array([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x07, 0x02, 0x00, 0x1e, 0x00, 0x01, 0x61]));
    expect((await c.next())?.returnCode).toBe(1);
    await c.closed;
    const v5 = await refusalCode(port, { protocolVersion: 5, username: "whoever", password: "x" });
    expect(v5).not.toBe(0);
    await eventually(() => expect(app.core.loginLog.recent(10).map((f) => f.reason)).toContain("unsupported-protocol"));
  });
});

describe("deny rules", () => {
  it("a deny wins over an allow, for publish and subscribe; wildcards partly over a denied topic are filtered per message", async () => {
    const i = await make("deny-test", { denySubscribeAcl: ["test/nosubscribe"], denyPublishAcl: ["plant/+/cmd"] });
    const c = await connectMqtt(port, { username: "deny-test", password: i.password });
    // The Paho interop suite's shape: `#` and `+/+` granted, `test/nosubscribe` refused.
    expect(await subackCodes(c, ["test/nosubscribe", "+/+", "#", "test/#"])).toEqual([128, 0, 0, 0]);
    const first = nextMessage(c);
    await c.publishAsync("test/nosubscribe", "hidden", { qos: 1 });
    await c.publishAsync("plant/a/cmd", "refused", { qos: 1 });
    await c.publishAsync("test/visible", "shown", { qos: 1 });
    expect(await first).toEqual({ topic: "test/visible", payload: "shown" });
    await c.endAsync();
  });

  it("an explicit permission grants a $ topic other than $SYS; $SYS is never publishable", async () => {
    const i = await make("dollar", { publishAcl: ["$app/#", "$SYS/#"], subscribeAcl: ["$app/#"] });
    const c = await connectMqtt(port, { username: "dollar", password: i.password });
    expect(await subackCodes(c, ["$app/events"])).toEqual([0]);
    const got = nextMessage(c);
    await c.publishAsync("$SYS/fake", "no", { qos: 1 });
    await c.publishAsync("$app/events", "yes", { qos: 1 });
    expect(await got).toEqual({ topic: "$app/events", payload: "yes" });
    await c.endAsync();
  });
});

describe("smaller", () => {
  it("the sessions list shows the current username after a rename", async () => {
    const { integration, password } = await make("before-rename");
    const c = await connectMqtt(port, { username: "before-rename", password });
    app.core.credentials.update(integration.id, { username: "after-rename", description: "renamed" });
    expect(app.core.sessions.list({ integrationId: integration.id }).map((s) => s.username)).toEqual(["after-rename"]);
    await c.endAsync();
  });

  it("idle sockets from one address cannot take every waiting slot", async () => {
    const small = await testApp(["--max-pending", "10", "--opcua-port", "off"]);
    try {
      const p = small.app.address("mqtt")!.port;
      const { password } = await small.app.core.credentials.create({ type: "mqtt", username: "neighbour-device" });
      const idle = await Promise.all(Array.from({ length: 30 }, () => rawMqtt(p)));
      await eventually(() => expect(idle.filter((s) => s.isClosed).length).toBe(20)); // the oldest silent ones make room
      const device = await connectMqtt(p, { username: "neighbour-device", password, localAddress: "127.0.0.2" });
      expect(device.connected).toBe(true);
      await device.endAsync();
      for (const s of idle) s.destroy();
    } finally {
      await small.app.stop();
    }
  });

  it("sockets that never log in do not use up the connection limit", async () => {
    const small = await testApp([
      "--mqtt-max-connections",
      "2",
      "--mqtt-max-integration-connections",
      "2",
      "--max-pending",
      "50",
      "--opcua-port",
      "off",
    ]);
    try {
      const p = small.app.address("mqtt")!.port;
      const { password } = await small.app.core.credentials.create({ type: "mqtt", username: "device" });
      const idle = await Promise.all(Array.from({ length: 10 }, () => rawMqtt(p)));
      const a = await connectMqtt(p, { username: "device", password, clientId: "a" });
      const b = await connectMqtt(p, { username: "device", password, clientId: "b" });
      expect(await refusalCode(p, { username: "device", password, clientId: "c" })).toBe(3);
      for (const s of idle) s.destroy();
      await Promise.all([a.endAsync(), b.endAsync()]);
    } finally {
      await small.app.stop();
    }
  });
});
