/**
 * bench/opcua-server.ts MODE: one OPC UA server in its own process for bench/opcua.ts.
 *   baseline  - node-opcua's OPCUAServer with its defaults (anonymous, no user check), the standard
 *               nodeset and one Double variable `ns=1;s=Topics/bench/value`
 *   gatehouse - the appliance (MQTT and OPC UA listeners, the credential core); the same variable is
 *               the retained topic `bench/value`, read by an OPC UA integration `bench-scada`
 * Prints `ready <opcuaPort>`. On stdin: `cpu` -> `cpu <user+system microseconds>`; `pump N RATE` sets
 * the value N times at RATE per second (the baseline through setValueFromSource, Gatehouse by a publish
 * on the topic, as an MQTT device would) and answers `pumped`; `exit` ends the process.
 */
import { join } from "node:path";
import { scratchDir } from "./lib/scratch.ts";

const mode = process.argv[2];
const dir = scratchDir(`bench-opcua-${mode}-`);
let set: (value: number) => Promise<void>;
let port: number;

if (mode === "baseline") {
  const { OPCUAServer } = await import("node-opcua-server");
  const { DataType, Variant } = await import("node-opcua-variant");
  const { nodesets } = await import("node-opcua-nodesets");
  const { OPCUACertificateManager } = await import("node-opcua-certificate-manager");
  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: join(dir, "pki"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const server = new OPCUAServer({
    port: 0,
    host: "127.0.0.1",
    nodeset_filename: [nodesets.standard],
    serverCertificateManager,
    serverCapabilities: { minSupportedSampleRate: 0 },
  });
  await server.initialize();
  const ns = server.engine.addressSpace!.getOwnNamespace();
  const variable = ns.addVariable({
    organizedBy: server.engine.addressSpace!.rootFolder.objects,
    browseName: "bench/value",
    nodeId: "s=Topics/bench/value",
    dataType: "Double",
    minimumSamplingInterval: 0,
  });
  variable.setValueFromSource(new Variant({ dataType: DataType.Double, value: 0 }));
  set = async (value) => variable.setValueFromSource(new Variant({ dataType: DataType.Double, value }));
  await server.start();
  port = server.endpoints[0]!.port;
} else {
  const { startApplianceHere } = await import("./lib/appliance.ts");
  const app = await startApplianceHere({ dataDir: join(dir, "data"), ports: { opcua: 0 } });
  await app.core.credentials.create({ type: "opcua", username: "bench-scada", password: "bench-scada-password" });
  set = (value) => app.core.bus.publish({ topic: "bench/value", payload: Buffer.from(String(value)), retain: true });
  await set(0);
  port = app.address("opcua")!.port;
}

console.log(`ready ${port}`);
for await (const line of console) {
  const [cmd, a, b] = line.trim().split(" ");
  if (cmd === "cpu") {
    const u = process.cpuUsage();
    console.log(`cpu ${u.user + u.system}`);
  } else if (cmd === "pump") {
    const n = Number(a);
    const rate = Number(b);
    const t0 = performance.now();
    for (let i = 1; i <= n; i++) {
      const wait = t0 + (i * 1000) / rate - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      await set(i + 0.5);
    }
    console.log("pumped");
  } else if (cmd === "exit") process.exit(0);
}
