/**
 * bun run bench:opcua: the OPC UA listener against node-opcua's own server with its defaults
 * (anonymous, no permission checks) in the same run, each in its own process (bench/opcua-server.ts),
 * node-opcua-client here. Reads of one variable with 10 in flight, and an exception-based monitored
 * item (sampling 0) fed 1 000 changes per second: how many arrive, after how long, and the server's
 * CPU per read and per change. Gatehouse logs in with a username token and checks the read permission
 * on every value it serves; the baseline does neither. Loopback only.
 */
import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import {
  AttributeIds,
  ClientMonitoredItem,
  ClientSubscription,
  type DataValue,
  MessageSecurityMode,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
} from "node-opcua-client";
import { lineReader } from "./lib/procs.ts";
import { fmt, median, report, type Row } from "./lib/report.ts";
import { scratchDir } from "./lib/scratch.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const READS = Number(process.env.BENCH_READS ?? 5000);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 3000);
const RATE = 1000;
const nodeId = "ns=1;s=Topics/bench/value";

async function startServer(mode: "baseline" | "gatehouse") {
  const proc = Bun.spawn(["bun", join(import.meta.dir, "opcua-server.ts"), mode], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const out = lineReader(proc.stdout);
  /** ask: a command, then its answer (node-opcua's own log lines on stdout are skipped) */
  const ask = async (cmd: string, answer: RegExp) => {
    proc.stdin.write(`${cmd}\n`);
    return out.until(answer);
  };
  const port = Number((await out.until(/^ready (\d+)\n/m))[1]);
  return {
    port,
    cpuMs: async () => Number((await ask("cpu", /^cpu (\d+)\n/m))[1]) / 1000,
    pump: (n: number, rate: number) => ask(`pump ${n} ${rate}`, /^pumped\n/m),
    stop: async () => {
      proc.stdin.write("exit\n");
      await proc.exited;
    },
  };
}

async function measure(mode: "baseline" | "gatehouse") {
  const server = await startServer(mode);
  const pki = scratchDir("bench-opcua-client-");
  const client = OPCUAClient.create({
    applicationName: "GatehouseBench",
    applicationUri: `urn:gatehouse-bench:${mode}`,
    endpointMustExist: false,
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: new OPCUACertificateManager({
      rootFolder: join(pki, "pki"),
      automaticallyAcceptUnknownCertificate: true,
    }),
  });
  try {
    await client.connect(`opc.tcp://127.0.0.1:${server.port}`);
    const session = await client.createSession(
      mode === "gatehouse"
        ? { type: UserTokenType.UserName, userName: "bench-scada", password: "bench-scada-password" }
        : { type: UserTokenType.Anonymous },
    );
    const read = () => session.read({ nodeId, attributeId: AttributeIds.Value });
    for (let i = 0; i < 500; i++) await read(); // warm
    const first = await read();
    if (first.statusCode.name !== "Good") throw new Error(`${mode}: read ${first.statusCode.name}`);

    let cpu0 = await server.cpuMs();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next++ < READS) await read();
      }),
    );
    const readsPerSec = (READS / (performance.now() - t0)) * 1000;
    const cpuPerRead = ((await server.cpuMs()) - cpu0) / READS;

    const sub = ClientSubscription.create(session, {
      requestedPublishingInterval: 50,
      requestedMaxKeepAliveCount: 20,
      publishingEnabled: true,
      maxNotificationsPerPublish: 1000,
    });
    const item = ClientMonitoredItem.create(
      sub,
      { nodeId, attributeId: AttributeIds.Value },
      { samplingInterval: 0, discardOldest: false, queueSize: 10_000 },
      TimestampsToReturn.Both,
    );
    const arrived = new Set<number>();
    const lag: number[] = [];
    item.on("changed", (dv: DataValue) => {
      const v = dv.value.value as number;
      if (typeof v === "number" && v % 1 === 0.5 && !arrived.has(v)) {
        arrived.add(v);
        const source = dv.sourceTimestamp?.getTime();
        if (source) lag.push(Date.now() - source);
      }
    });
    await new Promise<void>((resolve) => item.once("initialized", () => resolve()));
    cpu0 = await server.cpuMs();
    await server.pump(CHANGES, RATE);
    const until = Date.now() + 5000;
    while (arrived.size < CHANGES && Date.now() < until) await Bun.sleep(20);
    const cpuPerChange = ((await server.cpuMs()) - cpu0) / CHANGES;
    await sub.terminate();
    await session.close();
    lag.sort((a, b) => a - b);
    return {
      readsPerSec,
      cpuPerRead,
      delivered: arrived.size / CHANGES,
      cpuPerChange,
      lagP50: lag[Math.floor(lag.length / 2)] ?? NaN,
    };
  } finally {
    await client.disconnect().catch(() => undefined);
    await server.stop();
  }
}

type Result = Awaited<ReturnType<typeof measure>>;
const runs: Record<"baseline" | "gatehouse", Result[]> = { baseline: [], gatehouse: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of ["baseline", "gatehouse"] as const) runs[mode].push(await measure(mode));
}
const med = (mode: "baseline" | "gatehouse", k: keyof Result) => median(runs[mode].map((r) => r[k]));
const base = "node-opcua server, anonymous";
const rows: Row[] = [
  {
    bench: "OPC UA",
    measure: "reads of one variable, 10 in flight",
    baselineName: base,
    baseline: `${fmt(med("baseline", "readsPerSec"))}/s`,
    gatehouse: `${fmt(med("gatehouse", "readsPerSec"))}/s`,
    ratio: med("gatehouse", "readsPerSec") / med("baseline", "readsPerSec"),
  },
  {
    bench: "OPC UA",
    measure: "server CPU per read",
    baselineName: base,
    baseline: `${fmt(med("baseline", "cpuPerRead") * 1000)} us`,
    gatehouse: `${fmt(med("gatehouse", "cpuPerRead") * 1000)} us`,
    ratio: med("baseline", "cpuPerRead") / med("gatehouse", "cpuPerRead"),
  },
  {
    bench: "OPC UA",
    measure: `monitored item, sampling 0, ${fmt(RATE)} changes/s: changes delivered`,
    baselineName: base,
    baseline: `${fmt(med("baseline", "delivered") * 100, 1)} %`,
    gatehouse: `${fmt(med("gatehouse", "delivered") * 100, 1)} %`,
    ratio: med("gatehouse", "delivered") / med("baseline", "delivered"),
    goal: "every change",
  },
  {
    bench: "OPC UA",
    measure: "server CPU per change (to one monitored item)",
    baselineName: base,
    baseline: `${fmt(med("baseline", "cpuPerChange") * 1000)} us`,
    gatehouse: `${fmt(med("gatehouse", "cpuPerChange") * 1000)} us`,
    ratio: med("baseline", "cpuPerChange") / med("gatehouse", "cpuPerChange"),
  },
  {
    bench: "OPC UA",
    measure: "change -> client, p50 (50 ms publishing interval)",
    baselineName: base,
    baseline: `${fmt(med("baseline", "lagP50"))} ms`,
    gatehouse: `${fmt(med("gatehouse", "lagP50"))} ms`,
    ratio: med("baseline", "lagP50") / med("gatehouse", "lagP50"),
  },
];
console.log(
  `\nOPC UA: ${fmt(READS)} reads, ${fmt(CHANGES)} changes at ${fmt(RATE)}/s; medians of ${ROUNDS} interleaved rounds; Gatehouse's values come from MQTT topics through its bus\n`,
);
report(rows);
process.exit(0);
