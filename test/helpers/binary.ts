import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
let built: Promise<string> | undefined;

/** buildFor: `bun run build -- --target T` (another machine's binary, e.g. linux-arm64); returns its path. */
export async function buildFor(target: "linux-arm64" | "linux-x64"): Promise<string> {
  const proc = Bun.spawn(["bun", "run", "build", "--", "--target", target], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  if ((await proc.exited) !== 0)
    throw new Error(`build for ${target} failed: ${await new Response(proc.stderr).text()}`);
  return join(root, "dist", `gatehouse-${target}`);
}

/** buildBinary: runs `bun run build` once per test process; returns dist/gatehouse. */
export function buildBinary(): Promise<string> {
  built ??= (async () => {
    const proc = Bun.spawn(["bun", "run", "build"], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const code = await proc.exited;
    if (code !== 0) throw new Error(`build failed: ${await new Response(proc.stderr).text()}`);
    const out = join(root, "dist", "gatehouse");
    if (!existsSync(out)) throw new Error("build wrote no dist/gatehouse");
    return out;
  })();
  return built;
}

export interface RunningBinary {
  proc: ReturnType<typeof Bun.spawn>;
  lines: string[];
  ports: Record<string, number>;
  /** waitFor: resolves with the first log line matching */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** runBinary: starts the copied binary with `cwd` as its only folder and collects its log lines. */
export async function runBinary(
  binary: string,
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
  opts: { prefix?: string[]; readyTimeoutMs?: number } = {},
): Promise<RunningBinary> {
  const local = join(cwd, "gatehouse");
  if (!existsSync(local)) copyFileSync(binary, local);
  return runCommand([...(opts.prefix ?? []), local, ...args], cwd, env, opts);
}

/**
 * runSource: `bun src/main.ts ARGS` as a child process (the appliance from the source tree, started in the
 * repository so Bun finds its tsconfig), like runBinary.
 */
export function runSource(
  args: string[],
  env: Record<string, string> = {},
  opts: { readyTimeoutMs?: number } = {},
): Promise<RunningBinary> {
  return runCommand([process.execPath, join(root, "src", "main.ts"), ...args], root, env, opts);
}

/** runCommand: starts `cmd` in `cwd`, collects its log lines and waits for `ready`; the ports it listens on. */
async function runCommand(
  cmd: string[],
  cwd: string,
  env: Record<string, string>,
  opts: { readyTimeoutMs?: number },
): Promise<RunningBinary> {
  const proc = Bun.spawn(cmd, {
    cwd,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        for (const w of waiters.splice(0)) w.pattern.test(line) ? w.resolve(line) : waiters.push(w);
      }
    }
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  const waitFor = (pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const hit = lines.find((l) => pattern.test(l));
      if (hit) return resolve(hit);
      const timer = setTimeout(
        () => reject(new Error(`no log line ${pattern} within ${timeoutMs} ms; got:\n${lines.join("\n")}`)),
        timeoutMs,
      );
      waiters.push({ pattern, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      proc.exited.then((code) =>
        setTimeout(() => reject(new Error(`exited ${code} before ${pattern}; log:\n${lines.join("\n")}`)), 50),
      );
    });
  const ports: Record<string, number> = {};
  // one that never comes up is not left running (found: timed-out starts kept listening after the test)
  await waitFor(/^info ready /, opts.readyTimeoutMs).catch((err) => {
    proc.kill("SIGKILL");
    throw err;
  });
  for (const l of lines) {
    const m = l.match(/^info listening listener=(\w+) address=[^ ]*:(\d+)/);
    if (m) ports[m[1]!] = Number(m[2]);
  }
  return {
    proc,
    lines,
    ports,
    waitFor,
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      return proc.exited;
    },
  };
}
