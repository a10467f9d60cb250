import { afterAll, describe, expect, it } from "bun:test";
import { createConnection, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { AttributeIds, MessageSecurityMode, OPCUAClient, SecurityPolicy, UserTokenType } from "node-opcua-client";
import { cleanupTempDirs, tempDir, testApp } from "../helpers/app.ts";
import { connectOpcua, type OpcuaConnection } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

/** doomedClient: a real node-opcua-client in its own process holding `sessions` sessions; resolves once they are open. */
async function doomedClient(port: number, user: { userName: string; password: string }, sessions: number) {
  const proc = Bun.spawn(["bun", join(import.meta.dir, "../fixtures/opcua-sessions.ts")], {
    env: {
      ...process.env,
      PORT: String(port),
      USERNAME: user.userName,
      PASSWORD: user.password,
      PKI: tempDir("gatehouse-opcua-doomed-"),
      SESSIONS: String(sessions),
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("sessions open")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the client process ended: ${await new Response(proc.stderr).text()}`);
    text += new TextDecoder().decode(value);
  }
  return proc;
}

describe("OPC UA sessions of a client process that died", () => {
  it("are freed with its channel: after a SIGKILL, --opcua-max-sessions new sessions open", async () => {
    const max = 3;
    const { app } = await testApp(["--opcua-max-sessions", String(max), "--mqtt-port", "off"]);
    const port = app.address("opcua")!.port;
    const open: OpcuaConnection[] = [];
    try {
      const { integration, password } = await app.core.credentials.create({ type: "opcua", username: "mortal" });
      const user = { userName: "mortal", password };
      const proc = await doomedClient(port, user, max);
      expect(app.core.sessions.countFor(integration.id)).toBe(max);
      proc.kill("SIGKILL");
      await proc.exited;
      // the integration is offline at once: nobody is on the other end
      await eventually(() => expect(app.core.sessions.countFor(integration.id)).toBe(0));
      for (let i = 0; i < max; i++) open.push(await connectOpcua(port, user));
      expect(app.core.sessions.countFor(integration.id)).toBe(max);
      // and the limit still holds for live sessions
      const extra = await connectOpcua(port, user).then(
        async (c) => (await c.close(), "connected"),
        (e: Error) => e.message,
      );
      expect(extra).toContain("BadTooManySessions");
    } finally {
      for (const c of open) await c.close();
      await app.stop();
    }
  }, 60_000);
});

describe("OPC UA sessions whose network broke", () => {
  it("a client that reconnects within the grace re-activates its session on the new channel", async () => {
    const { app } = await testApp(["--opcua-max-sessions", "2", "--mqtt-port", "off"]);
    const port = app.address("opcua")!.port;
    // a TCP hop the test can cut, as a network break would
    const cut = new Set<Socket>();
    const proxy = createServer((down) => {
      const up = createConnection(port, "127.0.0.1");
      down.pipe(up).pipe(down);
      for (const s of [down, up]) {
        cut.add(s);
        s.on("error", () => undefined);
        s.on("close", () => cut.delete(s));
      }
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    const proxyPort = (proxy.address() as { port: number }).port;
    const pki = tempDir("gatehouse-opcua-reconnect-");
    const client = OPCUAClient.create({
      applicationName: "GatehouseReconnectingClient",
      applicationUri: "urn:gatehouse-test:reconnecting",
      endpointMustExist: false,
      securityMode: MessageSecurityMode.None,
      securityPolicy: SecurityPolicy.None,
      connectionStrategy: { maxRetry: 20, initialDelay: 100, maxDelay: 500 },
      clientCertificateManager: new OPCUACertificateManager({
        rootFolder: join(pki, "pki"),
        automaticallyAcceptUnknownCertificate: true,
      }),
    });
    try {
      const { integration, password } = await app.core.credentials.create({ type: "opcua", username: "wanderer" });
      await client.connect(`opc.tcp://127.0.0.1:${proxyPort}`);
      const session = await client.createSession({ type: UserTokenType.UserName, userName: "wanderer", password });
      const sessionId = session.sessionId.toString();
      expect(app.core.sessions.countFor(integration.id)).toBe(1);
      const restored = new Promise<void>((r) => session.once("session_restored", () => r()));
      for (const s of cut) s.destroy();
      await restored;
      expect(session.sessionId.toString()).toBe(sessionId); // the same session, on a new channel
      expect(
        (await session.read({ nodeId: "ns=1;s=Gatehouse/Status/Version", attributeId: AttributeIds.Value })).statusCode
          .name,
      ).toBe("Good");
      await eventually(() => expect(app.core.sessions.countFor(integration.id)).toBe(1));
      await session.close();
    } finally {
      await client.disconnect();
      proxy.close();
      await app.stop();
    }
  }, 60_000);
});
