import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { join } from "node:path";
import * as mqttPacket from "mqtt-packet";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt, nextMessage } from "../helpers/mqtt.ts";
import { connectOpcua, DataType } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";
import {
  collect,
  freePort,
  mqttClient,
  type Mosquitto,
  type Received,
  startMosquitto,
  stopUpstreams,
  tcpProxy,
} from "../helpers/upstream.ts";

const root = join(import.meta.dir, "../..");
let up: Mosquitto;
let app: App;
let url: string;
let dir: string;
let lines: string[];
let token: string;
let watcher: Awaited<ReturnType<typeof mqttClient>>;
let upstream: Received;

/** api: the JSON API with an API token (no CSRF needed). */
async function api(method: string, path: string, body?: unknown, base = url, bearer = token) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

/** device: an MQTT integration and its connected mqtt.js client. */
async function device(
  a: App,
  username: string,
  acl: { publishAcl?: string[]; subscribeAcl?: string[] } = {},
  v: 4 | 5 = 4,
) {
  const { integration, password } = await a.core.credentials.create({ type: "mqtt", username, ...acl });
  const client = await connectMqtt(a.address("mqtt")!.port, {
    username,
    password,
    clientId: username,
    protocolVersion: v,
  });
  return { integration, password, client };
}

const statusOf = async (name: string, base = url, bearer = token) =>
  (await api("GET", `/api/v1/uplinks/${name}`, undefined, base, bearer)).json.status;
const connected = (name: string, base = url, bearer = token) =>
  eventually(async () => expect((await statusOf(name, base, bearer))?.connected).toBe(true), 15_000);

beforeAll(async () => {
  up = await startMosquitto();
  ({ app, url, dir, lines } = await testApp(["--uplink-reconnect-max", "1"]));
  token = app.core.admins.createApiToken("uplink-tests").token;
  watcher = await mqttClient(up.port, { clientId: "watcher" });
  upstream = await collect(watcher, "#");
}, 60_000);

afterAll(async () => {
  await watcher?.endAsync();
  await app?.stop();
  await stopUpstreams();
  cleanupTempDirs();
});

const arrived = (prefix: string) => upstream.messages.filter((m) => m.topic.startsWith(prefix));

