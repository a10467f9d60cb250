/**
 * bench/evict-attack.ts JSON: the stranger of finding F3 (the attacker's evict.py), in its own process.
 * JSON: { port, connections, perAddress }. Opens `connections` keep-alive HTTP connections without
 * credentials, `perAddress` per source address (127.50.x.y), each sending GET /healthz at once and then
 * every 4 s, and opens a new one whenever the server closes one. Prints `open O reopened R` every
 * 500 ms; SIGTERM ends it.
 */
import { connect, type Socket } from "node:net";

const { port, connections, perAddress } = JSON.parse(process.argv[2]!) as {
  port: number;
  connections: number;
  perAddress: number;
};
const request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const open = new Set<Socket>();
let reopened = 0;
let stopping = false;

const keep = (i: number, first: boolean) => {
  if (stopping) return;
  const a = Math.floor(i / perAddress);
  const localAddress = `127.50.${Math.floor(a / 250) % 250}.${(a % 250) + 1}`;
  const s = connect({ host: "127.0.0.1", port, localAddress });
  s.on("error", () => {});
  s.on("data", () => {});
  s.once("connect", () => {
    open.add(s);
    if (!first) reopened++;
    s.write(request);
  });
  s.once("close", () => {
    open.delete(s);
    if (!stopping) setTimeout(() => keep(i, false), 50);
  });
};

for (let i = 0; i < connections; i++) {
  keep(i, true);
  if (i % 100 === 99) await Bun.sleep(50);
}
const timer = setInterval(() => {
  for (const s of open) s.write(request);
}, 4000);
const report = setInterval(() => console.log(`open ${open.size} reopened ${reopened}`), 500);
process.on("SIGTERM", () => {
  stopping = true;
  clearInterval(timer);
  clearInterval(report);
  for (const s of open) s.destroy();
  process.exit(0);
});
