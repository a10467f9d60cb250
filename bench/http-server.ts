/**
 * bench/http-server.ts: the whole appliance (OPC UA off) on free ports with one HTTP integration,
 * in its own process so the load generator's CPU is not counted. Prints `ready <httpPort> <user> <pass>`.
 */
import { benchAdminEnv, startApplianceHere } from "./lib/appliance.ts";
import { scratchDir } from "./lib/scratch.ts";

const dir = scratchDir("gatehouse-bench-http-");
const app = await startApplianceHere({ dataDir: dir, args: ["--forward-auth-proxy", "nginx"], env: benchAdminEnv });
const { password } = await app.core.credentials.create({ type: "http", username: "bench-device" });
const dash = await app.core.credentials.create({ type: "http", username: "bench-viewer" });
app.core.credentials.update(dash.integration.id, { subscribeAcl: ["/dashboard/#"] });
console.log(`ready ${app.address("http")!.port} bench-device ${password} bench-viewer ${dash.password}`);
process.on("SIGTERM", () => app.stop().then(() => process.exit(0)));
