import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";

/**
 * Real brokers upstream of an uplink, started by the tests: Debian's Mosquitto 2 and a three-node NATS
 * JetStream cluster with an `mqtt { }` block on each node (NATS speaks MQTT 3.1.1, QoS 0/1), plus a TCP
 * proxy that can cut the network (drop every connection, refuse new ones) and restore it.
 */

/** freePort: a loopback port nothing listens on now (for servers started by their own config file). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** portOpen: resolves once something accepts on the port. */
export async function portOpen(port: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (open) return;
    await Bun.sleep(50);
  }
  throw new Error(`port ${port} never opened`);
}

/** sbin: Debian puts the brokers in /usr/sbin, which a user's PATH may lack */
const sbin = (name: string) => Bun.which(name) ?? `/usr/sbin/${name}`;

const dirs: string[] = [];
const procs: Bun.Subprocess[] = [];

/** stopUpstreams: every broker and folder these helpers started (afterAll). */
export async function stopUpstreams(): Promise<void> {
  for (const p of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

function scratch(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export interface Mosquitto {
  port: number;
  /** MQTT over WebSockets, when asked for */
  wsPort?: number;
  stop(): Promise<void>;
}

/**
 * startMosquitto: Mosquitto 2 on loopback. `users` makes it refuse anonymous clients; persistence in a
 * scratch folder (a persistent session survives a restart on the same port with `restart`).
 */
export async function startMosquitto(
  opts: { users?: { username: string; password: string }[]; websockets?: boolean; port?: number } = {},
): Promise<Mosquitto & { restart(): Promise<void> }> {
  const dir = scratch("gatehouse-mosquitto-");
  const port = opts.port ?? (await freePort());
  const wsPort = opts.websockets ? await freePort() : undefined;
  const lines = [`listener ${port} 127.0.0.1`, "max_connections -1", "user root", "max_queued_messages 1000000"];
  if (wsPort) lines.push(`listener ${wsPort} 127.0.0.1`, "protocol websockets");
  if (opts.users) {
    const file = join(dir, "passwd");
    writeFileSync(file, `${opts.users.map((u) => `${u.username}:${u.password}`).join("\n")}\n`);
    Bun.spawnSync([sbin("mosquitto_passwd"), "-U", file]);
    lines.push("allow_anonymous false", `password_file ${file}`);
  } else lines.push("allow_anonymous true");
  lines.push("persistence true", `persistence_location ${dir}/`);
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, `${lines.join("\n")}\n`);
  let proc: Bun.Subprocess | undefined;
  const launch = async () => {
    proc = Bun.spawn([sbin("mosquitto"), "-c", conf], { stdout: "ignore", stderr: "ignore" });
    procs.push(proc);
    await portOpen(port);
    if (wsPort) await portOpen(wsPort);
  };
  await launch();
  const stop = async () => {
    if (!proc) return;
    proc.kill("SIGTERM");
    await proc.exited;
    proc = undefined;
  };
  return { port, wsPort, stop, restart: async () => (await stop(), await launch()) };
}

export interface NatsCluster {
  /** each node's MQTT port */
  mqttPorts: number[];
  /** kill: SIGKILL one node */
  kill(i: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * startNatsCluster: three nats-server nodes on loopback routed to each other, each with JetStream (MQTT
 * sessions, retained messages and QoS 1 live in replicated streams) and an MQTT listener. The first MQTT
 * connect creates those streams; this waits until a client can subscribe and receive through node 0.
 */
export async function startNatsCluster(n = 3): Promise<NatsCluster> {
  const dir = scratch("gatehouse-nats-");
  const ports = await Promise.all(
    Array.from({ length: n }, async () => [await freePort(), await freePort(), await freePort()]),
  );
  const routes = ports.map(([, cluster]) => `nats-route://127.0.0.1:${cluster}`).join(", ");
  const nodes: (Bun.Subprocess | undefined)[] = [];
  for (const [i, [client, cluster, mqttPort]] of ports.entries()) {
    const conf = join(dir, `n${i}.conf`);
    writeFileSync(
      conf,
      `server_name: n${i}
listen: 127.0.0.1:${client}
jetstream { store_dir: "${dir}/js${i}" }
cluster { name: gatehouse-test, listen: 127.0.0.1:${cluster}, routes: [${routes}] }
mqtt { listen: 127.0.0.1:${mqttPort} }
`,
    );
    const p = Bun.spawn([sbin("nats-server"), "-c", conf], { stdout: "ignore", stderr: "ignore" });
    procs.push(p);
    nodes.push(p);
  }
  const mqttPorts = ports.map((p) => p[2]!);
  for (const p of mqttPorts) await portOpen(p);
  // A fresh cluster elects its JetStream leaders and makes the MQTT streams at the first connects.
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const sub = await mqttClient(mqttPorts[0]!, { clientId: "probe-sub", clean: true });
      await sub.subscribeAsync("probe/#", { qos: 1 });
      const pub = await mqttClient(mqttPorts[1]!, { clientId: "probe-pub", clean: true });
      const got = new Promise<boolean>((resolve) => {
        sub.on("message", () => resolve(true));
        setTimeout(() => resolve(false), 3000);
      });
      await pub.publishAsync("probe/x", "1", { qos: 1 });
      const ok = await got;
      await pub.endAsync();
      await sub.endAsync();
      if (ok) break;
    } catch {
      // not ready yet
    }
    if (Date.now() > until) throw new Error("the NATS cluster never took an MQTT client");
    await Bun.sleep(500);
  }
  return {
    mqttPorts,
    async kill(i) {
      const p = nodes[i];
      if (!p) return;
      p.kill("SIGKILL");
      await p.exited;
      nodes[i] = undefined;
    },
    async stop() {
      for (const p of nodes) p?.kill("SIGTERM");
      await Promise.all(nodes.map((p) => p?.exited));
    },
  };
}

/** mqttClient: a real mqtt.js client, connected (no reconnects of its own). */
export function mqttClient(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: "127.0.0.1", port, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once("connect", () => resolve(c));
    c.once("error", (err) => {
      c.end(true);
      reject(err);
    });
    c.once("close", () => reject(new Error("closed before CONNACK")));
  });
}

