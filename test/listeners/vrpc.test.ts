import { afterAll, beforeAll, describe, expect, it } from "bun:test";
// vrpc is CommonJS without types.
// @ts-expect-error no type declarations
import { VrpcAdapter, VrpcAgent, VrpcClient } from "vrpc";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { eventually } from "../helpers/wait.ts";

/** Press: the code an agent offers; registered as a class object (path registration reads files). */
class Press {
  static speed(rpm: number) {
    return rpm * 2;
  }
}

let app: App;
let broker: string;
const quiet = { debug() {}, info() {}, warn() {}, error() {} }; // vrpc's default 'console' silences console.debug process-wide

beforeAll(async () => {
  ({ app } = await testApp(["--opcua-port", "off"]));
  broker = `mqtt://127.0.0.1:${app.address("mqtt")!.port}`;
  VrpcAdapter.register(Press);
});
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

describe("VRPC over the broker", () => {
  it("an agent with a VRPC integration serves, a client with another integration of its domain calls it", async () => {
    const agentCred = await app.core.credentials.create({ type: "vrpc", username: "plant/press-agent" });
    const clientCred = await app.core.credentials.create({ type: "vrpc", username: "plant/mes-client" });
    const agent = new VrpcAgent({
      broker,
      domain: "plant",
      agent: "press-agent",
      username: "plant/press-agent",
      password: agentCred.password,
      log: quiet,
    });
    await agent.serve();
    const client = new VrpcClient({
      broker,
      domain: "plant",
      username: "plant/mes-client",
      password: clientCred.password,
      log: quiet,
      timeout: 5000,
    });
    await client.connect();
    expect(
      await client.callStatic({ agent: "press-agent", className: "Press", functionName: "speed", args: [21] }),
    ).toBe(42);
    expect(app.core.sessions.countFor(agentCred.integration.id)).toBe(1);
    await client.end();
    await agent.end();
  }, 30_000);

  it("an agent whose integration is deactivated is dropped and refused", async () => {
    const cred = await app.core.credentials.create({ type: "vrpc", username: "plant/doomed-agent" });
    const agent = new VrpcAgent({
      broker,
      domain: "plant",
      agent: "doomed-agent",
      username: "plant/doomed-agent",
      password: cred.password,
      log: quiet,
    });
    await agent.serve();
    const errors: string[] = [];
    agent.on("error", (err: Error) => errors.push(err.message));
    app.core.credentials.setActive(cred.integration.id, false);
    expect(app.core.sessions.countFor(cred.integration.id)).toBe(0);
    await eventually(() => expect(errors.join(" ")).toContain("Not authorized"), 10_000); // vrpc retries every second
    await agent.end();
  }, 30_000);
});