describe("uplink to Mosquitto", () => {
  it("forwards a device's numbered QoS 1 messages upstream under the remote prefix, in order, after a retained birth", async () => {
    const created = await api("POST", "/api/v1/uplinks", {
      name: "mosq",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["line1/#"],
      remotePrefix: "site-a/",
    });
    expect(created.status).toBe(201);
    await connected("mosq");
    const { client } = await device(app, "plc-order", { publishAcl: ["line1/#"] });
    for (let i = 0; i < 500; i++) await client.publishAsync("line1/count", String(i), { qos: 1 });
    await upstream.until((m) => m.filter((x) => x.topic === "site-a/line1/count").length >= 500);
    expect(arrived("site-a/line1/count").map((m) => Number(m.payload))).toEqual([...Array(500).keys()]);
    // the birth is retained: a late subscriber sees the appliance online
    const late = await mqttClient(up.port, { clientId: "late" });
    await late.subscribeAsync("site-a/$gatehouse/status", { qos: 1 });
    expect(await nextMessage(late, 5000)).toEqual({ topic: "site-a/$gatehouse/status", payload: "online" });
    await late.endAsync();
    await eventually(async () => expect((await statusOf("mosq")).forwarded).toBe(500));
    expect((await statusOf("mosq")).queued).toBe(0);
    await client.endAsync();
  }, 60_000);

  it("sends what was just written from memory and what outran it from disk: each device's messages in order, none missing", async () => {
    // A small window and a cut in the middle: what is written while the window is full, or while the
    // upstream is away, outgrows what the uplink keeps in memory and is read back from disk; then it
    // catches up and sends from memory again. Three devices publish at once throughout.
    const proxy = await tcpProxy(up.port);
    const created = await api("POST", "/api/v1/uplinks", {
      name: "mixed",
      urls: [`mqtt://127.0.0.1:${proxy.port}`],
      forward: ["mixed/#"],
      remotePrefix: "mixed-up/",
      inflight: 3,
    });
    expect(created.status).toBe(201);
    await connected("mixed");
    const n = 1500;
    const devices = await Promise.all([0, 1, 2].map((d) => device(app, `plc-mixed-${d}`, { publishAcl: ["mixed/#"] })));
    const flood = async (d: number, from: number, to: number) => {
      for (let i = from; i < to; i += 50)
        await Promise.all(
          Array.from({ length: Math.min(50, to - i) }, (_, k) =>
            devices[d]!.client.publishAsync(`mixed/${d}`, String(i + k), { qos: 1 }),
          ),
        );
    };
    await Promise.all([0, 1, 2].map((d) => flood(d, 0, n / 2)));
    await proxy.cut();
    await Promise.all([0, 1, 2].map((d) => flood(d, n / 2, (3 * n) / 4)));
    await proxy.restore();
    await Promise.all([0, 1, 2].map((d) => flood(d, (3 * n) / 4, n)));
    const firsts = (d: number) => [...new Set(arrived(`mixed-up/mixed/${d}`).map((m) => Number(m.payload)))];
    await upstream.until(() => [0, 1, 2].every((d) => firsts(d).length >= n), 60_000);
    for (const d of [0, 1, 2]) expect(firsts(d)).toEqual([...Array(n).keys()]);
    await eventually(async () => expect((await statusOf("mixed")).queued).toBe(0));
    expect((await api("DELETE", "/api/v1/uplinks/mixed")).status).toBe(204);
    for (const { client } of devices) await client.endAsync();
    await proxy.close();
  }, 90_000);

  it("forwards what comes in over every protocol (MQTT, HTTP, OPC UA writes); $ topics only when a filter names them", async () => {
    expect(
      (
        await api("POST", "/api/v1/uplinks", {
          name: "every",
          urls: [`mqtt://127.0.0.1:${up.port}`],
          forward: ["multi/#", "$app/#"],
          remotePrefix: "site-b/",
        })
      ).status,
    ).toBe(201);
    await connected("every");
    const { client } = await device(app, "plc-multi", { publishAcl: ["multi/#", "$app/#", "$other/#"] });
    await client.publishAsync("multi/mqtt", "m", { qos: 1 });
    await client.publishAsync("$app/named", "d", { qos: 1 });
    await client.publishAsync("$other/unnamed", "x", { qos: 1 });
    const http = await app.core.credentials.create({ type: "http", username: "http-multi", publishAcl: ["multi/#"] });
    const auth = `Basic ${btoa(`http-multi:${http.password}`)}`;
    expect(
      (await fetch(`${url}/api/v1/data/multi/http`, { method: "POST", headers: { authorization: auth }, body: "h" }))
        .status,
    ).toBe(202);
    const batch = await fetch(`${url}/api/v1/data`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/json" },
      body: JSON.stringify([
        { topic: "multi/batch", payload: "b1" },
        { topic: "multi/batch", payload: "b2" },
      ]),
    });
    expect(batch.status).toBe(202);
    const scada = await app.core.credentials.create({
      type: "opcua",
      username: "scada-multi",
      publishAcl: ["multi/#"],
      subscribeAcl: ["multi/#"],
    });
    await client.publishAsync("multi/opcua", "1", { qos: 1, retain: true });
    const c = await connectOpcua(app.address("opcua")!.port, { userName: "scada-multi", password: scada.password });
    await eventually(async () => {
      const res = await c.session.write({
        nodeId: "ns=1;s=Topics/multi/opcua",
        attributeId: 13,
        value: { value: { dataType: DataType.Double, value: 42 } },
      });
      expect(res.name).toBe("Good");
    });
    await c.close();
    await upstream.until((m) => m.some((x) => x.topic === "site-b/multi/opcua" && x.payload === "42"));
    await upstream.until((m) => m.filter((x) => x.topic === "site-b/multi/batch").length === 2);
    const got = arrived("site-b/").map((m) => `${m.topic}=${m.payload}`);
    expect(got).toContain("site-b/multi/mqtt=m");
    expect(got).toContain("site-b/$app/named=d");
    expect(got).toContain("site-b/multi/http=h");
    expect(got.filter((g) => g.startsWith("site-b/multi/batch"))).toEqual([
      "site-b/multi/batch=b1",
      "site-b/multi/batch=b2",
    ]);
    expect(got.some((g) => g.includes("$other"))).toBe(false);
    await client.endAsync();
  }, 60_000);

  it("MQTT 5: the retain flag and the PUBLISH properties travel upstream", async () => {
    await api("POST", "/api/v1/uplinks", {
      name: "v5",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["five/#"],
      remotePrefix: "site-c/",
      protocol: 5,
    });
    await connected("v5");
    const sub = await mqttClient(up.port, { clientId: "sub-v5", protocolVersion: 5 });
    const got = new Promise<{ retain: boolean; properties: Record<string, unknown> | undefined }>((resolve) =>
      sub.on("message", (_t, _p, packet) => resolve({ retain: packet.retain, properties: packet.properties })),
    );
    await sub.subscribeAsync("site-c/five/#", { qos: 1, rap: true });
    const { client } = await device(app, "plc-five", { publishAcl: ["five/#"] }, 5);
    await client.publishAsync("five/x", "{}", {
      qos: 1,
      retain: true,
      properties: {
        contentType: "application/json",
        userProperties: { line: "1" },
        correlationData: Buffer.from("c0ffee"),
        responseTopic: "five/reply",
      },
    });
    const m = await got;
    expect(m.retain).toBe(true);
    expect(m.properties?.contentType).toBe("application/json");
    expect(m.properties?.userProperties).toEqual({ line: "1" });
    expect(Buffer.from(m.properties?.correlationData as Buffer).toString()).toBe("c0ffee");
    expect(m.properties?.responseTopic).toBe("five/reply");
    await sub.endAsync();
    await client.endAsync();
  }, 30_000);

  it("a matched QoS 1 message is in the outbox file before its device's PUBACK, and before HTTP's 202", async () => {
    const nobody = await freePort(); // upstream unreachable: nothing leaves the outbox
    await api("POST", "/api/v1/uplinks", { name: "down", urls: [`mqtt://127.0.0.1:${nobody}`], forward: ["held/#"] });
    const file = new Database(join(dir, "uplink-outbox.db"), { readonly: true });
    const count = file.query("SELECT COUNT(*) AS n FROM messages WHERE topic = ?");
    const { client } = await device(app, "plc-held", { publishAcl: ["held/#"] });
    for (let i = 1; i <= 20; i++) {
      await client.publishAsync("held/mqtt", String(i), { qos: 1 });
      expect((count.get("held/mqtt") as { n: number }).n).toBe(i);
    }
    const http = await app.core.credentials.create({ type: "http", username: "http-held", publishAcl: ["held/#"] });
    const res = await fetch(`${url}/api/v1/data/held/http`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`http-held:${http.password}`)}` },
      body: "x",
    });
    expect(res.status).toBe(202);
    expect((count.get("held/http") as { n: number }).n).toBe(1);
    file.close();
    expect(statSync(join(dir, "uplink-outbox.db")).mode & 0o777).toBe(0o600);
    expect((await statusOf("down")).queued).toBe(21);
    // /readyz lists it, and an upstream that is down leaves the appliance ready
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    const body = await ready.json();
    expect(body.connectors.uplink.uplinks.find((u: { name: string }) => u.name === "down")).toMatchObject({
      connected: false,
      queued: 21,
    });
    await client.endAsync();
    expect((await api("DELETE", "/api/v1/uplinks/down")).status).toBe(204);
    await eventually(() => {
      const f = new Database(join(dir, "uplink-outbox.db"), { readonly: true });
      try {
        expect((f.query("SELECT COUNT(*) AS n FROM messages WHERE topic LIKE 'held/%'").get() as { n: number }).n).toBe(
          0,
        );
      } finally {
        f.close();
      }
    });
  }, 30_000);

  it("brings subscribed remote topics down under the local prefix, to local subscribers under their own read permissions", async () => {
    await api("POST", "/api/v1/uplinks", {
      name: "down-link",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["unused/#"],
      remotePrefix: "hq/",
      subscribe: ["hq/#"],
      localPrefix: "from-hq/",
    });
    await connected("down-link");
    const reader = await device(app, "reader-hq", { subscribeAcl: ["from-hq/#"] });
    // may read everything but the setpoint: withheld at delivery, as for any local publisher's message
    const outsider = await device(app, "outsider-hq", { subscribeAcl: ["#"] });
    app.core.credentials.update(outsider.integration.id, { denySubscribeAcl: ["from-hq/cmd/setpoint"] });
    const outsiderClient = await connectMqtt(app.address("mqtt")!.port, {
      username: "outsider-hq",
      password: outsider.password,
      clientId: "outsider-hq-2",
    });
    await reader.client.subscribeAsync("from-hq/#", { qos: 1 });
    await outsiderClient.subscribeAsync("#", { qos: 1 });
    const readerGot: string[] = [];
    const outsiderGot: string[] = [];
    reader.client.on("message", (t, p) => readerGot.push(`${t}=${p}`));
    outsiderClient.on("message", (t, p) => outsiderGot.push(`${t}=${p}`));
    const cloud = await mqttClient(up.port, { clientId: "hq-cloud" });
    // a remote topic that would land on a VRPC announcement: no client may publish those
    await cloud.publishAsync("hq/x/__agentInfo__", '{"status":"online"}', { qos: 1 });
    await cloud.publishAsync("hq/cmd/setpoint", "42", { qos: 1 });
    await cloud.publishAsync("hq/cmd/secret/key", "k", { qos: 1 });
    await eventually(() => expect(readerGot).toContain("from-hq/cmd/secret/key=k"), 10_000);
    expect(readerGot).toContain("from-hq/cmd/setpoint=42");
    expect(readerGot.some((g) => g.includes("__agentInfo__"))).toBe(false);
    await eventually(() =>
      expect(outsiderGot.filter((g) => g.startsWith("from-hq/"))).toEqual(["from-hq/cmd/secret/key=k"]),
    );
    expect(lines.some((l) => l.includes("uplink message from upstream refused") && l.includes("__agentInfo__"))).toBe(
      true,
    );
    await eventually(async () => expect((await statusOf("down-link")).received).toBe(2));
    await cloud.endAsync();
    await reader.client.endAsync();
    await outsiderClient.endAsync();
  }, 30_000);

  it("takes from a lying upstream only what it subscribed to, as topics a client could publish", async () => {
    // found from outside with a hostile broker: topics never subscribed to, wildcards and an empty name came
    // down, and a retained `.../#` stayed that no local client could clear. A fake upstream sends them here.
    const sockets: Socket[] = [];
    const fake = createServer((socket) => {
      sockets.push(socket);
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const send = (p: object) => socket.write(mqttPacket.generate(p as mqttPacket.Packet));
      parser.on("packet", (p) => {
        if (p.cmd === "connect") send({ cmd: "connack", returnCode: 0, sessionPresent: false });
        if (p.cmd === "pingreq") send({ cmd: "pingresp" });
        if (p.cmd === "subscribe") {
          send({ cmd: "suback", messageId: p.messageId, granted: p.subscriptions.map(() => 0) });
          for (const topic of ["secret/boom", "hq/cmd/#", "hq/cmd/+/z", "hq/", "hq/ok"])
            send({ cmd: "publish", topic, payload: Buffer.from("x"), qos: 0, retain: true, dup: false });
        }
      });
      socket.on("data", (d: Buffer) => parser.parse(d));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const fakePort = (fake.address() as AddressInfo).port;
    const reader = await device(app, "reader-liar", { subscribeAcl: ["#"] });
    const got: string[] = [];
    reader.client.on("message", (t) => got.push(t));
    await reader.client.subscribeAsync("from-liar/#", { qos: 0 });
    await api("POST", "/api/v1/uplinks", {
      name: "liar",
      urls: [`mqtt://127.0.0.1:${fakePort}`],
      forward: ["unused-liar/#"],
      remotePrefix: "hq/",
      subscribe: ["hq/cmd/+", "hq/ok"],
      localPrefix: "from-liar/",
    });
    await eventually(() => expect(got).toContain("from-liar/ok"), 10_000);
    expect(got).toEqual(["from-liar/ok"]);
    // nothing else was kept as retained either: a new subscriber gets only the one
    const late = await device(app, "late-liar", { subscribeAcl: ["#"] });
    const retained: string[] = [];
    late.client.on("message", (t) => retained.push(t));
    await late.client.subscribeAsync("from-liar/#", { qos: 0 });
    await eventually(() => expect(retained).toEqual(["from-liar/ok"]));
    await api("DELETE", "/api/v1/uplinks/liar");
    for (const s of sockets) s.destroy();
    fake.close();
    await reader.client.endAsync();
    await late.client.endAsync();
  }, 30_000);

  it("keeps within an MQTT 5 upstream's Receive Maximum, however large its own window, the birth and inventory included", async () => {
    // [MQTT-3.3.4-7]: a client never has more unacknowledged QoS 1 PUBLISHes than the server's Receive
    // Maximum (HiveMQ says 10; a server may disconnect past it, 0x93). A strict upstream acknowledges
    // slowly and does disconnect (found from outside: with 1, the birth and the first message went
    // together, every connection was closed and nothing was ever delivered).
    for (const [receiveMaximum, inventory] of [
      [5, false],
      [1, true],
    ] as const) {
      const sockets: Socket[] = [];
      let outstanding = 0;
      let most = 0;
      let closedForIt = 0;
      const arrivedHere: string[] = [];
      const fake = createServer((socket) => {
        sockets.push(socket);
        outstanding = 0;
        const parser = mqttPacket.parser({ protocolVersion: 5 });
        const send = (p: object) =>
          socket.writable && socket.write(mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: 5 }));
        parser.on("packet", (p) => {
          if (p.cmd === "connect")
            send({ cmd: "connack", reasonCode: 0, sessionPresent: true, properties: { receiveMaximum } });
          if (p.cmd === "pingreq") send({ cmd: "pingresp" });
          if (p.cmd === "publish" && p.qos === 1) {
            outstanding++;
            most = Math.max(most, outstanding);
            if (outstanding > receiveMaximum) {
              closedForIt++;
              send({ cmd: "disconnect", reasonCode: 0x93 });
              socket.end();
              return;
            }
            arrivedHere.push(p.topic);
            setTimeout(() => {
              outstanding--;
              send({ cmd: "puback", messageId: p.messageId, reasonCode: 0 });
            }, 20);
          }
        });
        socket.on("data", (d: Buffer) => parser.parse(d));
        socket.on("error", () => {});
      });
      await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
      const fakePort = (fake.address() as AddressInfo).port;
      const name = `strict-${receiveMaximum}`;
      expect(
        (
          await api("POST", "/api/v1/uplinks", {
            name,
            urls: [`mqtt://127.0.0.1:${fakePort}`],
            forward: [`${name}/#`],
            protocol: 5,
            inflight: 100,
            inventory,
          })
        ).status,
      ).toBe(201);
      await connected(name);
      const plc = await device(app, `plc-${name}`, { publishAcl: [`${name}/#`] });
      const n = receiveMaximum === 1 ? 15 : 40;
      await Promise.all(Array.from({ length: n }, (_, i) => plc.client.publishAsync(`${name}/${i}`, "x", { qos: 1 })));
      const data = () => arrivedHere.filter((t) => t.startsWith(`${name}/`));
      await eventually(() => expect(new Set(data()).size).toBe(n), 20_000);
      expect([...new Set(data())]).toEqual(Array.from({ length: n }, (_, i) => `${name}/${i}`));
      expect([receiveMaximum, most, closedForIt]).toEqual([receiveMaximum, Math.min(most, receiveMaximum), 0]);
      if (inventory) await eventually(() => expect(arrivedHere).toContain("$gatehouse/integrations"), 10_000);
      expect(most).toBeLessThanOrEqual(receiveMaximum);
      await api("DELETE", `/api/v1/uplinks/${name}`);
      for (const s of sockets) s.destroy();
      fake.close();
      await plc.client.endAsync();
    }
  }, 60_000);

  it("refuses an upstream's CONNACK it cannot take (a property twice, Receive Maximum 0, QoS 0 only), saying why; the appliance goes on", async () => {
    // found from outside: a Receive Maximum or Server Keep Alive given twice reached mqtt.js as an array and
    // threw out of its handler: the whole appliance stopped, and again at every restart
    const connacks: [string, number[], RegExp][] = [
      ["dup-rm", [0x21, 0x00, 0x05, 0x21, 0x00, 0xff], /receiveMaximum more than once/],
      ["dup-keepalive", [0x13, 0x00, 0x05, 0x13, 0x00, 0x00], /serverKeepAlive more than once/],
      ["rm-zero", [0x21, 0x00, 0x00], /Receive Maximum is 0/],
      ["qos-zero", [0x24, 0x00], /QoS 0 only/],
    ];
    const sockets: Socket[] = [];
    let published = 0;
    const fakes = await Promise.all(
      connacks.map(async ([, props]) => {
        const fake = createServer((socket) => {
          sockets.push(socket);
          const parser = mqttPacket.parser({ protocolVersion: 5 });
          parser.on("packet", (p) => {
            // CONNACK by hand: mqtt-packet would not write a property twice
            if (p.cmd === "connect") socket.write(Buffer.from([0x20, 3 + props.length, 0, 0, props.length, ...props]));
            if (p.cmd === "publish") published++;
          });
          socket.on("data", (d: Buffer) => parser.parse(d));
          socket.on("error", () => {});
        });
        await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
        return fake;
      }),
    );
    for (const [i, [name]] of connacks.entries())
      expect(
        (
          await api("POST", "/api/v1/uplinks", {
            name,
            urls: [`mqtt://127.0.0.1:${(fakes[i]!.address() as AddressInfo).port}`],
            forward: ["liar-connack/#"],
            protocol: 5,
          })
        ).status,
      ).toBe(201);
    const plc = await device(app, "plc-liar-connack", { publishAcl: ["liar-connack/#"] });
    await plc.client.publishAsync("liar-connack/x", "1", { qos: 1 });
    for (const [name, , why] of connacks)
      await eventually(async () => expect((await statusOf(name))?.lastError ?? "").toMatch(why), 10_000);
    for (const [name] of connacks) expect((await statusOf(name)).connected).toBe(false);
    expect(published).toBe(0);
    // the appliance is still there: the broker and the API answer
    await plc.client.publishAsync("liar-connack/y", "2", { qos: 1 });
    expect((await api("GET", "/api/v1/uplinks")).status).toBe(200);
    for (const [name] of connacks) await api("DELETE", `/api/v1/uplinks/${name}`);
    for (const s of sockets) s.destroy();
    for (const f of fakes) f.close();
    await plc.client.endAsync();
  }, 30_000);

  it("never reuses a packet identifier still unacknowledged, and says so when a broker answers QoS 1 with a QoS 2 step", async () => {
    // found from outside: with a window of 65 535 the birth and the data took one identifier twice (one
    // message then stayed queued for ever); a PUBREC for a QoS 1 PUBLISH held its slot silently
    const seen = new Map<number, string>();
    let reused = 0;
    let pubrecs = 0;
    const sockets: Socket[] = [];
    const got: string[] = [];
    const fake = createServer((socket) => {
      sockets.push(socket);
      seen.clear();
      const parser = mqttPacket.parser({ protocolVersion: 5 });
      const send = (p: object) =>
        socket.writable && socket.write(mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: 5 }));
      parser.on("packet", (p) => {
        if (p.cmd === "connect") send({ cmd: "connack", reasonCode: 0, sessionPresent: true });
        if (p.cmd === "publish" && p.qos === 1) {
          if (seen.has(p.messageId!)) reused++;
          seen.set(p.messageId!, p.topic);
          got.push(p.topic);
          // the first data message is answered with a PUBREC once; then everything but `ids/0` is acknowledged
          if (p.topic === "ids/1" && pubrecs === 0) {
            pubrecs++;
            return send({ cmd: "pubrec", messageId: p.messageId, reasonCode: 0 });
          }
          if (p.topic === "ids/0") return; // never acknowledged: its identifier stays taken
          seen.delete(p.messageId!);
          send({ cmd: "puback", messageId: p.messageId, reasonCode: 0 });
        }
      });
      socket.on("data", (d: Buffer) => parser.parse(d));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const port = (fake.address() as AddressInfo).port;
    const created = await api("POST", "/api/v1/uplinks", {
      name: "ids",
      urls: [`mqtt://127.0.0.1:${port}`],
      forward: ["ids/#"],
      protocol: 5,
    });
    expect(created.status).toBe(201);
    await connected("ids");
    const plc = await device(app, "plc-ids", { publishAcl: ["ids/#"] });
    await plc.client.publishAsync("ids/0", "x", { qos: 1 });
    await plc.client.publishAsync("ids/1", "x", { qos: 1 });
    await eventually(async () => expect((await statusOf("ids")).lastError ?? "").toMatch(/PUBREC/), 10_000);
    // past the whole identifier space while ids/0 stays unacknowledged
    const n = 66_000;
    for (let i = 2; i < n; i += 500)
      await Promise.all(
        Array.from({ length: Math.min(500, n - i) }, (_, k) =>
          plc.client.publishAsync(`ids/${i + k}`, "x", { qos: 1 }),
        ),
      );
    await eventually(() => expect(new Set(got.filter((t) => t.startsWith("ids/"))).size).toBe(n), 60_000);
    expect(reused).toBe(0);
    await eventually(async () => expect((await statusOf("ids")).queued).toBe(1), 10_000); // ids/0 alone
    await api("DELETE", "/api/v1/uplinks/ids");
    for (const s of sockets) s.destroy();
    fake.close();
    await plc.client.endAsync();
  }, 120_000);

  it("takes PUBACKs however an upstream cuts, mixes and repeats them, MQTT 3.1.1 and 5, reason codes included", async () => {
    // the uplink reads its PUBACKs off the socket before mqtt.js does (wire.ts): an upstream that writes them
    // a byte at a time, cut anywhere, mixed with PINGRESPs, other packets and acknowledgements of what was
    // never sent, twice over, must still settle each message once, and what it refuses (MQTT 5) is counted
    for (const protocol of [4, 5] as const) {
      const name = `cuts-${protocol}`;
      const sockets: Socket[] = [];
      const got: string[] = [];
      let pending: Buffer[] = [];
      const connects: (number | undefined)[] = [];
      let seed = protocol;
      const random = () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
        return seed / 2_147_483_648;
      };
      const generate = (p: object) => mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: protocol });
      const fake = createServer((socket) => {
        sockets.push(socket);
        const parser = mqttPacket.parser({ protocolVersion: protocol });
        parser.on("packet", (p) => {
          if (p.cmd === "connect") {
            connects.push(p.properties?.maximumPacketSize);
            socket.write(generate({ cmd: "connack", returnCode: 0, reasonCode: 0 }));
          }
          if (p.cmd === "pingreq") pending.push(generate({ cmd: "pingresp" }));
          if (p.cmd !== "publish" || p.qos !== 1) return;
          got.push(p.topic);
          const reasonCode = p.topic.endsWith("/refuse") ? 0x87 : p.topic.endsWith("/nobody") ? 0x10 : 0;
          pending.push(generate({ cmd: "puback", messageId: p.messageId, reasonCode }));
        });
        socket.on("data", (d: Buffer) => parser.parse(d));
        socket.on("error", () => {});
      });
      // every few milliseconds what is due goes out: mostly as it is; else cut at random places (now and
      // then a byte at a time), with an acknowledgement repeated, one for an identifier not in flight, or a
      // PINGRESP among them
      const pacer = setInterval(() => {
        const socket = sockets.at(-1);
        if (!socket?.writable || pending.length === 0) return;
        const packets = pending;
        pending = [];
        const mode = random();
        if (mode < 0.1) packets.push(packets[0]!);
        else if (mode < 0.15) packets.splice(1, 0, generate({ cmd: "puback", messageId: 65_000, reasonCode: 0 }));
        else if (mode < 0.2) packets.splice(packets.length >> 1, 0, generate({ cmd: "pingresp" }));
        const bytes = Buffer.concat(packets);
        if (mode < 0.6) return socket.write(bytes);
        for (let at = 0; at < bytes.length; ) {
          const n = random() < 0.2 ? 1 : 1 + Math.floor(random() * 30);
          socket.write(bytes.subarray(at, at + n));
          at += n;
        }
      }, 3);
      await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
      const port = (fake.address() as AddressInfo).port;
      expect(
        (
          await api("POST", "/api/v1/uplinks", {
            name,
            urls: [`mqtt://127.0.0.1:${port}`],
            forward: [`${name}/#`],
            protocol,
          })
        ).status,
      ).toBe(201);
      await connected(name);
      const plc = await device(app, `plc-${name}`, { publishAcl: [`${name}/#`] });
      const n = 3000;
      const topics = Array.from({ length: n }, (_, i) =>
        protocol === 5 && i === 1000
          ? `${name}/refuse`
          : protocol === 5 && i === 2000
            ? `${name}/nobody`
            : `${name}/${i}`,
      );
      for (let i = 0; i < n; i += 20)
        await Promise.all(topics.slice(i, i + 20).map((t) => plc.client.publishAsync(t, "x", { qos: 1 })));
      await eventually(async () => expect((await statusOf(name)).queued).toBe(0), 30_000);
      const status = await statusOf(name);
      // each message once (no reconnect, so nothing was sent twice), in order
      expect(got.filter((t) => t.startsWith(`${name}/`))).toEqual(topics);
      expect([status.connected, status.forwarded, status.dropped, status.resent]).toEqual([
        true,
        protocol === 5 ? n - 1 : n,
        protocol === 5 ? 1 : 0,
        0,
      ]);
      if (protocol === 5) {
        expect(status.lastError).toMatch(/refused cuts-5\/refuse: reason 0x87 Not authorized; dropped/);
        // the news of a refusal outlives a reconnect (found from outside: the next CONNACK wiped it)
        sockets.at(-1)!.destroy();
        await eventually(() => expect(sockets.length).toBe(2), 10_000);
        await connected(name);
        expect((await statusOf(name)).lastError).toMatch(/refused cuts-5\/refuse/);
      }
      // MQTT 5: the broker is told the largest packet the uplink takes (--uplink-max-packet)
      expect(connects[0]).toBe(protocol === 5 ? 1_048_576 : undefined);
      clearInterval(pacer);
      await api("DELETE", `/api/v1/uplinks/${name}`);
      for (const s of sockets) s.destroy();
      fake.close();
      await plc.client.endAsync();
    }
  }, 90_000);

  it("closes a connection on a packet it cannot take, says why, and sends again what was in flight", async () => {
    // found from outside: mqtt.js reports a malformed packet and reads on, so a broker whose every PUBACK was
    // malformed kept the uplink connected and forwarding nothing; a length of 256 MiB was buffered as it
    // came; garbage read with the CONNACK was said and then wiped by the connect. Each connection of this
    // broker misbehaves once, in turn; the fifth is sound.
    const sockets: Socket[] = [];
    const got: string[] = [];
    let dups = 0;
    const misbehave = [
      (id: number) => Buffer.from([0x42, 2, id >> 8, id & 255]), // reserved flag bits set
      (id: number) => Buffer.from([0x40, 3, id >> 8, id & 255, 0]), // MQTT 3.1.1: a PUBACK is 2 bytes long
    ];
    // what each misbehaving connection must have the uplink say, in turn (the fifth connection is sound)
    const says = [
      /flag bits/,
      /PUBACK of 3 bytes/,
      /Not supported/,
      /268435460 bytes, more than --uplink-max-packet/, // counted whole: type, 4 bytes of length, body
    ];
    const seen = new Set<string>();
    const said = (why: RegExp) => [...seen].some((e) => why.test(e));
    const connack = mqttPacket.generate({ cmd: "connack", returnCode: 0, sessionPresent: true } as mqttPacket.Packet);
    const fake = createServer((socket) => {
      const phase = sockets.push(socket) - 1;
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on("packet", async (p) => {
        if (p.cmd === "connect") {
          // the next connection is answered once the last one's reason has been seen in the status: a reason
          // is the last error until the next one replaces it, and a quick reconnect could replace it between
          // two of the test's looks (found in CI)
          for (let t = 0; phase > 0 && !said(says[phase - 1]!) && t < 250; t++) await Bun.sleep(20);
          if (phase === 2) return socket.write(Buffer.concat([connack, Buffer.from([0, 0])])); // packet type 0
          socket.write(connack);
          // a PUBLISH that says it is 256 MiB long, and the start of it
          if (phase === 3)
            socket.write(Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), Buffer.alloc(65_536)]));
        }
        if (p.cmd !== "publish" || p.qos !== 1) return;
        got.push(p.topic);
        if (p.dup) dups++;
        const id = p.messageId!;
        socket.write(
          misbehave[phase]?.(id) ?? mqttPacket.generate({ cmd: "puback", messageId: id } as mqttPacket.Packet),
        );
      });
      socket.on("data", (d: Buffer) => parser.parse(d));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const port = (fake.address() as AddressInfo).port;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const e = (await statusOf("malformed"))?.lastError;
        if (e) seen.add(e);
        await Bun.sleep(20);
      }
    })();
    const created = await api("POST", "/api/v1/uplinks", {
      name: "malformed",
      urls: [`mqtt://127.0.0.1:${port}`],
      forward: ["malformed/#"],
    });
    expect(created.status).toBe(201);
    const plc = await device(app, "plc-malformed", { publishAcl: ["malformed/#"] });
    const n = 100;
    const topics = Array.from({ length: n }, (_, i) => `malformed/${i}`);
    await Promise.all(topics.map((t) => plc.client.publishAsync(t, "x", { qos: 1 })));
    await eventually(async () => expect((await statusOf("malformed")).queued).toBe(0), 30_000);
    watching = false;
    await watch;
    const status = await statusOf("malformed");
    expect(sockets.length).toBe(5);
    // every message arrived, first arrivals in order; what was in flight on a closed connection went again
    expect([...new Set(got.filter((t) => t.startsWith("malformed/")))]).toEqual(topics);
    expect(dups).toBeGreaterThan(0);
    expect([status.connected, status.forwarded, status.dropped]).toEqual([true, n, 0]);
    expect(status.resent).toBeGreaterThan(0);
    for (const why of says) expect([...seen].join("\n")).toMatch(why);
    // the broker's breach is still the news once a sound connection is up (found from outside: it was wiped)
    expect(status.lastError).toMatch(/more than --uplink-max-packet/);
    await api("DELETE", "/api/v1/uplinks/malformed");
    for (const s of sockets) s.destroy();
    fake.close();
    await plc.client.endAsync();
  }, 60_000);

  it("never sends back up what came down, when forward and subscribe filters overlap", async () => {
    await api("POST", "/api/v1/uplinks", {
      name: "loop",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["loop/#"],
      remotePrefix: "loop-up/",
      subscribe: ["loop-up/#"],
      localPrefix: "loop/",
    });
    await connected("loop");
    const local = await device(app, "plc-loop", { publishAcl: ["loop/#"], subscribeAcl: ["loop/#"] });
    const seen: string[] = [];
    local.client.on("message", (t) => seen.push(t));
    await local.client.subscribeAsync("loop/#", { qos: 1 });
    await local.client.publishAsync("loop/x", "1", { qos: 1 });
    // up as loop-up/loop/x, down again as loop/loop/x, and there it stops
    await eventually(() => expect(seen).toContain("loop/loop/x"), 10_000);
    await Bun.sleep(1000); // a loop would have gone round many times by now
    expect(arrived("loop-up/").map((m) => m.topic)).toEqual(["loop-up/$gatehouse/status", "loop-up/loop/x"]);
    expect(seen.filter((t) => t === "loop/loop/x")).toHaveLength(1);
    await local.client.endAsync();
  }, 30_000);

  it("publishes a retained, debounced summary of the integrations (never a password or hash) with --inventory", async () => {
    const sub = await mqttClient(up.port, { clientId: "fleet" });
    const got: string[] = [];
    sub.on("message", (_t, p) => got.push(p.toString()));
    await sub.subscribeAsync("fleet-1/$gatehouse/integrations", { qos: 1 });
    await api("POST", "/api/v1/uplinks", {
      name: "fleet",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["fleet-none/#"],
      remotePrefix: "fleet-1/",
      inventory: true,
    });
    await eventually(() => expect(got.length).toBeGreaterThan(0), 10_000);
    const first = JSON.parse(got.at(-1)!);
    expect(first.integrations.some((i: { username: string }) => i.username === "plc-order")).toBe(true);
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "fleet-new" });
    await app.core.credentials.create({ type: "mqtt", username: "fleet-new-2" });
    await eventually(
      () =>
        expect(
          JSON.parse(got.at(-1)!).integrations.some((i: { username: string }) => i.username === "fleet-new-2"),
        ).toBe(true),
      10_000,
    );
    const text = got.join("\n");
    expect(text).not.toContain(password);
    expect(text).not.toMatch(/hash|argon2|password/i);
    const entry = JSON.parse(got.at(-1)!).integrations.find((i: { username: string }) => i.username === "fleet-new");
    expect(Object.keys(entry).sort()).toEqual(["active", "lastLogin", "online", "status", "type", "username"]);
    await sub.endAsync();
  }, 30_000);

  it("answers a stranger on every uplink route with 401 (API) or the sign-in page, and changes nothing", async () => {
    const routes = app.routes().filter((r) => r.path.startsWith("/api/v1/uplinks") || r.path.startsWith("/uplinks"));
    expect(routes.length).toBeGreaterThan(8);
    for (const r of routes) {
      const path = r.path.replace(":name", "cloud");
      const res = await fetch(`${url}${path}`, {
        method: r.method,
        redirect: "manual",
        headers: { "content-type": "application/json", origin: url },
        body: ["GET", "HEAD"].includes(r.method) ? undefined : JSON.stringify({ name: "stranger", inflight: 65_536 }),
      });
      const fine = path.startsWith("/api/") ? res.status === 401 : [302, 303, 401].includes(res.status);
      expect([r.method, path, fine]).toEqual([r.method, path, true]);
    }
    expect((await api("GET", "/api/v1/uplinks/stranger")).status).toBe(404);
  });

  it("takes the same in-flight windows on every door: 1 to 65 535 as a JSON number, anything else a 400 naming the field", async () => {
    // found from outside: the API refused every window above 1 000 (the CLI and the page took 65 535), read
    // "0x10" as 16, and the page's form offered 100 against a default of 1 000
    const base = { urls: ["mqtt://127.0.0.1:1"], forward: ["window/#"], enabled: false };
    const big = await api("POST", "/api/v1/uplinks", { ...base, name: "window", inflight: 65_535 });
    expect(big.status).toBe(201);
    expect(big.json.uplink.inflight).toBe(65_535);
    expect((await api("PATCH", "/api/v1/uplinks/window", { inflight: 1001 })).json.inflight).toBe(1001);
    for (const inflight of [0, -1, 1.5, 65_536, 1e9, "0x10", " 7", "1001", null, true]) {
      const res = await api("PATCH", "/api/v1/uplinks/window", { inflight });
      expect([inflight, res.status, Object.keys(res.json.fields ?? {})]).toEqual([inflight, 400, ["inflight"]]);
    }
    expect((await api("GET", "/api/v1/uplinks/window")).json.inflight).toBe(1001);
    const cookie = `gh_session=${(await app.core.admins.signIn("admin", "correct-horse-battery", "t")).token}`;
    const form = await (await fetch(`${url}/uplinks/new`, { headers: { cookie } })).text();
    expect(form).toMatch(/<input name="inflight" type="number" min="1" max="65535" value="10000"/);
    expect((await api("DELETE", "/api/v1/uplinks/window")).status).toBe(204);
  });

  it("keeps the upstream password out of logs, API answers, the page and a plain export (only export --full has it)", async () => {
    const secret = "Upstream-Needle-7f3k9q";
    const guarded = await startMosquitto({ users: [{ username: "gh-site", password: secret }] });
    const created = await api("POST", "/api/v1/uplinks", {
      name: "guarded",
      urls: [`mqtt://127.0.0.1:${guarded.port}`],
      forward: ["guarded/#"],
      username: "gh-site",
      password: secret,
    });
    expect(created.status).toBe(201);
    expect(created.text).not.toContain(secret);
    expect(created.json.uplink.passwordSet).toBe(true);
    await connected("guarded"); // Gatehouse presents it: it is stored usable
    const answers = [
      (await api("GET", "/api/v1/uplinks")).text,
      (await api("GET", "/api/v1/uplinks/guarded")).text,
      (await api("PATCH", "/api/v1/uplinks/guarded", { inflight: 50 })).text,
    ];
    const cookie = `gh_session=${(await app.core.admins.signIn("admin", "correct-horse-battery", "t")).token}`;
    for (const page of ["/uplinks", "/uplinks/list", "/uplinks/guarded/edit"])
      answers.push(await (await fetch(`${url}${page}`, { headers: { cookie } })).text());
    for (const a of answers) expect(a).not.toContain(secret);
    expect(answers[5]).toContain('name="password"');
    await eventually(async () => expect((await statusOf("guarded")).connected).toBe(true), 15_000);
    expect(lines.join("\n")).not.toContain(secret);
    // at rest: sealed in the database, under a key file of the data dir (0600)
    expect(readFileSync(join(dir, "gatehouse.db")).includes(secret)).toBe(false);
    expect(statSync(join(dir, "uplink-secrets.key")).mode & 0o777).toBe(0o600);
    const exported = (full: boolean) =>
      Bun.spawnSync(["bun", join(root, "src/main.ts"), "export", ...(full ? ["--full"] : []), "--data-dir", dir], {
        env: { ...process.env, GATEHOUSE_DATA_DIR: "" },
      }).stdout.toString();
    const plain = exported(false);
    expect(plain).toContain('"name": "guarded"');
    expect(plain).not.toContain(secret);
    expect(exported(true)).toContain(secret);
    await api("DELETE", "/api/v1/uplinks/guarded");
    await guarded.stop();
  }, 60_000);

  it("sends a stored password only where it was given for: another host, port or scheme needs it again", async () => {
    expect(
      (
        await api("POST", "/api/v1/uplinks", {
          name: "moving",
          enabled: false,
          urls: ["mqtt://127.0.0.1:1"],
          username: "u",
          password: "stored-secret",
          forward: ["moving/#"],
        })
      ).status,
    ).toBe(201);
    const elsewhere = await api("PATCH", "/api/v1/uplinks/moving", { urls: ["mqtt://attacker.example:1883"] });
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.json.fields.password).toContain("attacker.example");
    // the same host on another port or scheme (found from outside: mqtts:// moved to plain mqtt:// on the
    // same host sent the password in clear text), or a WebSocket path elsewhere: given again, or refused
    for (const moved of ["mqtt://127.0.0.1:2", "mqtts://127.0.0.1:1", "ws://127.0.0.1:1/mqtt", "mqtt://localhost:1"]) {
      const res = await api("PATCH", "/api/v1/uplinks/moving", { urls: [moved] });
      expect([moved, res.status, res.json.fields?.password]).toEqual([
        moved,
        400,
        expect.stringContaining(`give it again: ${moved} is not where`),
      ]);
    }
    // the same endpoint however written, and more nodes beside it: fine
    expect((await api("PATCH", "/api/v1/uplinks/moving", { urls: ["MQTT://127.0.0.1:1/"] })).status).toBe(200);
    expect(
      (await api("PATCH", "/api/v1/uplinks/moving", { urls: ["mqtt://127.0.0.1:1", "mqtt://127.0.0.1:1"] })).status,
    ).toBe(200);
    // another host with the password given again: fine
    const given = await api("PATCH", "/api/v1/uplinks/moving", {
      urls: ["mqtt://attacker.example:1883"],
      password: "a-new-one",
    });
    expect(given.status).toBe(200);
    expect(given.text).not.toContain("a-new-one");
    expect((await api("DELETE", "/api/v1/uplinks/moving")).status).toBeLessThan(300);
  });

  it("is listed in /metrics and the activity log; strict API bodies; 404 for an unknown uplink", async () => {
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(metrics).toMatch(/gatehouse_uplink_connected\{uplink="mosq"\} 1/);
    expect(metrics).toMatch(/gatehouse_uplink_forwarded_total\{uplink="mosq"\} 500/);
    expect(metrics).toContain('gatehouse_uplink_queued_messages{uplink="mosq"} 0');
    const actions = app.core.activity.list({ action: "uplink." }).map((r) => `${r.action} ${r.subject}`);
    expect(actions).toContain("uplink.created mosq");
    expect(actions).toContain("uplink.connected mosq");
    expect(actions).toContain("uplink.removed down");
    const unknown = await api("POST", "/api/v1/uplinks", {
      name: "x",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["#"],
      passwd: "typo",
    });
    expect(unknown.status).toBe(400);
    expect(unknown.json.message).toContain("passwd");
    expect((await api("PATCH", "/api/v1/uplinks/mosq", { qos: 2 })).status).toBe(400);
    expect((await api("GET", "/api/v1/uplinks/nope")).status).toBe(404);
    expect((await api("DELETE", "/api/v1/uplinks/nope")).status).toBe(404);
    const bad = await api("POST", "/api/v1/uplinks", {
      name: "bad",
      urls: ["mqtt://user:pw@127.0.0.1:1883"],
      forward: ["a/#/b"],
      subscribe: ["x/#"],
    });
    expect(bad.status).toBe(400);
    expect(Object.keys(bad.json.fields).sort()).toEqual(["forward", "localPrefix", "urls"]);
    const dup = await api("POST", "/api/v1/uplinks", {
      name: "mosq",
      urls: [`mqtt://127.0.0.1:${up.port}`],
      forward: ["#"],
    });
    expect(dup.status).toBe(409);
  });

  it("follows the CLI within a second: added, disabled (offline upstream) and removed while the appliance runs", async () => {
    const cli = (...args: string[]) =>
      Bun.spawnSync(["bun", join(root, "src/main.ts"), "uplinks", ...args, "--data-dir", dir], {
        env: { ...process.env, GATEHOUSE_DATA_DIR: "" },
      });
    const added = cli(
      "add",
      "from-cli",
      "--url",
      `mqtt://127.0.0.1:${up.port}`,
      "--forward",
      "cli/#",
      "--remote-prefix",
      "cli-site/",
    );
    expect(added.exitCode).toBe(0);
    await connected("from-cli");
    // the running appliance writes its status every second; the CLI reads it
    const status = await eventually(() => {
      const s = JSON.parse(cli("status", "from-cli", "--json").stdout.toString());
      expect(s).toMatchObject({ name: "from-cli", connected: true, url: `mqtt://127.0.0.1:${up.port}`, queued: 0 });
      return s;
    });
    for (const k of ["queuedBytes", "oldestQueuedAgeS", "forwarded", "dropped", "resent", "lastError"])
      expect(status).toHaveProperty(k);
    expect(cli("disable", "from-cli").exitCode).toBe(0);
    await upstream.until(
      (m) => m.some((x) => x.topic === "cli-site/$gatehouse/status" && x.payload === "offline"),
      5000,
    );
    await eventually(async () => expect((await statusOf("from-cli")).enabled).toBe(false));
    expect(cli("remove", "from-cli").exitCode).toBe(0);
    await eventually(async () => expect((await api("GET", "/api/v1/uplinks/from-cli")).status).toBe(404));
    expect(app.core.activity.list({ action: "uplink.", actor: "cli" }).map((r) => r.action)).toEqual([
      "uplink.removed",
      "uplink.disabled",
      "uplink.created",
    ]);
  }, 30_000);
});

