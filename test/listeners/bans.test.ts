import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { request as httpRequest } from "node:http";
// vrpc is CommonJS without types.
// @ts-expect-error no type declarations
import { VrpcAgent } from "vrpc";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { closed, connectMqtt, refusalCode } from "../helpers/mqtt.ts";
import { connectOpcua } from "../helpers/opcua.ts";
import { eventually, waitFor } from "../helpers/wait.ts";

/**
 * Bans on every listener, with real clients: each banned connect is refused before any password work.
 * The proof is the verifier's own counters (hashes computed, cache answers, throttle refusals): a ban
 * leaves every one of them where it was, even for the right password, where a wrong login moves them.
 */
let app: App;
let url: string;
let mqttPort: number;
let opcuaPort: number;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

beforeAll(async () => {
  ({ app, url } = await testApp(["--forward-auth-proxy", "nginx", "--trusted-proxies", "127.0.0.1"]));
  mqttPort = app.address("mqtt")!.port;
  opcuaPort = app.address("opcua")!.port;
}, 30_000);
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

/** passwordWork: everything the login path counts when it looks at a password (hash, caches, throttle). */
const passwordWork = () => {
  return { ...app.core.credentials.stats };
};
const metric = async (name: string) => {
  const text = await app.core.metrics.render();
  return text.split("\n").filter((l) => l.startsWith(name));
};

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

/** get: an HTTP request from a chosen loopback address (node:http binds it; fetch cannot). */
function get(path: string, headers: Record<string, string>, localAddress = "127.0.0.1") {
  return new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    const u = new URL(url + path);
    const req = httpRequest({ host: "127.0.0.1", port: Number(u.port), path, headers, localAddress }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end();
  });
}

