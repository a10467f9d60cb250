import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import {
  AttributeIds,
  ClientMonitoredItem,
  ClientSubscription,
  TimestampsToReturn,
  UserTokenType,
  type DataValue,
} from "node-opcua-client";
import type { App } from "../../src/app.ts";
import { formatSubject } from "../../src/listeners/opcua/certificates.ts";
import { cleanupTempDirs, tempDir, testApp, trustOf } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import {
  connectOpcua,
  DataType,
  MessageSecurityMode,
  readValue,
  SecurityPolicy,
  type OpcuaConnection,
} from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

let app: App;
let port: number;
let mqttPort: number;
beforeAll(async () => {
  ({ app } = await testApp(["--mqtt-max-packet", "4096"]));
  port = app.address("opcua")!.port;
  mqttPort = app.address("mqtt")!.port;
}, 60_000);
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const topic = (t: string) => `ns=1;s=Topics/${t}`;

async function opcuaUser(username: string, acl: { publishAcl?: string[]; subscribeAcl?: string[] } = {}) {
  const made = await app.core.credentials.create({ type: "opcua", username });
  if (Object.keys(acl).length) app.core.credentials.update(made.integration.id, acl);
  return connectOpcua(port, { userName: username, password: made.password });
}

async function publisher(name: string) {
  const m = await app.core.credentials.create({ type: "mqtt", username: name });
  return connectMqtt(mqttPort, { username: name, password: m.password });
}

/** watch: a monitored item on a Topics variable; every value (or status) it reports. */
async function watch(c: OpcuaConnection, nodeId: string, samplingInterval: number) {
  const sub = ClientSubscription.create(c.session, {
    requestedPublishingInterval: 50,
    requestedMaxKeepAliveCount: 20,
    publishingEnabled: true,
    maxNotificationsPerPublish: 100,
  });
  const seen: DataValue[] = [];
  const item = ClientMonitoredItem.create(
    sub,
    { nodeId, attributeId: AttributeIds.Value },
    { samplingInterval, discardOldest: false, queueSize: 100 },
    TimestampsToReturn.Both,
  );
  item.on("changed", (dv: DataValue) => seen.push(dv));
  await new Promise<void>((resolve) => item.once("initialized", () => resolve()));
  return { seen, stop: () => sub.terminate() };
}

describe("OPC UA values follow the read permission everywhere", () => {
  for (const sampling of [0, 250]) {
    it(`a monitored item (sampling ${sampling}) of a session without read permission sees no value`, async () => {
      const m = await publisher(`secret-pub-${sampling}`);
      const t = `secret${sampling}/recipe`;
      await m.publishAsync(t, "secret-initial", { retain: true, qos: 1 });
      // The session may read a topic below `t`, so `t` is there for it (a level on the way), but its
      // own value is not readable. (A topic with nothing readable below is absent: opcua-visibility.)
      await m.publishAsync(`${t}/public`, "1", { retain: true, qos: 1 });
      const denied = await opcuaUser(`nosy-${sampling}`, { subscribeAcl: [`${t}/public`] });
      const allowed = await opcuaUser(`entitled-${sampling}`, { subscribeAcl: [`secret${sampling}/#`] });
      await eventually(async () =>
        expect((await readValue(allowed.session, topic(t))).value.value).toBe("secret-initial"),
      );
      await eventually(async () => expect((await readValue(denied.session, topic(`${t}/public`))).value.value).toBe(1));
      const nosy = await watch(denied, topic(t), sampling);
      const entitled = await watch(allowed, topic(t), sampling);
      for (const v of ["secret-alpha", "secret-beta", "secret-gamma"])
        await m.publishAsync(t, v, { retain: true, qos: 1 });
      await eventually(() => expect(entitled.seen.map((d) => d.value.value)).toContain("secret-gamma"));
      // exception-based (sampling 0): every change reaches the reader, none folded away
      if (sampling === 0)
        expect(entitled.seen.map((d) => d.value.value)).toEqual(
          expect.arrayContaining(["secret-alpha", "secret-beta", "secret-gamma"]),
        );
      expect(nosy.seen.length).toBeGreaterThan(0);
      expect(nosy.seen.every((d) => d.statusCode.name === "BadUserAccessDenied" && d.value.value === null)).toBe(true);
      expect(JSON.stringify(nosy.seen.map((d) => d.value.value))).not.toContain("secret");
      // the UserAccessLevel attribute says so too
      const level = await denied.session.read({ nodeId: topic(t), attributeId: AttributeIds.UserAccessLevel });
      expect(level.value.value & 1).toBe(0);
      const allowedLevel = await allowed.session.read({ nodeId: topic(t), attributeId: AttributeIds.UserAccessLevel });
      expect(allowedLevel.value.value & 1).toBe(1);
      await Promise.all([nosy.stop(), entitled.stop()]);
      await Promise.all([denied.close(), allowed.close(), m.endAsync()]);
    }, 30_000);
  }
});

