/**
 * bench/admin-spray-server.ts DIR: the appliance (HTTP and MQTT, no OPC UA) on a fresh data dir with the
 * admin `admin` / `bench-admin-password` at the default argon2id cost (64 MiB). Prints `ready <httpPort>`.
 * In its own process so its peak RSS is its own.
 */
import { benchAdminEnv, startApplianceHere } from "./lib/appliance.ts";

const app = await startApplianceHere({ dataDir: process.argv[2]!, env: benchAdminEnv });
console.log(`ready ${app.address("http")!.port}`);
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
