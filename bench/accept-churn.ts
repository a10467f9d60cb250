/**
 * bench/accept-churn.ts JSON: strangers holding idle sockets, in their own process (their fds are not
 * the server's). JSON: { ports, addresses, perAddress, reopen }. Each address keeps `perAddress` idle
 * sockets open on each port (connect, then send nothing); with `reopen` it opens a new one whenever
 * the server closes one (churn), without it each socket is opened once. Prints `opened N closed M`
 * every 500 ms; SIGTERM ends it.
 */
import { connect } from "node:net";

const { ports, addresses, perAddress, reopen } = JSON.parse(process.argv[2]!) as {
  ports: number[];
  addresses: string[];
  perAddress: number;
  reopen: boolean;
};
let opened = 0;
let closedByServer = 0;
let failed = 0;
let stopping = false;
const keep = (port: number, localAddress: string) => {
  if (stopping) return;
  const s = connect({ host: "127.0.0.1", port, localAddress });
  s.on("error", () => {});
  s.once("connect", () => opened++);
  s.once("close", (hadError) => {
    if (stopping) return;
    if (s.bytesRead === 0 && !s.connecting) closedByServer++;
    if (hadError && opened === 0) failed++;
    if (reopen) setImmediate(() => keep(port, localAddress));
  });
};
for (const port of ports) for (const a of addresses) for (let i = 0; i < perAddress; i++) keep(port, a);
setInterval(() => console.log(`opened ${opened} closed ${closedByServer} failed ${failed}`), 500);
process.on("SIGTERM", () => {
  stopping = true;
  process.exit(0);
});
