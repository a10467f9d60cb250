import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { collect, type Received } from "../helpers/upstream.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * MQTT over TLS (the upstream's own CA, given with --ca, beside the system's) and over WebSockets, with a
 * user name and password, against another Gatehouse as the upstream (its MQTTS port with a self-signed
 * certificate, its /mqtt WebSocket endpoint, its integrations and topic permissions).
 */
let edge: { app: App; url: string };
let hq: { app: App; url: string; dir: string };
let token: string;
let rx: Received;
let edgePassword: string;

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${edge.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json().catch(() => undefined) };
};
const status = async (name: string) => (await api("GET", `/api/v1/uplinks/${name}`)).json.status;
const mqttsPort = (a: App) =>
  (a.listeners.find((l) => l.type === "mqtt") as unknown as { tlsAddress(): { port: number } }).tlsAddress().port;

beforeAll(async () => {
  hq = await testApp(["--opcua-port", "off", "--mqtts-port", "0"]);
  edge = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"]);
  token = edge.app.core.admins.createApiToken("t").token;
  // the appliance's login upstream: an integration of the upstream Gatehouse, confined to its site
  ({ password: edgePassword } = await hq.app.core.credentials.create({
    type: "mqtt",
    username: "edge-line-3",
    publishAcl: ["line-3/#"],
    subscribeAcl: ["line-3/#"],
  }));
  const reader = await hq.app.core.credentials.create({
    type: "mqtt",
    username: "hq-reader",
    subscribeAcl: ["line-3/#"],
  });
  const sub = await connectMqtt(hq.app.address("mqtt")!.port, {
    username: "hq-reader",
    password: reader.password,
    clientId: "hq-reader",
  });
  rx = await collect(sub, "line-3/#");
}, 60_000);

afterAll(async () => {
  await edge?.app.stop();
  await hq?.app.stop();
  cleanupTempDirs();
});

describe("uplink transports", () => {
  it("mqtts:// with the upstream's CA and a password; ws:// to an MQTT-over-WebSocket endpoint", async () => {
    const ca = readFileSync(join(hq.dir, "tls", "gatehouse.crt"), "utf8");
    const tls = await api("POST", "/api/v1/uplinks", {
      name: "tls",
      urls: [`mqtts://127.0.0.1:${mqttsPort(hq.app)}`],
      forward: ["tls/#"],
      remotePrefix: "line-3/",
      username: "edge-line-3",
      password: edgePassword,
      ca,
      clientId: "edge-line-3-tls",
    });
    expect(tls.status).toBe(201);
    const ws = await api("POST", "/api/v1/uplinks", {
      name: "ws",
      urls: [`ws://127.0.0.1:${hq.app.address("http")!.port}/mqtt`],
      forward: ["ws/#"],
      remotePrefix: "line-3/",
      username: "edge-line-3",
      password: edgePassword,
      clientId: "edge-line-3-ws",
    });
    expect(ws.status).toBe(201);
    await eventually(async () => expect((await status("tls")).connected).toBe(true), 15_000);
    await eventually(async () => expect((await status("ws")).connected).toBe(true), 15_000);
    const { password } = await edge.app.core.credentials.create({
      type: "mqtt",
      username: "plc-t",
      publishAcl: ["tls/#", "ws/#"],
    });
    const plc = await connectMqtt(edge.app.address("mqtt")!.port, { username: "plc-t", password, clientId: "plc-t" });
    await plc.publishAsync("tls/a", "over tls", { qos: 1 });
    await plc.publishAsync("ws/a", "over ws", { qos: 1 });
    await rx.until((m) => m.some((x) => x.topic === "line-3/tls/a") && m.some((x) => x.topic === "line-3/ws/a"));
    expect(rx.messages.find((x) => x.topic === "line-3/tls/a")?.payload).toBe("over tls");
    expect(rx.messages.find((x) => x.topic === "line-3/ws/a")?.payload).toBe("over ws");
    // the upstream sees the appliance as its integration, online
    expect(hq.app.core.sessions.countFor(hq.app.core.credentials.findByUsername("edge-line-3")!.id)).toBe(2);
    await plc.endAsync();
  }, 60_000);

  it("says why it cannot connect: an unknown CA, a wrong password", async () => {
    await api("POST", "/api/v1/uplinks", {
      name: "no-ca",
      urls: [`mqtts://127.0.0.1:${mqttsPort(hq.app)}`],
      forward: ["x/#"],
      username: "edge-line-3",
      password: edgePassword,
      clientId: "edge-line-3-noca",
    });
    await api("POST", "/api/v1/uplinks", {
      name: "wrong-pw",
      urls: [`mqtt://127.0.0.1:${hq.app.address("mqtt")!.port}`],
      forward: ["x/#"],
      username: "edge-line-3",
      password: "not-the-password",
      clientId: "edge-line-3-wrong",
    });
    await eventually(async () => expect((await status("no-ca")).lastError).toMatch(/certificate/i), 15_000);
    await eventually(
      async () => expect((await status("wrong-pw")).lastError).toMatch(/user ?name or password|not authorized/i),
      15_000,
    );
    expect((await status("no-ca")).connected).toBe(false);
    expect((await status("wrong-pw")).connected).toBe(false);
  }, 30_000);
});
