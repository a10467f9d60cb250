import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import {
  collect,
  mqttClient,
  type NatsCluster,
  type Received,
  startNatsCluster,
  stopUpstreams,
} from "../helpers/upstream.ts";
import { eventually } from "../helpers/wait.ts";

/**
 * A three-node NATS JetStream cluster upstream (Debian's nats-server 2.9, an `mqtt { }` block on each
 * node: MQTT 3.1.1, QoS 0/1, sessions and QoS 1 messages in replicated streams). The uplink names all
 * three nodes; the test kills the one it uses.
 */
let cluster: NatsCluster;
let app: App;
let token: string;
let url: string;
let sub: Awaited<ReturnType<typeof mqttClient>>;
let rx: Received;

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json().catch(() => undefined) };
};

beforeAll(async () => {
  cluster = await startNatsCluster(3);
  ({ app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"]));
  token = app.core.admins.createApiToken("cluster").token;
  // the subscriber on the last node: it stays up while the uplink's node dies
  sub = await mqttClient(cluster.mqttPorts[2]!, { clientId: "cluster-sub", clean: false });
  rx = await collect(sub, "plant-7/#");
}, 120_000);

afterAll(async () => {
  await sub?.endAsync().catch(() => undefined);
  await app?.stop();
  await stopUpstreams();
  cleanupTempDirs();
});

const numbers = (m: Received["messages"]) =>
  m.filter((x) => x.topic === "plant-7/line/count").map((x) => Number(x.payload));

describe("uplink to a NATS JetStream cluster", () => {
  it("numbered QoS 1 messages reach a subscriber on the cluster, prefix applied, in order; killing the node in use moves the uplink to another, nothing lost", async () => {
    const created = await api("POST", "/api/v1/uplinks", {
      name: "nats",
      urls: cluster.mqttPorts.map((p) => `mqtt://127.0.0.1:${p}`),
      forward: ["line/#"],
      remotePrefix: "plant-7/",
      inflight: 20,
    });
    expect(created.status).toBe(201);
    await eventually(
      async () => expect((await api("GET", "/api/v1/uplinks/nats")).json.status.connected).toBe(true),
      30_000,
    );
    const status = async () => (await api("GET", "/api/v1/uplinks/nats")).json.status;
    expect((await status()).url).toBe(`mqtt://127.0.0.1:${cluster.mqttPorts[0]}`); // the first that answers
    const { password } = await app.core.credentials.create({
      type: "mqtt",
      username: "plc-nats",
      publishAcl: ["line/#"],
    });
    const plc = await connectMqtt(app.address("mqtt")!.port, { username: "plc-nats", password, clientId: "plc-nats" });
    let n = 0;
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++) await plc.publishAsync("line/count", String(n++), { qos: 1 });
    };
    await publish(300);
    await rx.until((m) => numbers(m).length >= 300, 30_000);
    expect(numbers(rx.messages)).toEqual([...Array(300).keys()]);

    // The node in use dies while the device keeps publishing: the uplink takes the next node.
    const sending = publish(700);
    await eventually(() => expect(numbers(rx.messages).length).toBeGreaterThan(350), 30_000);
    await cluster.kill(0);
    await sending;
    await eventually(async () => {
      const s = await status();
      expect(s.connected).toBe(true);
      expect(s.url).not.toBe(`mqtt://127.0.0.1:${cluster.mqttPorts[0]}`);
    }, 60_000);
    await rx.until((m) => new Set(numbers(m)).size >= 1000, 60_000);
    const got = numbers(rx.messages);
    // every acknowledged message arrived; duplicates only of what was in flight at the cut; first arrivals in order
    expect(new Set(got).size).toBe(1000);
    const first = got.filter((v, i) => got.indexOf(v) === i);
    expect(first).toEqual([...Array(1000).keys()]);
    expect(got.length - 1000).toBeLessThanOrEqual(20);
    await eventually(async () => expect((await status()).queued).toBe(0), 30_000);
    expect(app.core.activity.list({ action: "uplink.disconnected" }).some((r) => r.subject === "nats")).toBe(true);
    await plc.endAsync();
  }, 180_000);
});
