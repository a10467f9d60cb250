/**
 * What the benchmarks do with the processes they start: read their stdout line by line, start a
 * Mosquitto with a password file, read a process's memory and CPU time (and each thread's) from /proc.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { scratchDir } from "./scratch.ts";

/** lineReader: a child's stdout as lines; `until` waits for a pattern anywhere in what arrives. */
export function lineReader(stdout: ReadableStream<Uint8Array>) {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const more = async () => {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the process exited; it printed:\n${buf}`);
    buf += decoder.decode(value, { stream: true });
  };
  return {
    async next(): Promise<string> {
      for (;;) {
        const i = buf.indexOf("\n");
        if (i >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          return line;
        }
        await more();
      }
    },
    async until(pattern: RegExp): Promise<RegExpMatchArray> {
      for (;;) {
        const m = buf.match(pattern);
        if (m) {
          buf = buf.slice((m.index ?? 0) + m[0].length);
          return m;
        }
        await more();
      }
    },
    /** drain: keep reading and drop it, so a chatty child never blocks on a full pipe */
    drain() {
      void (async () => {
        for (;;) if ((await reader.read()).done) return;
      })().catch(() => undefined);
    },
  };
}

/** readyPort: the port a started process announces on stdout (`pattern`'s first group); the rest is drained. */
export async function readyPort(proc: Bun.Subprocess<"ignore", "pipe", "inherit">, pattern: RegExp): Promise<number> {
  const out = lineReader(proc.stdout);
  const port = Number((await out.until(pattern))[1]);
  out.drain();
  return port;
}

/** freePort: a loopback port nothing listens on now, for a server started by its own config. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function portOpen(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (open) return;
    await Bun.sleep(25);
  }
  throw new Error(`port ${port} never opened`);
}

export const hasMosquitto = () => Bun.which("mosquitto") !== null && Bun.which("mosquitto_passwd") !== null;

/** mosquittoPasswordFile: these users in a Mosquitto password file, hashed by `mosquitto_passwd -U` (timed) */
export function mosquittoPasswordFile(creds: { username: string; password: string }[]): {
  file: string;
  passwdMs: number;
} {
  const file = join(scratchDir("bench-mosquitto-"), "passwd");
  writeFileSync(file, `${creds.map((c) => `${c.username}:${c.password}`).join("\n")}\n`);
  const t = performance.now();
  Bun.spawnSync(["mosquitto_passwd", "-U", file]);
  return { file, passwdMs: performance.now() - t };
}

/**
 * startMosquitto: Mosquitto 2 on loopback with these users in a password file (hashed by
 * `mosquitto_passwd -U`, timed: the import figure), no anonymous access, no connection limit.
 */
export async function startMosquitto(creds: { username: string; password: string }[]) {
  const { file, passwdMs } = mosquittoPasswordFile(creds);
  const port = await freePort();
  const conf = join(scratchDir("bench-mosquitto-"), "mosquitto.conf");
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${file}\nmax_connections -1\nuser root\n`,
  );
  const proc = Bun.spawn(["mosquitto", "-c", conf], { stdout: "ignore", stderr: "ignore" });
  await portOpen(port);
  return { port, pid: proc.pid, passwdMs, stop: () => stop(proc) };
}

export async function stop(proc: Bun.Subprocess): Promise<void> {
  proc.kill("SIGTERM");
  await proc.exited;
}

/** the kernel's clock tick for CPU times in /proc (USER_HZ) */
const tickMs = 1000 / 100;

/** statFields: the fields of a /proc .../stat line after the command name (field 3 of proc(5) is [0]) */
const statFields = (text: string) => text.slice(text.lastIndexOf(")") + 2).split(" ");

/** cpuMs: the CPU time (user and system) a process has used so far, in ms */
export async function cpuMs(pid: number): Promise<number> {
  const f = statFields(await Bun.file(`/proc/${pid}/stat`).text());
  return (Number(f[11]) + Number(f[12])) * tickMs;
}

/**
 * threadCpuMs: the CPU time (ms) each thread of a process has used so far, by thread id, with its name
 * (e.g. "Worker", "JSCWarmUp", "HeapHelper", "mi-scavenger"); a thread that ended meanwhile is left out.
 */
export async function threadCpuMs(pid: number): Promise<Map<number, { name: string; ms: number }>> {
  const out = new Map<number, { name: string; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const text = await Bun.file(`/proc/${pid}/task/${tid}/stat`).text();
      const f = statFields(text);
      const name = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
      out.set(Number(tid), { name, ms: (Number(f[11]) + Number(f[12])) * tickMs });
    } catch {
      // gone between the listing and the read
    }
  }
  return out;
}

/** statusMiB: a memory line of /proc/<pid>/status (VmRSS now, VmHWM the peak), in MiB */
export async function statusMiB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const m = (await Bun.file(`/proc/${pid}/status`).text()).match(new RegExp(`${field}:\\s+(\\d+)`));
  return Number(m?.[1] ?? 0) / 1024;
}
