/**
 * bun run bench:vrpc: VRPC calls per second from a VrpcClient to a VrpcAgent through the Gatehouse
 * broker, against the same pair through a bare aedes broker (no auth) in the same run, as ratios, with
 * p50/p99 call latency. Each broker runs in its own process (bench/broker.ts); agent and client here.
 */
// @ts-expect-error vrpc is CommonJS without types
import { VrpcAdapter, VrpcAgent, VrpcClient } from "vrpc";
import { fmt, report } from "./lib/report.ts";

const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const WIDTH = Number(process.env.BENCH_WIDTH ?? 20);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

class Adder {
  static add(a: number, b: number) {
    return a + b;
  }
}
VrpcAdapter.register(Adder);

async function startBroker(mode: "baseline" | "gatehouse") {
  const proc = Bun.spawn(["bun", "bench/broker.ts", mode, "1"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let line = "";
  while (!line.includes("\n")) line += new TextDecoder().decode((await reader.read()).value);
  return { port: Number(line.trim().split(" ")[1]), stop: () => proc.kill() };
}

async function measure(mode: "baseline" | "gatehouse") {
  const broker = await startBroker(mode);
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const agent = new VrpcAgent({
    broker: url,
    domain: "bench",
    agent: "agent",
    username: "bench/agent",
    password: "bench-agent-password",
    log: quiet,
  });
  await agent.serve();
  const client = new VrpcClient({
    broker: url,
    domain: "bench",
    username: "bench/client",
    password: "bench-client-password",
    log: quiet,
    timeout: 10_000,
  });
  await client.connect();
  const call = () => client.callStatic({ agent: "agent", className: "Adder", functionName: "add", args: [1, 2] });
  for (let i = 0; i < 100; i++) await call(); // warm up
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: WIDTH }, async () => {
      while (next++ < CALLS) {
        const t = performance.now();
        if ((await call()) !== 3) throw new Error("wrong answer");
        latencies.push(performance.now() - t);
      }
    }),
  );
  const rate = CALLS / ((performance.now() - start) / 1000);
  latencies.sort((a, b) => a - b);
  await client.end();
  await agent.end();
  broker.stop();
  return {
    rate,
    p50: latencies[Math.floor(latencies.length / 2)]!,
    p99: latencies[Math.floor(latencies.length * 0.99)]!,
  };
}

const best = {
  baseline: { rate: 0, p50: Infinity, p99: Infinity },
  gatehouse: { rate: 0, p50: Infinity, p99: Infinity },
};
for (let round = 0; round < 3; round++) {
  for (const mode of ["baseline", "gatehouse"] as const) {
    const r = await measure(mode);
    const b = best[mode];
    b.rate = Math.max(b.rate, r.rate);
    b.p50 = Math.min(b.p50, r.p50);
    b.p99 = Math.min(b.p99, r.p99);
  }
}
console.log(
  `VRPC: ${CALLS} calls, ${WIDTH} in flight, VrpcClient -> broker -> VrpcAgent; brokers alternate; best of 3\n`,
);
const { baseline: b, gatehouse: g } = best;
console.log(
  `calls per second        baseline ${b.rate.toFixed(0).padStart(6)}  gatehouse ${g.rate.toFixed(0).padStart(6)}  ratio ${(g.rate / b.rate).toFixed(2)}x`,
);
console.log(
  `call latency p50 (ms)   baseline ${b.p50.toFixed(2).padStart(6)}  gatehouse ${g.p50.toFixed(2).padStart(6)}  ratio ${(b.p50 / g.p50).toFixed(2)}x`,
);
console.log(
  `call latency p99 (ms)   baseline ${b.p99.toFixed(2).padStart(6)}  gatehouse ${g.p99.toFixed(2).padStart(6)}  ratio ${(b.p99 / g.p99).toFixed(2)}x`,
);
console.log("(ratio > 1 means Gatehouse is faster; goal for calls per second >= 0.9x)\n");
report([
  {
    bench: "VRPC",
    measure: `calls, ${WIDTH} in flight`,
    baselineName: "bare aedes, no auth",
    baseline: `${fmt(b.rate)}/s`,
    gatehouse: `${fmt(g.rate)}/s`,
    ratio: g.rate / b.rate,
    goal: ">= 0.9x",
  },
  {
    bench: "VRPC",
    measure: "call latency p50 / p99",
    baselineName: "bare aedes, no auth",
    baseline: `${fmt(b.p50, 2)} / ${fmt(b.p99, 2)} ms`,
    gatehouse: `${fmt(g.p50, 2)} / ${fmt(g.p99, 2)} ms`,
    ratio: b.p50 / g.p50,
  },
]);
process.exit(0);
