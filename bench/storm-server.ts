/**
 * bench/storm-server.ts DIR: the appliance (MQTT only) on a data dir made by bench/storm.ts. Prints
 * `ready <mqttPort>`. In its own process so its peak RSS is its own.
 */
import { startApplianceHere } from "./lib/appliance.ts";

const app = await startApplianceHere({ dataDir: process.argv[2]! });
console.log(`ready ${app.address("mqtt")!.port}`);
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
