import { join } from "node:path";

const main = join(import.meta.dir, "../../src/main.ts");
const root = join(import.meta.dir, "../..");

/** CliResult: what a CLI run said and how it ended. */
export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** runCli: `gatehouse ARGS` from source, to its end (stdin closed unless given). */
export async function runCli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
  const p = Bun.spawn(["bun", main, ...args], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    env: { ...process.env, ...opts.env },
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err } satisfies CliResult;
}

/** ServeProcess: `gatehouse serve` from source, its log lines as they come. */
export interface ServeProcess {
  proc: ReturnType<typeof Bun.spawn>;
  lines: string[];
  /** the first log line matching (already logged, or the next one); rejects if the process ends first */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** the port a listener logged (`listening listener=http address=127.0.0.1:PORT`) */
  port(listener: string): number | undefined;
}

/** startServe: spawns `gatehouse serve` on `dataDir`, every port on 127.0.0.1:0 unless `args` say otherwise. */
export function startServe(dataDir: string, args: string[] = [], env: Record<string, string> = {}): ServeProcess {
  const proc = Bun.spawn(
    [
      "bun",
      main,
      "serve",
      "--data-dir",
      dataDir,
      "--bind",
      "127.0.0.1",
      "--http-port",
      "0",
      "--https-port",
      "off",
      "--mqtt-port",
      "off",
      "--mqtts-port",
      "off",
      "--opcua-port",
      "off",
      ...args,
    ],
    { cwd: root, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...env } },
  );
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (l: string) => void }>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        for (const w of waiters) if (w.pattern.test(line)) waiters.delete(w), w.resolve(line);
      }
    }
  };
  const pumped = Promise.all([
    pump(proc.stdout as ReadableStream<Uint8Array>),
    pump(proc.stderr as ReadableStream<Uint8Array>),
  ]);
  return {
    proc,
    lines,
    waitFor(pattern, timeoutMs = 20_000) {
      const hit = lines.find((l) => pattern.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { pattern, resolve: (l: string) => (clearTimeout(timer), resolve(l)) };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no log line ${pattern} within ${timeoutMs} ms:\n${lines.join("\n")}`));
        }, timeoutMs);
        waiters.add(w);
        void pumped.then(async () => {
          const code = await proc.exited;
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(timer);
          reject(new Error(`serve exited ${code} before ${pattern}:\n${lines.join("\n")}`));
        });
      });
    },
    port(listener) {
      for (const l of lines) {
        const m = l.match(/^info listening listener=(\w+) address=[^ ]*:(\d+)/);
        if (m && m[1] === listener) return Number(m[2]);
      }
      return undefined;
    },
  };
}
