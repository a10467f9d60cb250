/**
 * bench/opcua-memory.ts: where the OPC UA listener's memory goes, stage by stage, in a fresh process
 * (run by bench/startup.ts; also on its own: `bun bench/opcua-memory.ts`). Prints RSS and JS heap after
 * each stage, with a full GC before each reading.
 */
import "reflect-metadata";
import { join } from "node:path";
import { scratchDir } from "./lib/scratch.ts";

const mb = (n: number) => (n / 1024 / 1024).toFixed(1).padStart(6);
let last = 0;
function stage(name: string) {
  Bun.gc(true);
  const { rss, heapUsed } = process.memoryUsage();
  console.log(`${name.padEnd(44)} RSS ${mb(rss)} MB (+${mb(rss - last)})   JS heap ${mb(heapUsed)} MB`);
  last = rss;
}

stage("bun, nothing loaded");
// the launcher imports the appliance's code when it starts one: loaded here, so this stage shows it alone
const { startApplianceHere } = await import("./lib/appliance.ts");
await Promise.all([import("../src/app.ts"), import("../src/config.ts"), import("../src/lib/logger.ts")]);
stage("appliance code loaded (aedes, Elysia, core)");
const dir = scratchDir("gatehouse-opcua-mem-");
const off = await startApplianceHere({ dataDir: join(dir, "a"), env: { GATEHOUSE_ADMIN_PASSWORD: "bench-password" } });
stage("HTTP + MQTT + VRPC listening (OPC UA off)");
await Promise.all([
  import("node-opcua-server"),
  import("node-opcua-certificate-manager"),
  import("node-opcua-address-space"),
]);
stage("node-opcua modules imported");
const { OPCUACertificateManager } = await import("node-opcua-certificate-manager");
const cm = new OPCUACertificateManager({ rootFolder: join(dir, "pki"), automaticallyAcceptUnknownCertificate: false });
await cm.initialize();
await cm.createSelfSignedCertificate({
  applicationUri: "urn:x",
  dns: ["localhost"],
  ip: ["127.0.0.1"],
  subject: "/CN=x",
  startDate: new Date(),
  validity: 365,
  outputFile: join(dir, "pki", "own", "certs", "x.pem"),
});
stage("PKI: certificate manager + key pair + certificate");
await off.stop();
const on = await startApplianceHere({
  dataDir: join(dir, "b"),
  ports: { opcua: 0 },
  env: { GATEHOUSE_ADMIN_PASSWORD: "bench-password" },
});
stage("whole appliance with OPC UA (nodeset address space, endpoints)");
await on.stop();
process.exit(0);
