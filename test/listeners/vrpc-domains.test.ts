import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { MqttClient } from "mqtt";
// vrpc is CommonJS without types.
// @ts-expect-error no type declarations
import { VrpcAdapter, VrpcAgent, VrpcClient } from "vrpc";
// @ts-expect-error no type declarations
import parsePrometheus from "parse-prometheus-text-format";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp, vrpcOf } from "../helpers/app.ts";
import { connectMqtt, subackCodes } from "../helpers/mqtt.ts";
import { connectOpcua, readValue } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

/** Valve: what the agent offers; `opened` counts the calls that reached it. */
class Valve {
  static opened = 0;
  constructor(readonly name: string) {}
  static open(n: number) {
    Valve.opened++;
    return `open ${n}`;
  }
  close() {
    return `${this.name} closed`;
  }
}

let app: App;
let url: string;
let port: number;
let broker: string;
let agent: InstanceType<typeof VrpcAgent>;
const quiet = { debug() {}, info() {}, warn() {}, error() {} }; // vrpc's default 'console' silences console.debug process-wide
const opened: MqttClient[] = [];

beforeAll(async () => {
  ({ app, url } = await testApp());
  port = app.address("mqtt")!.port;
  broker = `mqtt://127.0.0.1:${port}`;
  VrpcAdapter.register(Valve);
  VrpcAdapter.create({ className: "Valve", instance: "v1", args: ["v1"] });
  const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/valve-agent" });
  agent = new VrpcAgent({
    broker,
    domain: "plant",
    agent: "valve-agent",
    username: "plant/valve-agent",
    password: cred.password,
    log: quiet,
  });
  await agent.serve();
  await eventually(() => expect(vrpcOf(app).agent("plant", "valve-agent")?.status).toBe("online"));
}, 60_000);
afterAll(async () => {
  await Promise.all(opened.map((c) => c.endAsync()));
  await agent.end();
  await app.stop();
  cleanupTempDirs();
});

/** mqttAs: a real mqtt.js client of a new integration with these filters (default: `#` both ways). */
async function mqttAs(
  username: string,
  acl: { publishAcl?: string[]; subscribeAcl?: string[] } = {},
  type: "mqtt" | "vrpc" = "mqtt",
  protocolVersion: 4 | 5 = 4,
) {
  const { integration, password } = await app.core.credentials.create({ type, username });
  if (acl.publishAcl || acl.subscribeAcl) app.core.credentials.update(integration.id, acl);
  const c = await connectMqtt(port, { username, password, protocolVersion });
  opened.push(c);
  return { c, integration, password };
}

/** inbox: every message a client receives, and a wait for the first one on `topic`. */
function inbox(c: MqttClient) {
  const seen: string[] = [];
  const waiting = new Map<string, () => void>();
  c.on("message", (t) => {
    seen.push(t);
    waiting.get(t)?.();
  });
  return {
    seen,
    until: (topic: string) =>
      new Promise<void>((resolve) => (seen.includes(topic) ? resolve() : waiting.set(topic, resolve))),
  };
}

const call = (f: string, s: string) => JSON.stringify({ c: "Valve", f, a: [7], i: "x-1", s, v: 3 });

