import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { connect as tcpConnect } from "node:net";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { closed, connectMqtt, nextMessage, refusalCode, subackCodes } from "../helpers/mqtt.ts";
import { eventually, waitFor } from "../helpers/wait.ts";

let app: App;
let port: number;
beforeAll(async () => {
  ({ app } = await testApp(["--mqtt-max-packet", "4096"]));
  port = app.address("mqtt")!.port;
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const make = (type: "mqtt" | "opcua" | "vrpc" | "http", username: string, extra: { password?: string } = {}) =>
  app.core.credentials.create({ type, username, ...extra });

describe("MQTT authentication", () => {
  it("lets a good credential in: publish/subscribe round trip, online status and last login", async () => {
    const { integration, password } = await make("mqtt", "press-1");
    const c = await connectMqtt(port, { username: "press-1", password, clientId: "press-1-a" });
    await eventually(() => expect(app.core.sessions.countFor(integration.id)).toBe(1)); // opens right behind the CONNACK
    expect(app.core.sessions.list({ integrationId: integration.id })[0]).toMatchObject({
      clientId: "press-1-a",
      remote: expect.stringContaining("127.0.0.1"),
    });
    expect(app.core.credentials.get(integration.id)!.lastLoginAt).toBeNumber();
    await c.subscribeAsync("plant/press-1/#");
    const got = nextMessage(c);
    await c.publishAsync("plant/press-1/temp", "21.5", { qos: 1 });
    expect(await got).toEqual({ topic: "plant/press-1/temp", payload: "21.5" });
    const sessionClosed = waitFor(app.core.events, "session.closed", (e) => e.session.integrationId === integration.id);
    await c.endAsync();
    await sessionClosed;
    expect(app.core.sessions.countFor(integration.id)).toBe(0);
  });

  it("refuses each reason with its CONNACK code", async () => {
    await make("mqtt", "known", { password: "the-password" });
    const off = await make("mqtt", "switched-off", { password: "the-password" });
    app.core.credentials.setActive(off.integration.id, false);
    await make("opcua", "scada-only", { password: "the-password" });
    const cases: [string, { username?: string; password?: string }, number][] = [
      ["unknown user", { username: "ghost", password: "the-password" }, 4],
      ["wrong password", { username: "known", password: "not-it-at-all" }, 4],
      ["no username", {}, 4],
      ["deactivated", { username: "switched-off", password: "the-password" }, 5],
      ["wrong type", { username: "scada-only", password: "the-password" }, 5],
    ];
    for (const [name, creds, code] of cases) {
      expect([name, await refusalCode(port, creds)]).toEqual([name, code]);
    }
    const failures = app.core.loginLog.recent(20).map((f) => f.reason);
    expect(failures).toEqual(expect.arrayContaining(["unknown-user", "wrong-password", "deactivated", "wrong-type"]));
  });

  it("lets VRPC agents in (they are MQTT clients of this broker)", async () => {
    const { password } = await make("vrpc", "agent-a");
    expect(await refusalCode(port, { username: "agent-a", password })).toBe(0);
  });

  it("keeps the integration online through a client-id takeover [MQTT-3.1.4-2]", async () => {
    const { integration, password } = await make("mqtt", "taker");
    const first = await connectMqtt(port, { username: "taker", password, clientId: "same-id" });
    const firstClosed = closed(first);
    const firstSessionClosed = waitFor(
      app.core.events,
      "session.closed",
      (e) => e.session.integrationId === integration.id,
    );
    const second = await connectMqtt(port, { username: "taker", password, clientId: "same-id" });
    await firstClosed;
    await firstSessionClosed;
    expect(app.core.sessions.countFor(integration.id)).toBe(1);
    expect(second.connected).toBe(true);
    await second.endAsync();
  });
});

describe("kicks", () => {
  for (const [change, reconnectCode] of [
    ["deactivate", 5],
    ["delete", 4],
    ["reset password", 4],
  ] as const) {
    it(`${change} drops a connected client within a second and refuses its reconnect`, async () => {
      const { integration, password } = await make("mqtt", `kick-${change.replace(" ", "-")}`);
      const c = await connectMqtt(port, { username: integration.username, password });
      const gone = closed(c);
      if (change === "deactivate") app.core.credentials.setActive(integration.id, false);
      if (change === "delete") app.core.credentials.remove(integration.id);
      if (change === "reset password") await app.core.credentials.resetPassword(integration.id);
      await gone; // the kick is synchronous: no timer, no polling
      expect(await refusalCode(port, { username: integration.username, password })).toBe(reconnectCode);
    });
  }

  it("disconnects one session from the API", async () => {
    const { integration, password } = await make("mqtt", "one-of-two");
    const a = await connectMqtt(port, { username: "one-of-two", password, clientId: "a" });
    const b = await connectMqtt(port, { username: "one-of-two", password, clientId: "b" });
    const sessionA = app.core.sessions.list({ integrationId: integration.id }).find((s) => s.clientId === "a")!;
    const gone = closed(a);
    expect(app.core.sessions.kickSession(sessionA.id)).toBe(true);
    await gone;
    expect(b.connected).toBe(true);
    expect(app.core.sessions.countFor(integration.id)).toBe(1);
    await b.endAsync();
  });
});

describe("topic permissions", () => {
  it("grants and refuses subscriptions and publishes as configured", async () => {
    const line = await make("mqtt", "line-1");
    app.core.credentials.update(line.integration.id, {
      publishAcl: ["plant/line1/#"],
      subscribeAcl: ["plant/+/status"],
    });
    const watcher = await make("mqtt", "watcher");
    const w = await connectMqtt(port, { username: "watcher", password: watcher.password });
    await w.subscribeAsync("#");
    const c = await connectMqtt(port, { username: "line-1", password: line.password });

    expect(await subackCodes(c, ["plant/line2/status", "plant/#", "other/x"])).toEqual([0, 128, 128]);

    // One publisher's messages are routed in order: the first to arrive must be the permitted one.
    const got = nextMessage(w);
    await c.publishAsync("plant/line2/x", "no", { qos: 1 }); // acknowledged, not forwarded
    await c.publishAsync("plant/line1/speed", "yes", { qos: 1 });
    expect(await got).toEqual({ topic: "plant/line1/speed", payload: "yes" });
    expect(c.connected).toBe(true);
    await c.endAsync();
    await w.endAsync();
  });

  it("never lets an MQTT integration publish $SYS or the VRPC info topics", async () => {
    const m = await make("mqtt", "impostor");
    const watcher = await make("mqtt", "watcher-2");
    app.core.credentials.update(watcher.integration.id, { subscribeAcl: ["#", "$SYS/#"] });
    const w = await connectMqtt(port, { username: "watcher-2", password: watcher.password });
    await w.subscribeAsync(["#", "$SYS/#"]);
    const c = await connectMqtt(port, { username: "impostor", password: m.password });
    const seen: string[] = [];
    w.on("message", (topic) => seen.push(topic));
    await c.publishAsync("$SYS/fake", "x", { qos: 1 });
    await c.publishAsync("vrpc/agent1/__agentInfo__", '{"status":"online"}', { qos: 1, retain: true });
    await c.publishAsync("vrpc/agent1/Foo/__classInfo__", "{}", { qos: 1 });
    await c.publishAsync("plain/topic", "allowed", { qos: 1 });
    // One publisher's messages arrive in order: once the last one is here, the refused ones would be too.
    await eventually(() => expect(seen).toContain("plain/topic"));
    expect(seen.filter((t) => t === "$SYS/fake" || t.includes("__"))).toEqual([]);
    await c.endAsync();
    await w.endAsync();
  });

  it("applies a permission change by reconnecting the client", async () => {
    const { integration, password } = await make("mqtt", "re-scoped");
    const c = await connectMqtt(port, { username: "re-scoped", password });
    const gone = closed(c);
    app.core.credentials.update(integration.id, { subscribeAcl: ["a/#"] });
    await gone;
    expect(app.core.sessions.countFor(integration.id)).toBe(0);
    const again = await connectMqtt(port, { username: "re-scoped", password });
    expect(await subackCodes(again, ["a/b", "b/c"])).toEqual([0, 128]);
    await again.endAsync();
  });
});

describe("hostile bytes", () => {
  /**
   * rawSend: sends bytes on a socket of its own and resolves once the server has closed it (this side
   * never closes it; `halfClose` ends this side's writing, as a client whose packet was cut would).
   */
  const rawSend = (bytes: Uint8Array, halfClose = false) =>
    new Promise<"closed by the server">((resolve) => {
      const s = tcpConnect(port, "127.0.0.1", () => (halfClose ? s.end(bytes) : s.write(bytes)));
      s.on("error", () => {});
      s.on("close", () => resolve("closed by the server"));
    });

  it("random bytes, truncated and oversize packets close that connection and nothing else", async () => {
    const { password } = await make("mqtt", "bystander");
    const c = await connectMqtt(port, { username: "bystander", password });
    await c.subscribeAsync("still/#");
    const noise = crypto.getRandomValues(new Uint8Array(512));
    noise[0] = 0x00; // packet type 0 is reserved: whatever follows, the first byte is already a protocol error
    expect(await rawSend(noise)).toBe("closed by the server");
    expect(await rawSend(new Uint8Array([0x10, 0xff, 0xff, 0xff, 0x7f]))).toBe("closed by the server"); // CONNECT claiming 256 MB
    expect(await rawSend(new Uint8Array([0x10, 0x20, 0x00, 0x04, 0x4d]), true)).toBe("closed by the server"); // truncated CONNECT, then EOF
    const big = await connectMqtt(port, { username: "bystander", password, clientId: "big" });
    const bigGone = closed(big);
    big.publish("still/big", Buffer.alloc(8192)); // over --mqtt-max-packet 4096
    await bigGone;
    const got = nextMessage(c);
    await c.publishAsync("still/here", "ok");
    expect(await got).toEqual({ topic: "still/here", payload: "ok" });
    await c.endAsync();
  });
});

describe("connection limit", () => {
  it("closes connections over --mqtt-max-connections and serves again once one leaves", async () => {
    const small = await testApp([
      "--mqtt-max-connections",
      "2",
      "--mqtt-max-integration-connections",
      "2",
      "--opcua-port",
      "off",
    ]);
    try {
      const p = small.app.address("mqtt")!.port;
      const { password } = await small.app.core.credentials.create({ type: "mqtt", username: "crowd" });
      const a = await connectMqtt(p, { username: "crowd", password, clientId: "a" });
      const b = await connectMqtt(p, { username: "crowd", password, clientId: "b" });
      expect(
        await connectMqtt(p, { username: "crowd", password, clientId: "c", connectTimeout: 1000 }).then(
          () => "in",
          () => "refused",
        ),
      ).toBe("refused");
      await a.endAsync();
      await eventually(() => expect(small.app.core.sessions.size).toBe(1));
      const c = await connectMqtt(p, { username: "crowd", password, clientId: "c" });
      await Promise.all([b.endAsync(), c.endAsync()]);
    } finally {
      await small.app.stop();
    }
  });

  it("one integration holds at most its part (attack4 F7): the others still get in; a takeover of its own id is not a new one", async () => {
    const small = await testApp(["--mqtt-max-connections", "4", "--opcua-port", "off"]); // 2 each by default
    try {
      const p = small.app.address("mqtt")!.port;
      const hog = await small.app.core.credentials.create({ type: "mqtt", username: "hog" });
      const other = await small.app.core.credentials.create({ type: "mqtt", username: "line-7" });
      const a = await connectMqtt(p, { username: "hog", password: hog.password, clientId: "hog-a" });
      const b = await connectMqtt(p, { username: "hog", password: hog.password, clientId: "hog-b" });
      const third = await connectMqtt(p, {
        username: "hog",
        password: hog.password,
        clientId: "hog-c",
        protocolVersion: 5,
        connectTimeout: 2000,
        reconnectPeriod: 0,
      }).then(
        () => "in",
        (e: { code?: number }) => e.code,
      );
      expect(third).toBe(0x97); // quota exceeded
      // the other integration is not shut out
      const c = await connectMqtt(p, { username: "line-7", password: other.password, clientId: "line-7" });
      // a takeover of one of its own ids replaces a connection: allowed at the limit
      const again = await connectMqtt(p, { username: "hog", password: hog.password, clientId: "hog-a" });
      await eventually(() => expect(small.app.core.sessions.countFor(hog.integration.id)).toBe(2));
      await Promise.all([again.endAsync(), b.endAsync(), c.endAsync(), a.endAsync(true)]);
    } finally {
      await small.app.stop();
    }
  });
});
