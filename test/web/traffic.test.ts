import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { MqttClient } from "mqtt";
import type { Browser } from "playwright-core";
import type { App } from "../../src/app.ts";
import { adminPassword, cleanupTempDirs, testApp } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { AttributeIds, connectOpcua, DataType, readValue } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * Per-integration traffic (issue 26): what real clients sent and received, counted by the listeners and
 * shown on the row, the integration's page, `GET /api/v1/integrations/{id}` and /metrics. The counts are
 * exact: every wait is on a message, an acknowledgement or a response, never on time.
 */

let app: App;
let url: string;
let browser: Browser;
let token: string;

beforeAll(async () => {
  ({ app, url } = await testApp());
  token = app.core.admins.createApiToken("traffic-test").token;
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.stop();
  cleanupTempDirs();
});

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });

/** received: resolves once `client` has received `n` messages (counted from now). */
function received(client: MqttClient, n: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve) => {
    const on = (_topic: string, payload: Buffer) => {
      got.push(payload.toString());
      if (got.length === n) {
        client.off("message", on);
        resolve(got);
      }
    };
    client.on("message", on);
  });
}

const publish = (c: MqttClient, topic: string, payload: string) =>
  c.publishAsync(topic, payload, { qos: 1 }).then(() => undefined);

describe("per-integration traffic over MQTT", () => {
  it("counts exactly what an mqtt.js client sent, received and was refused; the API, the page and /metrics agree", async () => {
    const port = app.address("mqtt")!.port;
    const { integration: plc, password } = await app.core.credentials.create({
      type: "mqtt",
      username: "press-7",
      publishAcl: ["plant/line1/#"],
      subscribeAcl: ["plant/line1/#"],
    });
    const other = await app.core.credentials.create({ type: "mqtt", username: "scada-1" });
    const before = Date.now();
    const device = await connectMqtt(port, { username: "press-7", password, clientId: "press-7-a" });
    const scada = await connectMqtt(port, {
      username: "scada-1",
      password: other.password,
      clientId: "scada-1-a",
    });
    await device.subscribeAsync("plant/line1/#", { qos: 1 });
    // refused (SUBACK 0x80): not in its subscribe list
    expect(await device.subscribeAsync("plant/line2/#", { qos: 1 }).catch((e: Error) => e.message)).toContain(
      "Subscribe error",
    );

    // the device publishes 7 messages it also receives (its own subscription); scada sends it 3 more
    const sent = ["1", "22", "333", "4444", "55555", "666666", "7777777"];
    const fromScada = ["a".repeat(100), "b".repeat(200), "c".repeat(300)];
    const inbox = received(device, sent.length + fromScada.length);
    for (const p of sent) await publish(device, "plant/line1/temp", p);
    for (const p of fromScada) await publish(scada, "plant/line1/setpoint", p);
    // two publishes its permissions refuse (3.1.1: acknowledged, then dropped)
    await publish(device, "plant/secret/recipe", "x".repeat(50));
    await publish(device, "hall/lights", "on");
    const got = await inbox;
    expect(got.sort()).toEqual([...sent, ...fromScada].sort());

    const bytes = (list: string[]) => list.reduce((n, p) => n + Buffer.byteLength(p), 0);
    const res = await api(`/api/v1/integrations/${plc.id}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { traffic: Record<string, unknown> };
    expect(body.traffic).toEqual({
      messagesIn: sent.length,
      messagesOut: sent.length + fromScada.length,
      bytesIn: bytes(sent),
      bytesOut: bytes(sent) + bytes(fromScada),
      refused: 2,
      lastMessageAt: expect.any(String),
    });
    // the meters read a clock moved every 250 ms (core/traffic.ts): a message's time is at most that old
    expect(Date.parse(body.traffic.lastMessageAt as string)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(body.traffic.lastMessageAt as string)).toBeLessThanOrEqual(Date.now());
    // the other integration's own count: 3 in, nothing out (it subscribes to nothing)
    const scadaTraffic = ((await (await api(`/api/v1/integrations/${other.integration.id}`)).json()) as typeof body)
      .traffic;
    expect(scadaTraffic).toMatchObject({ messagesIn: 3, bytesIn: bytes(fromScada), messagesOut: 0, refused: 0 });

    // each live session: its own counts and the filters it holds (the refused one is not among them)
    const sessions = (await (await api(`/api/v1/sessions?integrationId=${plc.id}`)).json()) as {
      items: { clientId: string; subscriptions: string[]; traffic: Record<string, number> }[];
    };
    expect(sessions.items).toHaveLength(1);
    expect(sessions.items[0]!.subscriptions).toEqual(["plant/line1/#"]);
    expect(sessions.items[0]!.traffic).toMatchObject({ messagesIn: 7, messagesOut: 10, refused: 2 });

    // /metrics: by type, a bounded label set; no series per integration unless asked
    const metrics = await (await api("/metrics")).text();
    expect(metrics).toContain('gatehouse_traffic_messages_total{type="mqtt",direction="in"} 10');
    expect(metrics).toContain('gatehouse_traffic_refused_publishes_total{type="mqtt"} 2');
    expect(metrics).not.toContain("gatehouse_integration_traffic");
    expect(metrics).not.toContain("press-7");

    // in Chromium: the row (compact), the integration's page (whole), the session's subscriptions
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    await page.goto(`${url}/login`);
    await page.fill('input[name="username"]', "admin");
    await page.fill('input[name="password"]', adminPassword);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${url}/integrations`);
    const brief = page.locator('tr[data-username="press-7"] td.status .traffic');
    expect(await brief.locator("[aria-hidden]").allTextContents()).toEqual(["↑7 ↓10", " 2 refused"]);
    expect(await brief.getAttribute("title")).toBe(
      `7 messages in (${bytes(sent)} B), 10 out (${bytes(sent) + bytes(fromScada)} B), 2 refused publishes`,
    );
    // still one line per row at 1366 px with the traffic beside the status
    const heights = await page.evaluate(() =>
      Array.from(document.querySelectorAll("tbody.integration > tr:first-child")).map((tr) =>
        Math.round(tr.getBoundingClientRect().height),
      ),
    );
    expect(new Set(heights).size).toBe(1);

    await page.goto(`${url}/integrations/${plc.id}`);
    const facts = page.locator(".traffic-facts");
    const text = (await facts.textContent())!;
    expect(text).toContain(`Messages in7 (${bytes(sent)} B)`);
    expect(text).toContain(`Messages out10 (${bytes(sent) + bytes(fromScada)} B)`);
    expect(text).toContain("Refused publishes2");
    expect(await facts.locator("time").count()).toBe(1);
    const session = page.locator("ul.sessions li", { hasText: "press-7-a" });
    expect(await session.locator(".subscriptions code").allTextContents()).toEqual(["plant/line1/#"]);
    expect(await session.textContent()).toContain("7 messages in");
    await context.close();

    // the counts are since start, over every session: a reconnect adds to them
    await device.endAsync();
    const again = await connectMqtt(port, { username: "press-7", password, clientId: "press-7-b" });
    await publish(again, "plant/line1/temp", "8");
    const after = ((await (await api(`/api/v1/integrations/${plc.id}`)).json()) as typeof body).traffic;
    expect(after).toMatchObject({ messagesIn: 8, bytesIn: bytes(sent) + 1 });
    await again.endAsync();
    await scada.endAsync();

    // deleting the integration forgets its counters
    await api(`/api/v1/integrations/${plc.id}`, { method: "DELETE" });
    expect(app.core.sessions.trafficOf(plc.id)).toMatchObject({ messagesIn: 0, messagesOut: 0 });
  }, 60_000);
});

