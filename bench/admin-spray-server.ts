/**
 * bench/admin-spray-server.ts DIR: the appliance (HTTP and MQTT, no OPC UA) on a fresh data dir with the
 * admin `admin` / `bench-admin-password` at the default argon2id cost (64 MiB). Prints `ready <httpPort>`.
 * In its own process so its peak RSS is its own.
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
  { GATEHOUSE_ADMIN_PASSWORD: "bench-admin-password" },
);
const app = createApp(config, silentLogger);
await app.start();
console.log(`ready ${app.address("http")!.port}`);
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
