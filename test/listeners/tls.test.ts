import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { TlsSource } from "../../src/lib/tls.ts";
import { cleanupTempDirs, tempDir, testApp } from "../helpers/app.ts";
import { closed, connectMqtt, nextMessage, refusalCode } from "../helpers/mqtt.ts";

/** TLS for MQTT and HTTPS, MQTT over WebSockets, with real clients (mqtt.js, fetch, mosquitto_pub). */
let app: App;
let dir: string;
let ca: string;
beforeAll(async () => {
  ({ app, dir } = await testApp(["--opcua-port", "off", "--https-port", "0", "--mqtts-port", "0"]));
  ca = readFileSync(join(dir, "tls", "gatehouse.crt"), "utf8");
}, 60_000);
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const mqttsPort = () =>
  (app.listeners.find((l) => l.type === "mqtt") as unknown as { tlsAddress(): { port: number } }).tlsAddress().port;

describe("TLS", () => {
  it("makes a self-signed certificate for this host and 127.0.0.1, and logs its fingerprint", () => {
    const x = new X509Certificate(ca);
    expect(x.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(x.checkHost("localhost")).toBe("localhost");
  });

  it("MQTT over TLS: mqtt.js with the CA gets in, a wrong password still gets CONNACK 4", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "tls-device" });
    const c = await connectMqtt(mqttsPort(), {
      protocol: "mqtts",
      ca,
      servername: "localhost",
      username: "tls-device",
      password,
    });
    const got = nextMessage(c);
    await c.subscribeAsync("tls/#");
    await c.publishAsync("tls/x", "secret over tls", { qos: 1 });
    expect(await got).toEqual({ topic: "tls/x", payload: "secret over tls" });
    await c.endAsync();
    expect(
      await refusalCode(mqttsPort(), {
        protocol: "mqtts",
        ca,
        servername: "localhost",
        username: "tls-device",
        password: "wrong-password",
      }),
    ).toBe(4);
  });

  it("mosquitto_pub --cafile publishes over TLS", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "tls-mosquitto" });
    const watcher = await app.core.credentials.create({ type: "mqtt", username: "tls-watcher" });
    const w = await connectMqtt(app.address("mqtt")!.port, { username: "tls-watcher", password: watcher.password });
    await w.subscribeAsync("mosq/#");
    const got = nextMessage(w, 10_000);
    const caFile = join(dir, "tls", "gatehouse.crt");
    const p = Bun.spawn(
      [
        "mosquitto_pub",
        "-h",
        "localhost",
        "-p",
        String(mqttsPort()),
        "--cafile",
        caFile,
        "-u",
        "tls-mosquitto",
        "-P",
        password,
        "-t",
        "mosq/hello",
        "-m",
        "from mosquitto_pub",
        "-q",
        "1",
      ],
      { stderr: "pipe" },
    );
    expect(await p.exited).toBe(0);
    expect(await got).toEqual({ topic: "mosq/hello", payload: "from mosquitto_pub" });
    await w.endAsync();
  });

  it("HTTPS serves the page and the API with the same certificate; the fingerprint is on the Settings page", async () => {
    const https = app.address("https")!;
    const res = await fetch(`https://localhost:${https.port}/healthz`, { tls: { ca } });
    expect(res.status).toBe(200);
    expect((await fetch(`https://localhost:${https.port}/login`, { tls: { ca } })).status).toBe(200);
    const { signIn } = await import("../helpers/http.ts");
    const { cookie } = await signIn(`http://127.0.0.1:${app.address("http")!.port}`);
    const page = await (
      await fetch(`http://127.0.0.1:${app.address("http")!.port}/settings`, { headers: { cookie } })
    ).text();
    expect(page).toContain(new X509Certificate(ca).fingerprint256);
  });

  it("--http-redirect sends plain HTTP to HTTPS", async () => {
    const own = await testApp([
      "--opcua-port",
      "off",
      "--mqtt-port",
      "off",
      "--https-port",
      "0",
      "--http-redirect",
      "true",
    ]);
    try {
      const res = await fetch(`${own.url}/integrations?x=1`, { redirect: "manual" });
      expect(res.status).toBe(308);
      expect(res.headers.get("location")).toBe(`https://127.0.0.1:${own.app.address("https")!.port}/integrations?x=1`);
    } finally {
      await own.app.stop();
    }
  }, 60_000);

  it("a reloaded certificate serves new connections; open ones stay", async () => {
    const a = tempDir();
    const b = tempDir();
    const pairA = new TlsSource({ dataDir: a });
    const pairB = new TlsSource({ dataDir: b });
    await Promise.all([pairA.load(), pairB.load()]);
    const live = tempDir();
    copyFileSync(pairA.current.certFile, join(live, "cert.pem"));
    copyFileSync(pairA.current.keyFile, join(live, "key.pem"));
    const own = await testApp([
      "--opcua-port",
      "off",
      "--https-port",
      "0",
      "--mqtts-port",
      "0",
      "--tls-cert",
      join(live, "cert.pem"),
      "--tls-key",
      join(live, "key.pem"),
    ]);
    try {
      const port = (
        own.app.listeners.find((l) => l.type === "mqtt") as unknown as { tlsAddress(): { port: number } }
      ).tlsAddress().port;
      const fingerprint = () =>
        new Promise<string>((resolve, reject) => {
          const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
            resolve(s.getPeerX509Certificate()!.fingerprint256);
            s.destroy();
          });
          s.on("error", reject);
        });
      expect(await fingerprint()).toBe(pairA.current.fingerprint);
      const { password } = await own.app.core.credentials.create({ type: "mqtt", username: "stays" });
      const c = await connectMqtt(port, { protocol: "mqtts", rejectUnauthorized: false, username: "stays", password });
      copyFileSync(pairB.current.certFile, join(live, "cert.pem"));
      copyFileSync(pairB.current.keyFile, join(live, "key.pem"));
      own.app.reloadTls(); // what SIGHUP does
      expect(await fingerprint()).toBe(pairB.current.fingerprint);
      expect(c.connected).toBe(true);
      await c.endAsync();
    } finally {
      await own.app.stop();
    }
  }, 60_000);
});

