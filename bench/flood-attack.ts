/**
 * bench/flood-attack.ts JSON: the stranger of findings F1/F2 (the attacker's pool_paced.py), in its own
 * process. JSON: { port, user, init, rate, perAddress, base }. Opens `init` MQTT sockets at once (1 ms
 * apart), then `rate` new ones a second; each sends a whole CONNECT for the real name `user` with a
 * random wrong password and waits for the answer; `perAddress` sockets per source address, from
 * 127.<base>.x.y (the per-pair limit is 10). A socket is closed once answered (CONNACK or close).
 * Prints `live L sent S connacks C eofs E` every 500 ms; SIGTERM closes every socket and ends it.
 */
import { connect, type Socket } from "node:net";
import { connectPacket } from "./lib/raw-mqtt.ts";

const { port, user, init, rate, perAddress, base } = JSON.parse(process.argv[2]!) as {
  port: number;
  user: string;
  init: number;
  rate: number;
  perAddress: number;
  base: number;
};
const live = new Set<Socket>();
let sent = 0;
let connacks = 0;
let eofs = 0;
let n = 0;
let stopping = false;

const one = () => {
  const a = Math.floor(n / perAddress);
  const localAddress = `127.${base}.${Math.floor(a / 250) % 250}.${(a % 250) + 1}`;
  const clientId = `f${base}_${a}_${n % perAddress}`;
  n++;
  const s = connect({ host: "127.0.0.1", port, localAddress });
  s.on("error", () => {});
  s.once("connect", () => {
    live.add(s);
    s.write(connectPacket(clientId, user, crypto.randomUUID()));
    sent++;
  });
  s.once("data", () => {
    connacks++;
    s.destroy();
  });
  s.once("close", () => {
    if (live.delete(s) && !stopping && s.bytesRead === 0) eofs++;
  });
};

for (let i = 0; i < init; i++) {
  one();
  if (i % 50 === 49) await Bun.sleep(50);
}
const timer = setInterval(one, 1000 / rate);
const report = setInterval(() => console.log(`live ${live.size} sent ${sent} connacks ${connacks} eofs ${eofs}`), 500);
process.on("SIGTERM", () => {
  stopping = true;
  clearInterval(timer);
  clearInterval(report);
  for (const s of live) s.destroy();
  console.log(`closed ${live.size}`);
  process.exit(0);
});