/** Received: what a subscriber upstream got, in arrival order. */
export interface Received {
  messages: { topic: string; payload: string; retain: boolean }[];
  /** resolves once `pred` holds for what arrived (checked at most every 25 ms while messages arrive, so a
   * predicate that walks every message stays linear in a long drain, not quadratic) */
  until(pred: (m: Received["messages"]) => boolean, timeoutMs?: number): Promise<void>;
}

/** collect: a subscriber's messages on `filter`. */
export async function collect(client: MqttClient, filter: string, qos: 0 | 1 = 1): Promise<Received> {
  const messages: Received["messages"] = [];
  const waiters: { pred: (m: Received["messages"]) => boolean; resolve: () => void }[] = [];
  let check: ReturnType<typeof setTimeout> | undefined;
  const checkWaiters = () => {
    check = undefined;
    for (const w of waiters.splice(0)) w.pred(messages) ? w.resolve() : waiters.push(w);
  };
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString(), retain: packet.retain });
    if (waiters.length > 0 && !check) check = setTimeout(checkWaiters, 25);
  });
  await client.subscribeAsync(filter, { qos });
  return {
    messages,
    until: (pred, timeoutMs = 30_000) =>
      new Promise<void>((resolve, reject) => {
        if (pred(messages)) return resolve();
        const timer = setTimeout(
          () => reject(new Error(`not arrived within ${timeoutMs} ms; got ${messages.length} messages`)),
          timeoutMs,
        );
        waiters.push({ pred, resolve: () => (clearTimeout(timer), resolve()) });
      }),
  };
}

export interface TcpProxy {
  port: number;
  /** cut: every connection through it dropped, new ones refused (the listener closed) */
  cut(): Promise<void>;
  /** restore: connections pass again */
  restore(): Promise<void>;
  /** retarget: later connections go to another port */
  retarget(port: number): void;
  close(): Promise<void>;
}

/** tcpProxy: loopback port -> `target`, cut and restored by the test (a WAN outage in miniature). */
export async function tcpProxy(target: number): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let to = target;
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((down) => {
        const up = connect(to, "127.0.0.1");
        sockets.add(down);
        sockets.add(up);
        const end = () => {
          down.destroy();
          up.destroy();
          sockets.delete(down);
          sockets.delete(up);
        };
        down.on("error", end).on("close", end);
        up.on("error", end).on("close", end);
        down.pipe(up);
        up.pipe(down);
      });
      server.listen(port, "127.0.0.1", () => resolve());
    });
  await listen();
  const closeServer = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      s.close(() => resolve());
      for (const so of sockets) so.destroy();
      sockets.clear();
    });
  return {
    port,
    cut: closeServer,
    restore: async () => {
      if (!server) await listen();
    },
    retarget: (p) => {
      to = p;
    },
    close: closeServer,
  };
}