describe("MQTT over WebSockets", () => {
  it("ws:// and wss:// at /mqtt: same credentials, permissions and kicks as TCP", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "mqtt", username: "ws-dashboard" });
    app.core.credentials.update(integration.id, { subscribeAcl: ["dash/#"] });
    const ws = await connectMqtt(0, {
      protocol: "ws",
      host: "localhost",
      port: app.address("http")!.port,
      path: "/mqtt",
      username: "ws-dashboard",
      password,
    } as never);
    expect(app.core.sessions.list({ integrationId: integration.id })[0]?.remote).toContain("127.0.0.1");
    const granted = await ws.subscribeAsync(["dash/#"]);
    expect(granted[0]?.qos).toBe(0);
    const got = nextMessage(ws);
    await ws.publishAsync("dash/line1", "over websockets");
    expect(await got).toEqual({ topic: "dash/line1", payload: "over websockets" });
    expect(
      await refusalCode(0, {
        protocol: "ws",
        host: "localhost",
        port: app.address("http")!.port,
        path: "/mqtt",
        username: "ws-dashboard",
        password: "wrong",
      } as never),
    ).toBe(4);
    const wss = await connectMqtt(0, {
      protocol: "wss",
      host: "localhost",
      port: app.address("https")!.port,
      path: "/mqtt",
      ca,
      username: "ws-dashboard",
      password,
    } as never);
    expect(wss.connected).toBe(true);
    const gone = Promise.all([closed(ws), closed(wss)]);
    app.core.credentials.setActive(integration.id, false);
    await gone;
  });
});
