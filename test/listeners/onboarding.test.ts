import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import mqtt from "mqtt";
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { fingerprintOf } from "../../src/core/onboarding.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt, connectPacket, rawMqtt } from "../helpers/mqtt.ts";
import { connectOpcua } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

/** Smart onboarding through each protocol's real client: the device brings its own credentials. */
let app: App;
let base: string;
let mqttPort: number;
const procs: ReturnType<typeof Bun.spawn>[] = [];
beforeAll(async () => {
  ({ app, url: base } = await testApp([]));
  mqttPort = app.address("mqtt")!.port;
});
afterEach(() => {
  app.core.onboarding.close();
  for (const p of procs.splice(0)) p.kill("SIGKILL");
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const pending = (username: string) => app.core.onboarding.list().find((r) => r.username === username);

describe("onboarding over MQTT", () => {
  it("closed: refused, not listed; open: refused and listed once; approved: the client's own retry gets in", async () => {
    const opts = {
      host: "127.0.0.1",
      port: mqttPort,
      username: "line-9-plc",
      password: "device-own-secret",
      clientId: "line-9",
      reconnectPeriod: 150,
      connectTimeout: 2000,
      reconnectOnConnackError: true,
    };
    const closedTry = mqtt.connect(opts);
    await eventually(() => expect(app.core.loginLog.recent(5).some((f) => f.username === "line-9-plc")).toBe(true));
    expect(pending("line-9-plc")).toBeUndefined();
    closedTry.end(true);

    app.core.onboarding.open({ minutes: 5, by: "test" });
    const device = mqtt.connect(opts); // retries every 150 ms, never reconfigured
    const errors: number[] = [];
    device.on("error", (e) => errors.push((e as { code?: number }).code ?? -1));
    await eventually(() => expect(pending("line-9-plc")?.attempts).toBeGreaterThanOrEqual(3));
    expect(app.core.onboarding.list().filter((r) => r.username === "line-9-plc")).toHaveLength(1);
    expect(errors).toContain(4); // refused as usual: CONNACK 4
    expect(pending("line-9-plc")).toMatchObject({
      type: "mqtt",
      clientId: "line-9",
      fingerprint: fingerprintOf("line-9-plc", "device-own-secret"),
    });

    const connected = new Promise<void>((r) => device.once("connect", () => r()));
    app.core.onboarding.approve([pending("line-9-plc")!.id]);
    await connected;
    const integration = app.core.credentials.findByUsername("line-9-plc")!;
    expect(integration.type).toBe("mqtt");
    expect(app.core.sessions.countFor(integration.id)).toBe(1);
    await device.endAsync();
  });

  it("rejected: gone and not listed again during the window", async () => {
    app.core.onboarding.open({ by: "test" });
    const opts = { username: "unwanted", password: "unwanted-password" };
    await connectMqtt(mqttPort, opts).catch(() => undefined);
    await eventually(() => expect(pending("unwanted")).toBeDefined());
    app.core.onboarding.reject(pending("unwanted")!.id);
    await connectMqtt(mqttPort, opts).catch(() => undefined);
    await connectMqtt(mqttPort, opts).catch(() => undefined);
    expect(pending("unwanted")).toBeUndefined();
  });
});

describe("onboarding a VRPC agent with no credentials", () => {
  it("its first attempt becomes a VRPC request; approved, its own retry gets in and it serves", async () => {
    app.core.onboarding.open({ by: "test" });
    const proc = Bun.spawn(["bun", join(import.meta.dir, "../fixtures/vrpc-agent.ts")], {
      env: { ...process.env, BROKER: `mqtt://127.0.0.1:${mqttPort}`, DOMAIN: "plant", AGENT: "self-made" },
      stdout: "pipe",
      stderr: "inherit",
    });
    procs.push(proc);
    const lines: string[] = [];
    void (async () => {
      const decoder = new TextDecoder();
      const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read())
        lines.push(...decoder.decode(r.value).split("\n").filter(Boolean));
    })();
    await eventually(() => expect(pending("plant/self-made")).toMatchObject({ type: "vrpc" }), 10_000);
    expect(pending("plant/self-made")!.clientId).toStartWith("va3");
    app.core.onboarding.approve([pending("plant/self-made")!.id]);
    await eventually(() => expect(lines).toContain("serving"), 10_000); // vrpc retries every second
    expect(app.core.credentials.findByUsername("plant/self-made")!.type).toBe("vrpc");
  }, 30_000);
});

describe("onboarding over OPC UA", () => {
  it("an unknown user is refused and listed with its application URI; approved, the same client gets in", async () => {
    app.core.onboarding.open({ by: "test" });
    const user = { userName: "scada-new", password: "scada-own-password" };
    const first = await connectOpcua(app.address("opcua")!.port, user).then(
      () => "in",
      (e: Error) => e.message,
    );
    expect(first).toContain("BadUserAccessDenied");
    await eventually(() =>
      expect(pending("scada-new")).toMatchObject({
        type: "opcua",
        clientId: expect.stringContaining("urn:gatehouse-test"),
      }),
    );
    app.core.onboarding.approve([pending("scada-new")!.id]);
    const c = await connectOpcua(app.address("opcua")!.port, user);
    expect(app.core.sessions.countFor(app.core.credentials.findByUsername("scada-new")!.id)).toBe(1);
    await c.close();
  }, 60_000);
});

describe("onboarding over HTTP", () => {
  const auth = { authorization: `Basic ${Buffer.from("gw-new:gw-own-password").toString("base64")}` };
  it("Basic auth of an unknown user: 401 and listed; approved: the same request gets 202", async () => {
    app.core.onboarding.open({ by: "test" });
    expect((await fetch(`${base}/api/v1/data/x`, { method: "POST", headers: auth, body: "1" })).status).toBe(401);
    await eventually(() => expect(pending("gw-new")).toMatchObject({ type: "http" }));
    app.core.onboarding.approve([pending("gw-new")!.id]);
    expect((await fetch(`${base}/api/v1/data/x`, { method: "POST", headers: auth, body: "1" })).status).toBe(202);
  });

  it("explicit registration: 423 closed, 202 pending, 201 approved, 409 taken", async () => {
    const register = (username: string, password: string, type = "http") =>
      fetch(`${base}/api/v1/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username, password, type }),
      });
    expect((await register("reg-device", "reg-device-password")).status).toBe(423);
    app.core.onboarding.open({ by: "test" });
    const asked = await register("reg-device", "reg-device-password");
    expect(asked.status).toBe(202);
    expect(await asked.json()).toMatchObject({
      status: "pending",
      fingerprint: fingerprintOf("reg-device", "reg-device-password"),
    });
    expect((await register("reg-device", "reg-device-password")).status).toBe(202);
    app.core.onboarding.approve([pending("reg-device")!.id]);
    expect((await register("reg-device", "reg-device-password")).status).toBe(201);
    expect((await register("reg-device", "somebody-else-password")).status).toBe(409);
    expect((await register("reg-2", "x")).status).not.toBe(500);
  });
});

describe("activity", () => {
  it("lists approvals with who approved them, over the API", async () => {
    const { token } = app.core.admins.createApiToken("onboarding-bot");
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      });
    expect(
      (await api("/api/v1/onboarding/open", { method: "POST", body: JSON.stringify({ minutes: 3, types: ["http"] }) }))
        .status,
    ).toBe(200);
    await fetch(`${base}/api/v1/register`, {
      method: "POST",
      body: JSON.stringify({ username: "via-api", password: "via-api-password", type: "http" }),
    });
    const { requests } = await (await api("/api/v1/onboarding")).json();
    const id = requests.find((r: { username: string }) => r.username === "via-api").id;
    const approved = await api("/api/v1/onboarding/approve", {
      method: "POST",
      body: JSON.stringify({ ids: [id], description: "approved by a bot" }),
    });
    expect((await approved.json()).approved[0].username).toBe("via-api");
    const { items } = await (await api("/api/v1/activity?action=onboarding.approved")).json();
    expect(items[0]).toMatchObject({
      action: "onboarding.approved",
      subject: "via-api",
      actor: "token:onboarding-bot",
    });
    // one approval, one entry (issue 26): no `integration.created` beside it
    const created = await (await api("/api/v1/activity?action=integration.created&q=via-api")).json();
    expect(created.items).toEqual([]);
  });
});

describe("abuse", () => {
  it("1000 distinct unknown usernames in a burst from one address: at most 100 listed, a real device still connects", async () => {
    // Its own appliance: the burst uses up this address's failure budget for a minute.
    const own = await testApp(["--opcua-port", "off"]);
    const port = own.app.address("mqtt")!.port;
    own.app.core.onboarding.open({ by: "test" });
    const { password } = await own.app.core.credentials.create({ type: "mqtt", username: "steady-device" });
    const burst = Array.from({ length: 1000 }, async (_, i) => {
      const c = await rawMqtt(port);
      c.send(connectPacket({ clientId: `burst-${i}`, username: `burst-${i}`, password: Buffer.from("guess") }));
      await c.next();
      c.destroy();
    });
    // The device lives at another address of the plant network.
    const device = await connectMqtt(port, { username: "steady-device", password, localAddress: "127.0.0.2" });
    expect(device.connected).toBe(true);
    await device.endAsync();
    await Promise.all(burst);
    expect(own.app.core.onboarding.list().length).toBeLessThanOrEqual(100);
    expect(own.app.core.onboarding.list().length).toBeGreaterThan(0);
    await own.app.stop();
  }, 60_000);
});
