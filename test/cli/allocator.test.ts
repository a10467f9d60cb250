import { afterAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { allocatorEnv, relaunch } from "../../src/cli/allocator.ts";
import { isServe } from "../../src/cli/usage.ts";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

const root = join(import.meta.dir, "../..");
const main = join(root, "src/main.ts");

/** environOf: a live process's environment, as the kernel holds it */
function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** withoutAllocatorEnv: this process's environment without the allocator's settings (CI may have set them) */
function withoutAllocatorEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !(k in allocatorEnv)) env[k] = v;
  return { ...env, ...extra };
}

/** serveAlone: `gatehouse serve` from source on a fresh data dir, HTTP only; resolves once ready */
async function serveAlone(env: Record<string, string>) {
  const proc = Bun.spawn(
    [
      "bun",
      main,
      "serve",
      "--data-dir",
      tempDir(),
      "--bind",
      "127.0.0.1",
      "--http-port",
      "0",
      ...["--https-port", "--mqtt-port", "--mqtts-port", "--opcua-port"].flatMap((f) => [f, "off"]),
    ],
    { cwd: root, stdout: "pipe", stderr: "pipe", stdin: "ignore", env },
  );
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let seen = "";
  while (!/^info ready /m.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve ended before ready:\n${seen}\n${await new Response(proc.stderr).text()}`);
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { proc, seen };
}

describe("which commands start again with the allocator's settings", () => {
  it("serve, bare or with options; not a verb, the help or the version", () => {
    expect(isServe([])).toBe(true);
    expect(isServe(["serve"])).toBe(true);
    expect(isServe(["serve", "--http-port", "0"])).toBe(true);
    expect(isServe(["--http-port", "0"])).toBe(true);
    for (const other of [["--version"], ["version"], ["--help"], ["-h"], ["serve", "--help"], ["integrations", "list"]])
      expect(isServe(other)).toBe(false);
  });

  it("from source: the runtime, its flags, the script and every argument, in that order, with both settings added", () => {
    const again = relaunch(
      ["/usr/bin/bun", "/opt/gh/src/main.ts", "serve", "--http-port", "0", "--data-dir", "/d i r"],
      "/usr/bin/bun",
      ["--smol"],
      "/opt/gh/src/main.ts",
      { PATH: "/bin", GATEHOUSE_DATA_DIR: "/var/lib/gatehouse" },
      isServe,
    );
    expect(again).toEqual({
      file: "/usr/bin/bun",
      args: ["/usr/bin/bun", "--smol", "/opt/gh/src/main.ts", "serve", "--http-port", "0", "--data-dir", "/d i r"],
      env: { PATH: "/bin", GATEHOUSE_DATA_DIR: "/var/lib/gatehouse", ...allocatorEnv },
    });
  });

  it("the compiled binary: itself and the arguments (its script lives inside it)", () => {
    const again = relaunch(
      ["bun", "/$bunfs/root/gatehouse", "--mqtt-port", "1883"],
      "/usr/local/bin/gatehouse",
      [],
      "/$bunfs/root/gatehouse",
      {},
      isServe,
    );
    expect(again?.file).toBe("/usr/local/bin/gatehouse");
    expect(again?.args).toEqual(["/usr/local/bin/gatehouse", "--mqtt-port", "1883"]);
  });

  it("not when the operator set either setting (even empty), nor for another verb", () => {
    const argv = ["bun", "/opt/gh/src/main.ts", "serve"];
    for (const env of [{ MIMALLOC_PURGE_HOLES: "1" }, { MIMALLOC_PURGE_DELAY: "-1" }, { MIMALLOC_PURGE_HOLES: "" }])
      expect(relaunch(argv, "/usr/bin/bun", [], argv[1]!, env, isServe)).toBeUndefined();
    const list = ["bun", "/opt/gh/src/main.ts", "integrations", "list"];
    expect(relaunch(list, "/usr/bin/bun", [], list[1]!, {}, isServe)).toBeUndefined();
  });
});

describe("serve started again in place", () => {
  it("the same process runs with both settings, its options applied, and stops cleanly", async () => {
    const { proc, seen } = await serveAlone(withoutAllocatorEnv());
    try {
      const env = environOf(proc.pid); // the process we spawned: execve kept its id
      expect(env.MIMALLOC_PURGE_HOLES).toBe("0");
      expect(env.MIMALLOC_PURGE_DELAY).toBe("1000");
      const port = Number(seen.match(/listening listener=http address=127\.0\.0\.1:(\d+)/)?.[1]);
      expect(port).toBeGreaterThan(0); // --http-port 0 and --bind went through
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
    expect(await new Response(proc.stderr).text()).not.toContain("could not start again");
  }, 60_000);

  it("what the operator set is kept, and nothing is added to it", async () => {
    const { proc } = await serveAlone(withoutAllocatorEnv({ MIMALLOC_PURGE_HOLES: "1" }));
    try {
      const env = environOf(proc.pid);
      expect(env.MIMALLOC_PURGE_HOLES).toBe("1");
      expect(env.MIMALLOC_PURGE_DELAY).toBeUndefined();
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
  }, 60_000);
});
