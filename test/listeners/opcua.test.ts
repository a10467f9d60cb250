import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, tempDir, testApp, trustOf } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt, nextMessage } from "../helpers/mqtt.ts";
import { connectOpcua, DataType, MessageSecurityMode, readValue, SecurityPolicy } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

let app: App;
let dataDir: string;
let port: number;
beforeAll(async () => {
  ({ app, dir: dataDir } = await testApp());
  port = app.address("opcua")!.port;
}, 60_000);
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const status = (name: string) => `ns=1;s=Gatehouse/Status/${name}`;
const topic = (t: string) => `ns=1;s=Topics/${t}`;

async function refusal(user: { userName: string; password: string } | "anonymous") {
  try {
    const c = await connectOpcua(port, user);
    await c.close();
    return "Good";
  } catch (err) {
    return (err as Error).message;
  }
}

describe("OPC UA authentication", () => {
  it("logs in with a username token over None and reads Status", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "opcua", username: "scada-1" });
    const c = await connectOpcua(port, { userName: "scada-1", password });
    expect((await readValue(c.session, status("Version"))).value.value).toBe("0.1.0");
    expect((await readValue(c.session, status("IntegrationsCount"))).value.value).toBe(app.core.credentials.count());
    expect((await readValue(c.session, status("OnlineOpcUa"))).value.value).toBeGreaterThanOrEqual(1);
    expect(app.core.sessions.countFor(integration.id)).toBe(1);
    expect(app.core.credentials.get(integration.id)!.lastLoginAt).toBeNumber();
    await c.close();
    await eventually(() => expect(app.core.sessions.countFor(integration.id)).toBe(0));
  }, 30_000);

  it("refuses every other case with BadUserAccessDenied, and anonymous outright", async () => {
    await app.core.credentials.create({ type: "opcua", username: "scada-2", password: "right-password" });
    const off = await app.core.credentials.create({ type: "opcua", username: "scada-off", password: "right-password" });
    app.core.credentials.setActive(off.integration.id, false);
    await app.core.credentials.create({ type: "mqtt", username: "mqtt-not-opcua", password: "right-password" });
    for (const user of [
      { userName: "scada-2", password: "wrong-password" },
      { userName: "nobody-here", password: "right-password" },
      { userName: "scada-off", password: "right-password" },
      { userName: "mqtt-not-opcua", password: "right-password" },
    ]) {
      expect([user.userName, await refusal(user)]).toEqual([
        user.userName,
        expect.stringContaining("BadUserAccessDenied"),
      ]);
    }
    // Anonymous is not offered at all: the client finds no anonymous token policy.
    expect(await refusal("anonymous")).toMatch(
      /BadIdentityTokenInvalid|BadIdentityTokenRejected|BadUserAccessDenied|Cannot find suitable endpoint|anonymous/i,
    );
  }, 60_000);

  it("closes a live session when the integration is deactivated", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "opcua", username: "scada-kick" });
    const watcher = await app.core.credentials.create({ type: "opcua", username: "scada-watcher" });
    const c = await connectOpcua(port, { userName: "scada-kick", password });
    const w = await connectOpcua(port, { userName: "scada-watcher", password: watcher.password });
    // Part 5 §6.3.2 ServerDiagnosticsSummary/CurrentSessionCount, read by another client: the server's own count.
    const sessionCount = async () => (await readValue(w.session, "i=2277")).value.value as number;
    expect((await readValue(c.session, status("Version"))).statusCode.name).toBe("Good");
    const before = await sessionCount();
    app.core.credentials.setActive(integration.id, false);
    // Closed on the server at once: the registry is empty and the server counts one session less.
    expect(app.core.sessions.countFor(integration.id)).toBe(0);
    await eventually(async () => expect(await sessionCount()).toBe(before - 1));
    // The kicked client reads nothing more: its request is refused, or it hangs re-activating (refused).
    const next = readValue(c.session, status("Version")).then(
      (v) => v.statusCode.name,
      () => "refused",
    );
    const outcome = await Promise.race([next, Bun.sleep(2_000).then(() => "no answer")]);
    expect(outcome).not.toBe("Good");
    await Promise.all([c.client.disconnect(), w.close()]);
  }, 30_000);
});

describe("the server certificate", () => {
  it("names Gatehouse and covers the host name and 127.0.0.1", async () => {
    const { convertPEMtoDER, exploreCertificate } = await import("node-opcua-crypto");
    const { hostname } = await import("node:os");
    const pem = await Bun.file(`${dataDir}/pki/own/certs/gatehouse.pem`).text();
    const cert = exploreCertificate(convertPEMtoDER(pem)).tbsCertificate;
    expect(cert.subject.commonName).toContain("Gatehouse");
    expect(cert.subject.organizationName).toBe("Gatehouse");
    const san = cert.extensions!.subjectAltName!;
    expect(san.iPAddress).toContain("7f000001"); // 127.0.0.1, as the hex octets X.509 stores
    expect(san.dNSName).toContain(hostname());
    expect(san.uniformResourceIdentifier![0]).toBe(`urn:${hostname()}:Gatehouse`);
  });
});