describe("large messages", () => {
  it("a backlog of large messages goes at most 4 MiB unacknowledged at a time, in order, across a dropped connection", async () => {
    // found from outside: 300 messages of 1 MiB queued during a cut never drained; each pump sent up to 256
    // of them at once, read whole from disk (the row's columns after its payload are read through it)
    const port = await freePort(); // nothing listens yet: what the device publishes waits in the outbox
    expect(
      (
        await api("POST", "/api/v1/uplinks", {
          name: "large",
          urls: [`mqtt://127.0.0.1:${port}`],
          forward: ["large/#"],
        })
      ).status,
    ).toBe(201);
    const plc = await device(app, "plc-large", { publishAcl: ["large/#"] });
    const n = 24;
    const size = 900_000;
    for (let i = 0; i < n; i++) await plc.client.publishAsync(`large/${i}`, Buffer.alloc(size, i), { qos: 1 });
    let connections = 0;
    let outstanding = 0;
    let most = 0;
    const got = new Map<string, Buffer>();
    const sockets: Socket[] = [];
    const fake = createServer((socket) => {
      sockets.push(socket);
      // the first connection takes three PUBLISHes, acknowledges none and drops: they go again on the next
      const first = ++connections === 1;
      let seen = 0;
      outstanding = 0;
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const send = (p: object) => socket.writable && socket.write(mqttPacket.generate(p as mqttPacket.Packet));
      parser.on("packet", (p) => {
        if (p.cmd === "connect") send({ cmd: "connack", returnCode: 0, sessionPresent: false });
        if (p.cmd === "pingreq") send({ cmd: "pingresp" });
        if (p.cmd !== "publish" || p.qos !== 1) return;
        const bytes = (p.payload as Buffer).length;
        outstanding += bytes;
        most = Math.max(most, outstanding);
        if (first) {
          if (++seen === 3) socket.destroy();
          return;
        }
        if (p.topic.startsWith("large/") && !got.has(p.topic)) got.set(p.topic, p.payload as Buffer);
        setTimeout(() => {
          outstanding -= bytes;
          send({ cmd: "puback", messageId: p.messageId });
        }, 200); // slow: what it holds unacknowledged is what the uplink has in flight
      });
      socket.on("data", (d: Buffer) => parser.parse(d));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => fake.listen(port, "127.0.0.1", resolve));
    await eventually(() => expect(got.size).toBe(n), 60_000);
    expect([...got.keys()]).toEqual(Array.from({ length: n }, (_, i) => `large/${i}`));
    expect([...got.values()].every((p, i) => p.equals(Buffer.alloc(size, i)))).toBe(true);
    expect(connections).toBeGreaterThanOrEqual(2);
    // 4 MiB, or one message past it (the one that reached it)
    expect(most).toBeLessThanOrEqual(4 * 1024 * 1024 + size);
    await eventually(async () => expect((await statusOf("large")).queued).toBe(0));
    await api("DELETE", "/api/v1/uplinks/large");
    for (const s of sockets) s.destroy();
    fake.close();
    await plc.client.endAsync();
  }, 90_000);
});

describe("bounds", () => {
  it("past --uplink-max-queue-messages the oldest go, counted and logged, the newest retained message per topic stays; then the rest arrives in order", async () => {
    const proxy = await tcpProxy(up.port);
    await proxy.cut();
    const small = await testApp([
      "--opcua-port",
      "off",
      "--uplink-max-queue-messages",
      "100",
      "--uplink-reconnect-max",
      "1",
    ]);
    const t = small.app.core.admins.createApiToken("t").token;
    await api(
      "POST",
      "/api/v1/uplinks",
      { name: "small", urls: [`mqtt://127.0.0.1:${proxy.port}`], forward: ["b/#"], remotePrefix: "small/" },
      small.url,
      t,
    );
    const { client } = await device(small.app, "plc-bounds", { publishAcl: ["b/#"] });
    await client.publishAsync("b/setting", "kept", { qos: 1, retain: true });
    await client.publishAsync("b/old-retained", "superseded", { qos: 1, retain: true });
    await client.publishAsync("b/old-retained", "newest", { qos: 1, retain: true });
    for (let i = 0; i < 300; i++) await client.publishAsync("b/n", String(i), { qos: 1 });
    await eventually(async () => {
      const s = await statusOf("small", small.url, t);
      expect(s.queued).toBeLessThanOrEqual(100);
      expect(s.dropped).toBeGreaterThanOrEqual(203);
    });
    expect(small.lines.some((l) => l.includes("uplink queue full: oldest messages dropped"))).toBe(true);
    const s = await statusOf("small", small.url, t);
    expect(s.queued + s.dropped).toBe(303);
    await proxy.restore();
    await upstream.until((m) => m.filter((x) => x.topic.startsWith("small/b/")).length >= s.queued, 20_000);
    const got = upstream.messages.filter((m) => m.topic.startsWith("small/b/"));
    expect(got.map((m) => `${m.topic}=${m.payload}`)).toContain("small/b/setting=kept");
    expect(got.map((m) => `${m.topic}=${m.payload}`)).toContain("small/b/old-retained=newest");
    expect(got.map((m) => m.payload)).not.toContain("superseded");
    const numbers = got.filter((m) => m.topic === "small/b/n").map((m) => Number(m.payload));
    expect(numbers.at(-1)).toBe(299); // the newest are kept
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b)); // in order
    expect(numbers.length).toBe(s.queued - 2);
    await client.endAsync();
    await small.app.stop();
    await proxy.close();
  }, 60_000);
});
