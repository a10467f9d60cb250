/**
 * bench/http-server.ts: the whole appliance (OPC UA off) on free ports with one HTTP integration,
 * in its own process so the load generator's CPU is not counted. Prints `ready <httpPort> <user> <pass>`.
 */
import { createApp } from "../src/app.ts";
import { parseServeConfig } from "../src/config.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { scratchDir } from "./lib/scratch.ts";

const dir = scratchDir("gatehouse-bench-http-");
const config = parseServeConfig(
  [
    "--data-dir",
    dir,
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
    "--forward-auth-proxy",
    "nginx",
  ],
  { GATEHOUSE_ADMIN_PASSWORD: "bench-admin-password" },
);
const app = createApp(config, silentLogger);
await app.start();
const { password } = await app.core.credentials.create({ type: "http", username: "bench-device" });
const dash = await app.core.credentials.create({ type: "http", username: "bench-viewer" });
app.core.credentials.update(dash.integration.id, { subscribeAcl: ["/dashboard/#"] });
console.log(`ready ${app.address("http")!.port} bench-device ${password} bench-viewer ${dash.password}`);
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