describe("per-integration traffic over HTTP", () => {
  it("counts a device's publishes, reads and refused publishes", async () => {
    const { integration, password } = await app.core.credentials.create({
      type: "http",
      username: "gw-9",
      publishAcl: ["plant/gw9/#"],
      subscribeAcl: ["plant/gw9/#"],
    });
    const auth = { authorization: `Basic ${btoa(`gw-9:${password}`)}` };
    const post = (topic: string, body: string) =>
      fetch(`${url}/api/v1/data/${topic}?retain=true`, { method: "POST", headers: auth, body });
    expect((await post("plant/gw9/level", "42.5")).status).toBe(202);
    expect((await post("plant/gw9/flow", "7")).status).toBe(202);
    expect((await post("plant/other/level", "1")).status).toBe(403);
    const read = await fetch(`${url}/api/v1/data/plant/gw9/level`, { headers: auth });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { payload: string }).payload).toBe("42.5");
    const t = ((await (await api(`/api/v1/integrations/${integration.id}`)).json()) as { traffic: object }).traffic;
    expect(t).toMatchObject({ messagesIn: 2, bytesIn: 5, messagesOut: 1, bytesOut: 4, refused: 1 });
  }, 30_000);
});

describe("per-integration traffic over OPC UA", () => {
  it("counts Reads answered with a value and monitored-item values as out, Writes as in, refused Writes as refused", async () => {
    const opcPort = app.address("opcua")!.port;
    const topic = (t: string) => `ns=1;s=Topics/${t}`;
    const feeder = await app.core.credentials.create({ type: "mqtt", username: "ua-feeder" });
    const m = await connectMqtt(app.address("mqtt")!.port, { username: "ua-feeder", password: feeder.password });
    await m.publishAsync("plant/ua/temp", "21.5", { qos: 1, retain: true });
    await m.publishAsync("plant/other/valve", "open", { qos: 1, retain: true });
    // an observer (not counted below) waits until the mirror has both values
    const observer = await app.core.credentials.create({ type: "opcua", username: "ua-observer" });
    const o = await connectOpcua(opcPort, { userName: "ua-observer", password: observer.password });
    await eventually(async () => expect((await readValue(o.session, topic("plant/ua/temp"))).value.value).toBe(21.5));
    await eventually(async () =>
      expect((await readValue(o.session, topic("plant/other/valve"))).value.value).toBe("open"),
    );
    await o.close();

    const { integration, password } = await app.core.credentials.create({
      type: "opcua",
      username: "scada-ua",
      subscribeAcl: ["plant/#"],
      publishAcl: ["plant/ua/#"],
    });
    const c = await connectOpcua(opcPort, { userName: "scada-ua", password });
    // 2 Reads answered with a value (4 + 4 bytes: "21.5", "open")
    expect((await readValue(c.session, topic("plant/ua/temp"))).value.value).toBe(21.5);
    expect((await readValue(c.session, topic("plant/other/valve"))).value.value).toBe("open");
    // reading another attribute (the DataType) is not a message
    await c.session.read({ nodeId: topic("plant/ua/temp"), attributeId: AttributeIds.DataType });
    // a Write it may make (published as "22", 2 bytes), one it may not (refused)
    const write = (nodeId: string, value: { dataType: DataType; value: unknown }) =>
      c.session.write({ nodeId, attributeId: AttributeIds.Value, value: { value } }).then((st) => st.name);
    expect(await write(topic("plant/ua/temp"), { dataType: DataType.Double, value: 22 })).toBe("Good");
    expect(await write(topic("plant/other/valve"), { dataType: DataType.String, value: "shut" })).toBe(
      "BadUserAccessDenied",
    );
    // a monitored item: its first value and each change are messages out
    const sub = await c.session.createSubscription2({
      requestedPublishingInterval: 50,
      requestedMaxKeepAliveCount: 20,
      publishingEnabled: true,
    });
    const item = await sub.monitor(
      { nodeId: topic("plant/ua/temp"), attributeId: AttributeIds.Value },
      { samplingInterval: 0, queueSize: 10, discardOldest: false },
      2, // TimestampsToReturn.Both
    );
    const seen: unknown[] = [];
    item.on("changed", (dv) => seen.push(dv.value.value));
    await eventually(() => expect(seen[0]).toBe(22));
    await m.publishAsync("plant/ua/temp", "23.25", { qos: 1, retain: true });
    await eventually(() => expect(seen.at(-1)).toBe(23.25));
    await sub.terminate();
    // its own write comes back as a change too, if the mirror had not taken it before the item began
    expect(seen.filter((v) => v === 22).length).toBeLessThanOrEqual(2);
    const bytesSeen = seen.reduce<number>((n, v) => n + String(v).length, 0);

    const t = ((await (await api(`/api/v1/integrations/${integration.id}`)).json()) as { traffic: object }).traffic;
    expect(t).toMatchObject({
      messagesIn: 1,
      bytesIn: 2,
      messagesOut: 2 + seen.length,
      bytesOut: 4 + 4 + bytesSeen,
      refused: 1,
    });
    await c.close();
    await m.endAsync();
  }, 60_000);
});

describe("/metrics per integration, when asked", () => {
  it("has a series per integration, labelled by username, in a family of its own", async () => {
    const own = await testApp(["--metrics-per-integration", "true"]);
    try {
      const { password } = await own.app.core.credentials.create({ type: "mqtt", username: "line-3" });
      const c = await connectMqtt(own.app.address("mqtt")!.port, { username: "line-3", password });
      await publish(c, "plant/x", "hello");
      await c.endAsync();
      const t = own.app.core.admins.createApiToken("m").token;
      const text = await (await fetch(`${own.url}/metrics`, { headers: { authorization: `Bearer ${t}` } })).text();
      expect(text).toContain('gatehouse_integration_traffic_messages_total{integration="line-3",direction="in"} 1');
      expect(text).toContain('gatehouse_integration_traffic_bytes_total{integration="line-3",direction="in"} 5');
      expect(text).toContain('gatehouse_traffic_messages_total{type="mqtt",direction="in"} 1');
    } finally {
      await own.app.stop();
    }
  }, 30_000);
});