describe("a ban refuses the next connect before any password work", () => {
  it("MQTT: a banned username, even with the right password, gets CONNACK 5 (MQTT 5: 0x8A Banned); no hash", async () => {
    const { password } = await app.core.credentials.create({
      type: "mqtt",
      username: "mq-banned",
      password: "right-password-1",
    });
    // first a wrong login, to see the counters do move when a password is looked at
    const before0 = passwordWork();
    expect(await refusalCode(mqttPort, { username: "mq-banned", password: "wrong-password", clientId: "x1" })).toBe(4);
    expect(passwordWork()).not.toEqual(before0);

    app.core.bans.add({ kind: "username", value: "mq-banned", minutes: 5 });
    const before = passwordWork();
    expect(await refusalCode(mqttPort, { username: "mq-banned", password, clientId: "x2" })).toBe(5);
    expect(await refusalCode(mqttPort, { username: "mq-banned", password, clientId: "x3", protocolVersion: 5 })).toBe(
      0x8a,
    );
    expect(passwordWork()).toEqual(before);
    expect(app.core.loginLog.recent(1)[0]).toMatchObject({ username: "mq-banned", reason: "banned" });
    expect(await metric('gatehouse_logins_total{protocol="mqtt",result="banned"}')).toEqual([
      'gatehouse_logins_total{protocol="mqtt",result="banned"} 2',
    ]);
  });

  it("MQTT: a banned client id is refused with the right credentials; another id of the same integration gets in", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "mq-cid" });
    app.core.bans.add({ kind: "clientId", value: "plc-bad", minutes: 5 });
    const before = passwordWork();
    expect(await refusalCode(mqttPort, { username: "mq-cid", password, clientId: "plc-bad" })).toBe(5);
    expect(passwordWork()).toEqual(before);
    expect(await refusalCode(mqttPort, { username: "mq-cid", password, clientId: "plc-good" })).toBe(0);
  });

  it("MQTT: a banned address is closed at accept, before a byte is read; another loopback address gets in", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "mq-addr" });
    app.core.bans.add({ kind: "address", value: "127.0.0.2", minutes: 5 });
    const before = passwordWork();
    const refused = app.core.bans.refused.address;
    const err = await connectMqtt(mqttPort, { username: "mq-addr", password, localAddress: "127.0.0.2" }).then(
      (c) => (c.end(true), "connected"),
      (e: { code?: number }) => e.code,
    );
    expect(err).toBe(-1); // closed before any CONNACK: nothing was read
    expect(app.core.bans.refused.address).toBe(refused + 1);
    expect(passwordWork()).toEqual(before);
    // the pool never counted it
    expect(app.pool.size).toBe(0);
    const ok = await connectMqtt(mqttPort, { username: "mq-addr", password, localAddress: "127.0.0.3" });
    await ok.endAsync();
  });

  it("MQTT and HTTP: a ::/0 ban closes an IPv4 client at accept too (it contains every IPv4-mapped address)", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "mq-all6" });
    const ban = app.core.bans.add({ kind: "address", value: "::/0", minutes: 5 });
    try {
      const refused = app.core.bans.refused.address;
      const err = await connectMqtt(mqttPort, { username: "mq-all6", password, localAddress: "127.0.0.6" }).then(
        (c) => (c.end(true), "connected"),
        (e: { code?: number }) => e.code,
      );
      expect(err).toBe(-1); // closed before any CONNACK
      expect(await get("/healthz", {}, "127.0.0.6")).toHaveProperty("error");
      expect(app.core.bans.refused.address).toBe(refused + 2);
    } finally {
      app.core.bans.remove(ban.id);
    }
    const ok = await connectMqtt(mqttPort, { username: "mq-all6", password, localAddress: "127.0.0.6" });
    await ok.endAsync();
  });

  it("adding a ban drops the matching live MQTT session at once; its reconnect is refused", async () => {
    const { password, integration } = await app.core.credentials.create({ type: "mqtt", username: "mq-live" });
    const client = await connectMqtt(mqttPort, { username: "mq-live", password, clientId: "live-1" });
    const gone = closed(client);
    const kicked = waitFor(app.core.events, "session.kicked", (e) => e.session.clientId === "live-1");
    app.core.bans.add({ kind: "clientId", value: "live-1", minutes: 5 });
    expect((await kicked).reason).toBe("banned (clientId live-1)");
    await gone;
    expect(app.core.sessions.countFor(integration.id)).toBe(0);
    expect(await refusalCode(mqttPort, { username: "mq-live", password, clientId: "live-1" })).toBe(5);
    expect(app.core.activity.list({ action: "session.kicked" })[0]?.detail).toContain("banned");
  });

  it("HTTP device API: a banned username gets 403 banned with the right password; no hash", async () => {
    const { password } = await app.core.credentials.create({ type: "http", username: "http-banned" });
    // logged in: no retained message there yet (404), not a refusal
    expect(await get("/api/v1/data/plant/x", { authorization: basic("http-banned", password) })).toMatchObject({
      status: 404,
    });
    app.core.bans.add({ kind: "username", value: "http-banned", minutes: 5 });
    const before = passwordWork();
    const res = await get("/api/v1/data/plant/x", { authorization: basic("http-banned", password) });
    expect(res).toMatchObject({ status: 403 });
    expect(JSON.parse((res as { body: string }).body).message).toBe("this client is banned");
    expect(passwordWork()).toEqual(before);
  });

  it("HTTP: a banned address is closed by the accept front before a request is read", async () => {
    const { password } = await app.core.credentials.create({ type: "http", username: "http-addr" });
    app.core.bans.add({ kind: "address", value: "127.0.0.4/32", minutes: 5 });
    const before = passwordWork();
    const res = await get("/api/v1/data/plant/x", { authorization: basic("http-addr", password) }, "127.0.0.4");
    expect(res).toHaveProperty("error"); // reset or hang-up: no HTTP answer at all
    expect(passwordWork()).toEqual(before);
    expect(await get("/healthz", {}, "127.0.0.5")).toMatchObject({ status: 200 });
  });

  it("forward auth behind a trusted proxy: the client's address (X-Forwarded-For) is judged, not the proxy's", async () => {
    const { password } = await app.core.credentials.create({ type: "http", username: "fa-user" });
    const ask = (xff: string) =>
      get("/auth/http", {
        authorization: basic("fa-user", password),
        "x-forwarded-for": xff,
        "x-original-uri": "/dashboard/x",
        "x-original-method": "GET",
      });
    expect(await ask("203.0.113.50")).toMatchObject({ status: 200 });
    app.core.bans.add({ kind: "address", value: "203.0.113.0/24", minutes: 5 });
    const before = passwordWork();
    expect(await ask("203.0.113.51")).toMatchObject({ status: 403 }); // nginx auth_request takes 403
    expect(passwordWork()).toEqual(before);
    expect(await ask("198.51.100.1")).toMatchObject({ status: 200 });
  });

  it("OPC UA: a banned username is refused at ActivateSession with the right password; no hash", async () => {
    const { password } = await app.core.credentials.create({ type: "opcua", username: "ua-banned" });
    app.core.bans.add({ kind: "username", value: "ua-banned", minutes: 5 });
    const before = passwordWork();
    const err = await connectOpcua(opcuaPort, { userName: "ua-banned", password }).then(
      async (c) => (await c.close(), "connected"),
      (e: Error) => e.message,
    );
    expect(err).toMatch(/BadUserAccessDenied|BadIdentityTokenRejected|BadIdentityTokenInvalid/);
    expect(passwordWork()).toEqual(before);
    expect(app.core.loginLog.recent(5).some((f) => f.username === "ua-banned" && f.reason === "banned")).toBe(true);
  }, 30_000);

  it("VRPC: an agent whose name is banned is refused at CONNECT (it keeps retrying); no hash", async () => {
    const { password } = await app.core.credentials.create({ type: "vrpc", username: "plant/banned-agent" });
    app.core.bans.add({ kind: "username", value: "plant/banned-agent", minutes: 5 });
    const before = passwordWork();
    const refused = waitFor(
      app.core.events,
      "login.failed",
      (e) => e.username === "plant/banned-agent" && e.reason === "banned",
    );
    const agent = new VrpcAgent({
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      domain: "plant",
      agent: "banned-agent",
      username: "plant/banned-agent",
      password,
      log: quiet,
    });
    void agent.serve().catch(() => undefined);
    await refused;
    await agent.end().catch(() => undefined);
    expect(passwordWork()).toEqual(before);
    await eventually(() => app.core.sessions.list({ type: "mqtt" }).every((s) => s.username !== "plant/banned-agent"));
  }, 30_000);

  it("a lifted ban lets the client in again", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "mq-lift" });
    const ban = app.core.bans.add({ kind: "username", value: "mq-lift", minutes: 5 });
    expect(await refusalCode(mqttPort, { username: "mq-lift", password })).toBe(5);
    app.core.bans.remove(ban.id);
    expect(await refusalCode(mqttPort, { username: "mq-lift", password })).toBe(0);
    expect(app.core.activity.list({ action: "ban." }).map((r) => r.action)).toContain("ban.removed");
  });
});