describe("client certificates", () => {
  it("rejects an unknown certificate over SignAndEncrypt, lists it, and lets it in once trusted", async () => {
    const { password } = await app.core.credentials.create({ type: "opcua", username: "secure-scada" });
    const pkiDir = tempDir("gatehouse-opcua-client-");
    const secure = { mode: MessageSecurityMode.SignAndEncrypt, policy: SecurityPolicy.Basic256Sha256, pkiDir };
    const first = await connectOpcua(port, { userName: "secure-scada", password }, secure).then(
      async (c) => (await c.close(), "connected"),
      (err: Error) => err.message,
    );
    expect(first).not.toBe("connected");
    const rejected = await trustList().list();
    const mine = rejected.find((c) => c.applicationUri.endsWith(pkiDir.split("/").pop()!));
    expect(mine?.status).toBe("rejected");
    expect(mine?.subject).toContain("GatehouseTestClient");
    // The admin sees it on the page and presses Trust (a form post with the session's CSRF token).
    const base = `http://127.0.0.1:${app.address("http")!.port}`;
    const { cookie, csrf } = await signIn(base);
    expect(await (await fetch(`${base}/certificates`, { headers: { cookie } })).text()).toContain(mine!.thumbprint);
    const trusted = await fetch(`${base}/certificates/${mine!.thumbprint}/trust`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: base },
      body: `_csrf=${csrf}`,
    });
    expect(trusted.status).toBe(303);
    const c = await connectOpcua(port, { userName: "secure-scada", password }, secure);
    expect((await readValue(c.session, status("Version"))).value.value).toBe("0.1.0");
    await c.close();
    await trustList().revoke(mine!.thumbprint);
    expect((await trustList().list()).find((x) => x.thumbprint === mine!.thumbprint)?.status).toBe("rejected");
  }, 60_000);
});

function trustList() {
  return trustOf(app);
}

describe("Topics mirror the broker", () => {
  it("an MQTT retained value is readable under Topics, and an OPC UA write reaches an MQTT subscriber", async () => {
    const machine = await app.core.credentials.create({ type: "mqtt", username: "plc-topics" });
    const scada = await app.core.credentials.create({ type: "opcua", username: "scada-topics" });
    const m = await connectMqtt(app.address("mqtt")!.port, { username: "plc-topics", password: machine.password });
    await m.publishAsync("plant/line1/temp", "21.5", { retain: true, qos: 1 });
    await m.publishAsync("plant/line1/running", "true", { retain: true, qos: 1 });
    await m.publishAsync("plant/line1/setpoint", "10", { retain: true, qos: 1 });
    await m.publishAsync("plant/line1/name", "press #7", { retain: true, qos: 1 });
    const c = await connectOpcua(port, { userName: "scada-topics", password: scada.password });
    // PUBACK precedes routing in aedes: the last retained value may still be on its way.
    await eventually(async () =>
      expect((await readValue(c.session, topic("plant/line1/name"))).value.value).toBe("press #7"),
    );
    const temp = await readValue(c.session, topic("plant/line1/temp"));
    expect(temp.value.dataType).toBe(DataType.Double);
    expect(temp.value.value).toBe(21.5);
    expect(temp.sourceTimestamp).toBeInstanceOf(Date);
    expect((await readValue(c.session, topic("plant/line1/running"))).value.value).toBe(true);
    expect((await readValue(c.session, topic("plant/line1/name"))).value.value).toBe("press #7");

    await m.subscribeAsync("plant/line1/setpoint");
    expect(await nextMessage(m)).toEqual({ topic: "plant/line1/setpoint", payload: "10" }); // the retained copy on subscribe
    const got = nextMessage(m);
    const res = await c.session.write({
      nodeId: topic("plant/line1/setpoint"),
      attributeId: 13,
      value: { value: { dataType: DataType.Double, value: 42 } },
    });
    expect(res.name).toBe("Good");
    expect(await got).toEqual({ topic: "plant/line1/setpoint", payload: "42" });
    expect((await readValue(c.session, topic("plant/line1/setpoint"))).value.value).toBe(42);
    await c.close();
    await m.endAsync();
  }, 30_000);

  it("follows the integration's topic permissions for reading and writing", async () => {
    const machine = await app.core.credentials.create({ type: "mqtt", username: "plc-perm" });
    const scada = await app.core.credentials.create({ type: "opcua", username: "scada-perm" });
    app.core.credentials.update(scada.integration.id, { subscribeAcl: ["area1/#"], publishAcl: ["area1/cmd/#"] });
    const m = await connectMqtt(app.address("mqtt")!.port, { username: "plc-perm", password: machine.password });
    for (const t of ["area1/temp", "area1/cmd/speed", "area2/temp"])
      await m.publishAsync(t, "1", { retain: true, qos: 1 });
    const c = await connectOpcua(port, { userName: "scada-perm", password: scada.password });
    await eventually(async () =>
      expect((await readValue(c.session, topic("area1/temp"))).statusCode.name).toBe("Good"),
    );
    // a topic it may not read is absent to it (opcua-visibility.test.ts)
    expect((await readValue(c.session, topic("area2/temp"))).statusCode.name).toBe("BadNodeIdUnknown");
    const write = (t: string) =>
      c.session
        .write({ nodeId: topic(t), attributeId: 13, value: { value: { dataType: DataType.Double, value: 5 } } })
        .then((s) => s.name);
    expect(await write("area1/cmd/speed")).toBe("Good");
    expect(await write("area1/temp")).toBe("BadUserAccessDenied");
    await c.close();
    await m.endAsync();
  }, 30_000);
});