describe("OPC UA values keep one type per topic", () => {
  it("the first payload fixes the DataType; a later payload is converted or refused; a Float 1.1 is published as 1.1", async () => {
    const m = await publisher("typing-pub");
    await m.publishAsync("typed/level", "21.5", { retain: true, qos: 1 });
    const c = await opcuaUser("typing-scada");
    await eventually(async () => expect((await readValue(c.session, topic("typed/level"))).value.value).toBe(21.5));
    await m.publishAsync("typed/level", "true", { retain: true, qos: 1 });
    await eventually(async () =>
      expect((await readValue(c.session, topic("typed/level"))).value).toMatchObject({
        dataType: DataType.Double,
        value: 1,
      }),
    );
    await m.publishAsync("typed/level", "not a number", { retain: true, qos: 1 });
    await eventually(async () =>
      expect((await readValue(c.session, topic("typed/level"))).statusCode.name).toBe("BadTypeMismatch"),
    );
    const write = (value: { dataType: DataType; value: unknown }) =>
      c.session
        .write({ nodeId: topic("typed/level"), attributeId: AttributeIds.Value, value: { value } })
        .then((s) => s.name);
    expect(await write({ dataType: DataType.Boolean, value: true })).toBe("BadTypeMismatch");
    await m.subscribeAsync("typed/level");
    const got = new Promise<string>((r) =>
      m.on("message", (_t, p) => p.toString() !== "not a number" && r(p.toString())),
    );
    expect(await write({ dataType: DataType.Float, value: 1.1 })).toBe("Good");
    expect(await got).toBe("1.1");
    await Promise.all([c.close(), m.endAsync()]);
  }, 30_000);

  it("a write larger than --mqtt-max-packet is refused and published nowhere", async () => {
    const m = await publisher("big-pub");
    await m.publishAsync("big/blob", "small", { retain: true, qos: 1 });
    const c = await opcuaUser("big-scada");
    await eventually(async () => expect((await readValue(c.session, topic("big/blob"))).value.value).toBe("small"));
    const status = await c.session
      .write({
        nodeId: topic("big/blob"),
        attributeId: AttributeIds.Value,
        value: { value: { dataType: DataType.String, value: "x".repeat(10_000) } },
      })
      .then(
        (s) => s.name,
        (e: Error) => e.message,
      );
    expect(status).toMatch(/BadEncodingLimitsExceeded|BadRequestTooLarge|BadTcpMessageTooLarge/);
    expect((await readValue(c.session, topic("big/blob"))).value.value).toBe("small");
    await Promise.all([c.close(), m.endAsync()]);
  }, 30_000);
});

describe("OPC UA connection limits", () => {
  it("past --opcua-max-sessions a client is refused clearly instead of hanging; more than node-opcua's 10 channels work", async () => {
    const small = await testApp(["--opcua-max-sessions", "12", "--mqtt-port", "off"]);
    const p = small.app.address("opcua")!.port;
    const open: OpcuaConnection[] = [];
    try {
      const { password } = await small.app.core.credentials.create({ type: "opcua", username: "crowd" });
      for (let i = 0; i < 12; i++) open.push(await connectOpcua(p, { userName: "crowd", password }));
      const extra = await connectOpcua(p, { userName: "crowd", password }).then(
        async (c) => (await c.close(), "connected"),
        (e: Error) => e.message,
      );
      expect(extra).toContain("BadTooManySessions");
    } finally {
      for (const c of open) await c.close();
      await small.app.stop();
    }
  }, 60_000);
});

describe("OPC UA identities and certificates", () => {
  it("offers username tokens only: no anonymous, no X509 user token", async () => {
    const c = await opcuaUser("endpoint-reader");
    const endpoints = await c.client.getEndpoints();
    const tokens = endpoints.flatMap((e) => e.userIdentityTokens ?? []).map((t) => t.tokenType);
    expect(new Set(tokens)).toEqual(new Set([UserTokenType.UserName]));
    await c.close();
  });

  it("a refused client certificate is logged and listed among failed logins", async () => {
    // (an anonymous attempt never leaves node-opcua-client: no anonymous token policy is offered)
    expect(
      await connectOpcua(port, "anonymous").then(
        () => "in",
        (e: Error) => e.message,
      ),
    ).toContain("ANONYMOUS");
    await connectOpcua(
      port,
      { userName: "x", password: "y" },
      {
        mode: MessageSecurityMode.Sign,
        policy: SecurityPolicy.Basic256Sha256,
        pkiDir: tempDir("gatehouse-opcua-client-"),
      },
    ).catch(() => undefined);
    await eventually(() =>
      expect(app.core.loginLog.recent(50).map((f) => f.reason)).toEqual(
        expect.arrayContaining(["certificate-rejected"]),
      ),
    );
  }, 60_000);

  it("revoking a trusted certificate ends the sessions and channels that use it", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "opcua", username: "revoked-scada" });
    const pkiDir = tempDir("gatehouse-opcua-client-");
    const secure = { mode: MessageSecurityMode.SignAndEncrypt, policy: SecurityPolicy.Basic256Sha256, pkiDir };
    await connectOpcua(port, { userName: "revoked-scada", password }, secure).catch(() => undefined);
    const mine = (await trustOf(app).list()).find((c) => c.applicationUri.endsWith(pkiDir.split("/").pop()!))!;
    await trustOf(app).trust(mine.thumbprint);
    const c = await connectOpcua(port, { userName: "revoked-scada", password }, secure);
    expect(app.core.sessions.countFor(integration.id)).toBe(1);
    await trustOf(app).revoke(mine.thumbprint);
    expect(app.core.sessions.countFor(integration.id)).toBe(0);
    const after = await Promise.race([
      readValue(c.session, "ns=1;s=Gatehouse/Status/Version").then(
        (v) => v.statusCode.name,
        (e: Error) => e.message,
      ),
      new Promise<string>((r) => setTimeout(() => r("no answer (channel gone, reconnect refused)"), 3000)),
    ]);
    expect(after).not.toBe("Good");
    await c.client.disconnect().catch(() => undefined);
  }, 60_000);

  it("shows certificate subjects as CN=..., O=...", () => {
    expect(
      formatSubject({
        entries: [{}, {}],
        commonName: "Press HMI",
        organizationName: "ACME",
        countryName: "DE",
      } as never),
    ).toBe("CN=Press HMI, O=ACME, C=DE");
  });
});
