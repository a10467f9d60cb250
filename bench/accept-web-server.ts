/**
 * bench/accept-web-server.ts MODE: the admin web app alone on a free loopback port, MODE `front`
 * (the accept front owns the port and passes bytes to Bun.serve on another, as the appliance runs)
 * or `direct` (Bun.serve binds the port itself, no accept pool). Prints `ready <port>`.
 */
import { AcceptPool } from "../src/core/accept-pool.ts";
import { createCore } from "../src/core/index.ts";
import { openDataDir } from "../src/db/data-dir.ts";
import { silentLogger } from "../src/lib/logger.ts";
import { acceptsTable } from "../src/listeners/index.ts";
import { createWebApp, defaultMaxBodyBytes } from "../src/web/app.tsx";
import { createWebServer } from "../src/web/server.ts";
import { scratchDir } from "./lib/scratch.ts";

const front = process.argv[2] === "front";
const core = createCore(openDataDir(scratchDir("gatehouse-bench-front-")), silentLogger, { accepts: acceptsTable() });
core.start();
const web = createWebApp(core, silentLogger, {
  version: "bench",
  mounts: [],
  readiness: () => ({ ready: true, reasons: [] }),
});
const server = createWebServer(web, {
  host: "127.0.0.1",
  httpPort: 0,
  httpsPort: null,
  maxBodyBytes: defaultMaxBodyBytes,
  ...(front ? { pool: new AcceptPool({ capacity: 2000, timeoutMs: 10_000 }) } : {}),
});
await server.start();
console.log(`ready ${server.address("http")!.port}`);
process.on("SIGTERM", () => server.stop().then(() => process.exit(0)));
