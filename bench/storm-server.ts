/**
 * bench/storm-server.ts DIR: the appliance (MQTT only) on a data dir made by bench/storm.ts. Prints
 * `ready <mqttPort>`. In its own process so its peak RSS is its own.
 */
import { createApp } from "../src/app.ts";
import { parseServeConfig } from "../src/config.ts";
import { silentLogger } from "../src/lib/logger.ts";

const config = parseServeConfig(
  [
    "--data-dir",
    process.argv[2]!,
    "--bind",
    "127.0.0.1",
    "--http-port",
    "0",
    "--https-port",
    "off",
    "--mqtt-port",
    "0",
    "--mqtts-port",
    "off",
    "--opcua-port",
    "off",
  ],
  {},
);
const app = createApp(config, silentLogger);
await app.start();
console.log(`ready ${app.address("mqtt")!.port}`);
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