describe("a call into a VRPC domain needs a VRPC integration of that domain", () => {
  it("an MQTT integration with # cannot call the agent (static, member, vrpc internals); a VRPC integration of the domain can", async () => {
    const witness = await mqttAs("plant-witness", { subscribeAcl: ["plant/#", "line/#"], publishAcl: [] });
    const w = inbox(witness.c);
    await witness.c.subscribeAsync([
      "plant/valve-agent/Valve/__static__/+",
      "plant/valve-agent/Valve/v1/+",
      "line/sentinel",
    ]);
    const { c } = await mqttAs("line-mqtt"); // the default: `#` both ways
    for (const topic of [
      "plant/valve-agent/Valve/__static__/open",
      "plant/valve-agent/Valve/v1/close",
      "plant/valve-agent/Valve/__static__/__createShared__",
    ]) {
      await c.publishAsync(topic, call("open", "plant/line-mqtt/replies"), { qos: 1 });
    }
    // Same connection, so in order: once the sentinel is through, a routed call would have been too.
    await c.publishAsync("line/sentinel", "after the calls", { qos: 1 });
    await w.until("line/sentinel");
    expect(w.seen).toEqual(["line/sentinel"]);
    expect(Valve.opened).toBe(0);

    // MQTT 5 hears it: PUBACK 0x87 Not authorized.
    const v5 = await mqttAs("line-mqtt5", {}, "mqtt", 5);
    const refused = await v5.c
      .publishAsync("plant/valve-agent/Valve/__static__/open", call("open", "plant/x/y"), { qos: 1 })
      .then(
        () => 0,
        (err: { code?: number }) => err.code,
      );
    expect(refused).toBe(0x87);

    // A VRPC integration of the domain calls it, with vrpc's own client (agent info, class info, replies).
    const client = await app.core.credentials.create({ type: "vrpc", username: "plant/mes-client" });
    const vc = new VrpcClient({
      broker,
      domain: "plant",
      username: "plant/mes-client",
      password: client.password,
      log: quiet,
      timeout: 5000,
    });
    await vc.connect();
    expect(await vc.callStatic({ agent: "valve-agent", className: "Valve", functionName: "open", args: [3] })).toBe(
      "open 3",
    );
    const proxy = await vc.getInstance("v1", { agent: "valve-agent", className: "Valve" });
    expect(await proxy.close()).toBe("v1 closed");
    expect(Valve.opened).toBe(1);
    await vc.end();
  }, 30_000);

  it("a VRPC client named without a domain reaches the domain only through a filter that names it", async () => {
    const { c, integration, password } = await mqttAs("mes-nodomain", {}, "vrpc");
    expect(await subackCodes(c, ["plant/+/__agentInfo__", "plant/+/+/__classInfoConcise__", "other/#"])).toEqual([
      128, 128, 0,
    ]);
    await c.endAsync();
    app.core.credentials.update(integration.id, { publishAcl: ["plant/#"], subscribeAcl: ["plant/#"] });
    const vc = new VrpcClient({
      broker,
      domain: "plant",
      username: "mes-nodomain",
      password,
      log: quiet,
      timeout: 5000,
    });
    await vc.connect();
    expect(await vc.callStatic({ agent: "valve-agent", className: "Valve", functionName: "open", args: [4] })).toBe(
      "open 4",
    );
    await vc.end();
  }, 30_000);

  it("# still reaches everything outside VRPC domains; a filter naming the domain reaches into it", async () => {
    const everything = await mqttAs("historian"); // `#`
    const named = await mqttAs("plant-historian", { subscribeAcl: ["plant/#", "line/#"] });
    const e = inbox(everything.c);
    const n = inbox(named.c);
    await everything.c.subscribeAsync("#");
    await named.c.subscribeAsync(["plant/#", "line/#"]);
    // One publisher, one connection: plant/... first, then the sentinel.
    const { c } = await mqttAs("plant-writer", { publishAcl: ["plant/#", "line/#"] });
    await c.publishAsync("plant/line1/temperature", "21", { qos: 1 });
    await c.publishAsync("line/after", "sentinel", { qos: 1 });
    await Promise.all([e.until("line/after"), n.until("line/after")]);
    expect(n.seen).toContain("plant/line1/temperature");
    expect(e.seen.filter((t) => t.startsWith("plant/"))).toEqual([]); // granted `#`, withheld at delivery
    expect(e.seen).toContain("line/after");
  }, 30_000);
});

describe("a subscription that can never deliver is refused in the SUBACK", () => {
  it("3.1.1: 0x80; MQTT 5: 0x87", async () => {
    await app.core.credentials.create({ type: "vrpc", username: "dB/agent-b" }); // `dB` is a VRPC domain too
    const a = await mqttAs("dA/agent-a", {}, "vrpc");
    expect(await subackCodes(a.c, ["dB/#", "dB/agent-b/+/__static__/+", "dA/#", "#"])).toEqual([128, 128, 0, 128]);
    const m = await mqttAs("mqtt-all");
    expect(
      await subackCodes(m.c, ["plant/#", "plant/valve-agent/__agentInfo__", "dB/#", "#", "+/valve-agent/#", "line/x"]),
    ).toEqual([128, 128, 128, 0, 0, 0]);
    const m5 = await mqttAs("mqtt-all-5", {}, "mqtt", 5);
    expect(await subackCodes(m5.c, ["plant/#", "line/x"])).toEqual([0x87, 0]);
    const a5 = await mqttAs("dA/agent-a5", {}, "vrpc", 5);
    expect(await subackCodes(a5.c, ["dB/#", "dA/x"])).toEqual([0x87, 0]);
  }, 30_000);
});

describe("VRPC connections are counted as VRPC", () => {
  it("sessions, /metrics and the OPC UA Status node", async () => {
    const token = app.core.admins.createApiToken("prometheus-vrpc").token;
    const sessionsMetric = async (type: string) => {
      const families = parsePrometheus(
        await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text(),
      ) as { name: string; metrics: { value: string; labels?: Record<string, string> }[] }[];
      return Number(
        families.find((f) => f.name === "gatehouse_sessions")?.metrics.find((x) => x.labels?.type === type)?.value ?? 0,
      );
    };
    const agentId = app.core.credentials.findByUsername("plant/valve-agent")!.id;
    expect(app.core.sessions.list({ integrationId: agentId }).map((s) => s.type)).toEqual(["vrpc"]);
    const vrpcSessions = app.core.sessions.list({ type: "vrpc" }).length;
    expect(vrpcSessions).toBeGreaterThanOrEqual(1);
    expect(await sessionsMetric("vrpc")).toBe(vrpcSessions);
    expect(await sessionsMetric("mqtt")).toBe(app.core.sessions.list({ type: "mqtt" }).length);

    const { password } = await app.core.credentials.create({ type: "opcua", username: "scada-vrpc" });
    const o = await connectOpcua(app.address("opcua")!.port, { userName: "scada-vrpc", password });
    try {
      const online = async (name: string) =>
        (await readValue(o.session, `ns=1;s=Gatehouse/Status/Online${name}`)).value.value as number;
      expect(await online("VRPC")).toBe(app.core.sessions.onlineCountByType().vrpc);
      expect(await online("VRPC")).toBeGreaterThanOrEqual(1);
      expect(await online("MQTT")).toBe(app.core.sessions.onlineCountByType().mqtt);
    } finally {
      await o.close();
    }
  }, 60_000);
});
