/**
 * bench/bare-aedes.ts: aedes with its defaults (no authentication), nothing else imported, so its
 * memory is aedes' own. bench/brokers.ts compiles it like the appliance (`bun build --compile
 * --minify`) and runs it as the baseline. Prints `ready <port>`.
 */
import { Aedes } from "aedes";
import { createServer } from "node:net";

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
server.listen(0, "127.0.0.1", () => console.log(`ready ${(server.address() as { port: number }).port}`));
process.on("SIGTERM", () => process.exit(0));
