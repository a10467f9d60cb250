/**
 * How the benchmarks start the appliance: the `serve` flags (loopback, each listener's port or `off`), in
 * this process (`startApplianceHere`, for the *-server.ts children whose CPU and memory are their own) or as
 * a child process, the compiled binary or the source (`launchAppliance`), waiting for its `ready` line.
 * Nothing here is imported from src/ until a launcher runs: bench/opcua-memory.ts measures a bare Bun first.
 */
import { join } from "node:path";
import type { App } from "../../src/app.ts";
import { lineReader } from "./procs.ts";

/** Listener: the listeners a benchmark gives a port (or turns off). */
export type Listener = "http" | "https" | "mqtt" | "mqtts" | "opcua";
/** PortSetting: a port number (0: any free one, read back from the appliance) or `off`. */
export type PortSetting = number | "off";
/** Ports: each listener's port; a listener not named: HTTP and MQTT on a free port, the others off. */
export type Ports = Partial<Record<Listener, PortSetting>>;

const defaultPorts: Record<Listener, PortSetting> = { http: 0, https: "off", mqtt: 0, mqtts: "off", opcua: "off" };
const listeners: Listener[] = ["http", "https", "mqtt", "mqtts", "opcua"];

/** benchAdminEnv: the environment that makes the admin `admin` / `bench-admin-password` at the first start. */
export const benchAdminEnv = { GATEHOUSE_ADMIN_PASSWORD: "bench-admin-password" };

/** ApplianceOptions: where the appliance keeps its data, its ports, and any further `serve` flags. */
export interface ApplianceOptions {
  dataDir: string;
  ports?: Ports;
  /** args: further `serve` flags, after the ports (e.g. `--forward-auth-proxy nginx`) */
  args?: string[];
}

/** serveArgs: the `serve` flags of a benchmark's appliance: its data dir, bound to 127.0.0.1, its ports. */
export function serveArgs({ dataDir, ports = {}, args = [] }: ApplianceOptions): string[] {
  const set = { ...defaultPorts, ...ports };
  return [
    "--data-dir",
    dataDir,
    "--bind",
    "127.0.0.1",
    ...listeners.flatMap((l) => [`--${l}-port`, String(set[l])]),
    ...args,
  ];
}

/**
 * startApplianceHere: the appliance in this process, started, with a silent log. `env` is what its
 * configuration reads besides the flags (e.g. GATEHOUSE_ADMIN_PASSWORD: an admin then costs a hash at start).
 */
export async function startApplianceHere(opts: ApplianceOptions & { env?: Record<string, string> }): Promise<App> {
  const [{ createApp }, { parseServeConfig }, { silentLogger }] = await Promise.all([
    import("../../src/app.ts"),
    import("../../src/config.ts"),
    import("../../src/lib/logger.ts"),
  ]);
  const app = createApp(parseServeConfig(serveArgs(opts), opts.env ?? {}), silentLogger);
  await app.start();
  return app;
}

/** Launched: a started appliance process: the ports its listeners announced, when, and how to stop it. */
export interface Launched {
  proc: Bun.Subprocess<"ignore", "pipe", "inherit">;
  pid: number;
  /** ports: each listener's port as its `listening` line said */
  ports: Partial<Record<Listener, number>>;
  /** listenedMs: ms from the spawn to each listener's `listening` line */
  listenedMs: Partial<Record<Listener, number>>;
  /** readyMs: ms from the spawn to the `ready` line */
  readyMs: number;
  /** stop: SIGTERM, then its exit code */
  stop(): Promise<number>;
}

const root = join(import.meta.dir, "..", "..");

/**
 * launchAppliance: `serve` as a child process, the compiled `binary` or (without one) the source through
 * `bun src/main.ts`; resolves at its `ready` line with the ports it announced, and drains the rest of its
 * output. Its environment: PATH, HOME (`cwd`, or this process's) and the admin password
 * `bench-admin-password`, with `env` over them; `cwd`: where it runs (default: here).
 */
export async function launchAppliance(
  opts: ApplianceOptions & { binary?: string; env?: Record<string, string | undefined>; cwd?: string },
): Promise<Launched> {
  const command = opts.binary ? [opts.binary, "serve"] : ["bun", join(root, "src", "main.ts"), "serve"];
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: opts.cwd ?? process.env.HOME ?? "",
    ...benchAdminEnv,
    ...opts.env,
  };
  const t0 = performance.now();
  const proc = Bun.spawn([...command, ...serveArgs(opts)], {
    cwd: opts.cwd,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  const out = lineReader(proc.stdout);
  const ports: Launched["ports"] = {};
  const listenedMs: Launched["listenedMs"] = {};
  for (;;) {
    const line = await out.next();
    const m = line.match(/ listener=(\w+) address=\S*:(\d+)/);
    if (m && line.includes("listening")) {
      ports[m[1] as Listener] = Number(m[2]);
      listenedMs[m[1] as Listener] = performance.now() - t0;
    }
    if (line.includes("info ready")) break;
  }
  const readyMs = performance.now() - t0;
  out.drain();
  return {
    proc,
    pid: proc.pid,
    ports,
    listenedMs,
    readyMs,
    stop: () => {
      proc.kill("SIGTERM");
      return proc.exited;
    },
  };
}
