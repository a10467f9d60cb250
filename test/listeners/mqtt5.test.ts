import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { IClientOptions, MqttClient } from "mqtt";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt, connectWithInbox, nextMessage, refusalCode } from "../helpers/mqtt.ts";
import { eventually } from "../helpers/wait.ts";

/** MQTT 5 through mqtt.js with protocolVersion 5 (aedes 2.0.0-beta.1). */
let app: App;
let port: number;
beforeAll(async () => {
  ({ app } = await testApp(["--opcua-port", "off", "--mqtt-max-session-expiry", "3600"]));
  port = app.address("mqtt")!.port;
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const v5 = (opts: IClientOptions = {}) => connectMqtt(port, { protocolVersion: 5, ...opts });
const make = async (
  username: string,
  acl: { publishAcl?: string[]; subscribeAcl?: string[] } = {},
  type: "mqtt" | "opcua" = "mqtt",
) => {
  const made = await app.core.credentials.create({ type, username });
  if (Object.keys(acl).length) app.core.credentials.update(made.integration.id, acl);
  return made;
};
/** disconnectReason: the reason code of the DISCONNECT the broker sends, if any, before the close. */
const disconnectReason = (c: MqttClient) =>
  new Promise<number | undefined>((resolve) => {
    c.once("disconnect", (p: { reasonCode?: number }) => resolve(p.reasonCode));
    c.once("close", () => setTimeout(() => resolve(undefined), 50));
  });

describe("MQTT 5 logins", () => {
  it("connects with reason 0; the session shows its protocol", async () => {
    const { integration, password } = await make("v5-device");
    const c = await v5({ username: "v5-device", password });
    expect(app.core.sessions.list({ integrationId: integration.id })[0]?.protocol).toBe("MQTT 5");
    await c.endAsync();
  });

  it("tells each refusal with its v5 reason code", async () => {
    await make("v5-known");
    const off = await make("v5-off");
    app.core.credentials.setActive(off.integration.id, false);
    const scada = await make("v5-scada", {}, "opcua");
    const owner = await make("v5-owner");
    const held = await v5({ username: "v5-owner", password: owner.password, clientId: "v5-held" });
    const intruder = await make("v5-intruder");
    const cases: [string, IClientOptions, number][] = [
      ["unknown user", { username: "v5-ghost", password: "whatever-pass" }, 0x86],
      ["wrong password", { username: "v5-known", password: "not-the-password" }, 0x86],
      ["deactivated", { username: "v5-off", password: off.password }, 0x87],
      ["wrong type", { username: "v5-scada", password: scada.password }, 0x87],
      [
        "client id of another integration",
        { username: "v5-intruder", password: intruder.password, clientId: "v5-held" },
        0x85,
      ],
    ];
    for (const [name, opts, code] of cases)
      expect([name, await refusalCode(port, { protocolVersion: 5, ...opts })]).toEqual([name, code]);
    // throttled: its own pair has used up its budget
    for (let i = 0; i < 10; i++)
      await refusalCode(port, { protocolVersion: 5, username: "v5-known", password: `guess-${i}-x` });
    expect(await refusalCode(port, { protocolVersion: 5, username: "v5-known", password: "another-guess" })).toBe(0x9f);
    expect(app.core.loginLog.recent(10).find((f) => f.username === "v5-known")?.protocol).toBe("MQTT 5");
    await held.endAsync();
  });
});

describe("MQTT 5 permissions", () => {
  it("a refused subscription gets SUBACK 0x87; a refused publish gets PUBACK 0x87 with a reason string", async () => {
    const { password } = await make("v5-limited", { publishAcl: ["ok/#"], subscribeAcl: ["ok/#"] });
    const c = await v5({ username: "v5-limited", password, properties: { requestProblemInformation: true } });
    const suback = new Promise<number[]>((resolve) =>
      c.on("packetreceive", (p) => p.cmd === "suback" && resolve((p as { granted: number[] }).granted)),
    );
    c.subscribe(["ok/a", "secret/a"], { qos: 1 }, () => {});
    expect(await suback).toEqual([1, 0x87]);
    const puback = await new Promise<{ reasonCode?: number; properties?: { reasonString?: string } }>((resolve) => {
      c.publish("secret/x", "no", { qos: 1 }, (err) =>
        resolve(
          ((err as { packet?: unknown } | undefined)?.packet ?? {
            reasonCode: (err as { code?: number } | undefined)?.code ?? 0,
          }) as never,
        ),
      );
    });
    expect(puback.reasonCode).toBe(0x87);
    expect(c.connected).toBe(true);
    const got = nextMessage(c);
    await c.publishAsync("ok/a", "fine", { qos: 1 });
    expect(await got).toEqual({ topic: "ok/a", payload: "fine" });
    await c.endAsync();
  });
});

describe("MQTT 5 kicks", () => {
  it("a revocation sends DISCONNECT 0x87, the admin's Disconnect 0x98", async () => {
    const a = await make("v5-revoked");
    const c = await v5({ username: "v5-revoked", password: a.password });
    const reason = disconnectReason(c);
    app.core.credentials.setActive(a.integration.id, false);
    expect(await reason).toBe(0x87);
    const b = await make("v5-kicked");
    const d = await v5({ username: "v5-kicked", password: b.password });
    const reason2 = disconnectReason(d);
    app.core.sessions.kickSession(app.core.sessions.list({ integrationId: b.integration.id })[0]!.id);
    expect(await reason2).toBe(0x98);
  });
});

describe("MQTT 5 sessions and wills", () => {
  it("a session with an expiry is resumed, capped by --mqtt-max-session-expiry, and ends when its integration is deleted", async () => {
    const s = await make("v5-sleeper");
    const pub = await make("v5-waker");
    const first = await v5({
      username: "v5-sleeper",
      password: s.password,
      clientId: "sleeper-1",
      clean: false,
      properties: { sessionExpiryInterval: 4_000_000 },
    });
    expect(
      (first as unknown as { connackPacket?: { properties?: { sessionExpiryInterval?: number } } }).connackPacket
        ?.properties?.sessionExpiryInterval,
    ).toBe(3600);
    await first.subscribeAsync("sleep/#", { qos: 1 });
    await first.endAsync();
    const p = await v5({ username: "v5-waker", password: pub.password });
    await p.publishAsync("sleep/alarm", "wake up", { qos: 1 });
    const back = await connectWithInbox(port, {
      protocolVersion: 5,
      username: "v5-sleeper",
      password: s.password,
      clientId: "sleeper-1",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    expect(await back.next()).toEqual({ topic: "sleep/alarm", payload: "wake up" });
    await back.client.endAsync();
    app.core.credentials.remove(s.integration.id);
    await p.publishAsync("sleep/alarm", "nobody home", { qos: 1 });
    const other = await make("v5-newcomer");
    const fresh = await connectWithInbox(port, {
      protocolVersion: 5,
      username: "v5-newcomer",
      password: other.password,
      clientId: "sleeper-1",
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    expect(
      (fresh.client as unknown as { connackPacket?: { sessionPresent?: boolean } }).connackPacket?.sessionPresent,
    ).toBe(false);
    await p.publishAsync("sleep/alarm", "after", { qos: 1 });
    await fresh.client.subscribeAsync("check/#", { qos: 1 });
    await p.publishAsync("check/x", "first", { qos: 1 });
    expect(await fresh.next()).toEqual({ topic: "check/x", payload: "first" });
    await Promise.all([fresh.client.endAsync(), p.endAsync()]);
  });

  it("a delayed will is cancelled when the client comes back in time", async () => {
    const dev = await make("v5-flaky");
    const watcher = await make("v5-will-watcher");
    const w = await v5({ username: "v5-will-watcher", password: watcher.password });
    await w.subscribeAsync("flaky/#");
    const opts = {
      username: "v5-flaky",
      password: dev.password,
      clientId: "flaky-1",
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: {
        topic: "flaky/status",
        payload: Buffer.from("offline"),
        qos: 0 as const,
        retain: false,
        properties: { willDelayInterval: 3 },
      },
    };
    const d = await v5(opts);
    (d as unknown as { stream: { destroy(): void } }).stream.destroy();
    d.end(true);
    const again = await v5(opts);
    const first = nextMessage(w);
    await again.publishAsync("flaky/status", "back", { qos: 1 });
    expect(await first).toEqual({ topic: "flaky/status", payload: "back" });
    await Promise.all([again.endAsync(), w.endAsync()]);
  });
});

describe("MQTT 5 features pass through", () => {
  it("request/response with correlation data between two integrations, and a topic alias round trip", async () => {
    const asker = await make("v5-asker");
    const answerer = await make("v5-answerer");
    const server = await v5({ username: "v5-answerer", password: answerer.password });
    await server.subscribeAsync("rpc/requests", { qos: 1 });
    server.on("message", (t, payload, packet) => {
      if (t !== "rpc/requests") return;
      const props = packet.properties ?? {};
      server.publish(props.responseTopic!, `echo:${payload}`, {
        qos: 1,
        properties: { correlationData: props.correlationData, userProperties: { answeredBy: "v5-answerer" } },
      });
    });
    const client = await v5({ username: "v5-asker", password: asker.password, autoUseTopicAlias: true });
    await client.subscribeAsync("rpc/replies/asker", { qos: 1 });
    const reply = new Promise<{ payload: string; correlation?: string; by?: unknown }>((resolve) =>
      client.once("message", (_t, payload, packet) =>
        resolve({
          payload: payload.toString(),
          correlation: packet.properties?.correlationData?.toString(),
          by: packet.properties?.userProperties?.answeredBy,
        }),
      ),
    );
    await client.publishAsync("rpc/requests", "ping", {
      qos: 1,
      properties: { responseTopic: "rpc/replies/asker", correlationData: Buffer.from("req-42") },
    });
    expect(await reply).toEqual({ payload: "echo:ping", correlation: "req-42", by: "v5-answerer" });
    // topic alias: the second publish carries only the alias
    const aliased: string[] = [];
    server.on("message", (t, p) => t === "alias/topic" && aliased.push(p.toString()));
    await server.subscribeAsync("alias/topic");
    await client.publishAsync("alias/topic", "one", { qos: 1, properties: { topicAlias: 1 } });
    await client.publishAsync("alias/topic", "two", { qos: 1, properties: { topicAlias: 1 } }); // sent as the alias alone
    await eventually(() => expect(aliased).toEqual(["one", "two"]));
    await Promise.all([server.endAsync(), client.endAsync()]);
  });
});

describe("MQTT 5 with Paho Python (python3-paho-mqtt)", () => {
  /** paho: runs the client as its own process (async: the broker under test lives in this one). */
  const paho = async (args: string[]) => {
    // Debian's interpreter: python3-paho-mqtt installs there (a pyenv python on PATH would not see it)
    const p = Bun.spawn(["/usr/bin/python3", `${import.meta.dir}/../fixtures/paho5.py`, String(port), ...args], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    if (code !== 0) throw new Error(err);
    return JSON.parse(out.trim().split("\n").at(-1)!) as { connect?: number; suback?: number[] };
  };

  it("connects, gets 0x86 for a wrong password and SUBACK 0x87 for a refused filter", async () => {
    const { password } = await make("paho-device", { subscribeAcl: ["paho/#"] });
    expect(await paho(["paho-device", password, "paho/#"])).toEqual({ connect: 0, suback: [1] });
    expect(await paho(["paho-device", "not-the-password"])).toEqual({ connect: 0x86 });
    expect(await paho(["paho-device", password, "secret/#"])).toEqual({ connect: 0, suback: [0x87] });
  }, 30_000);
});
