import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, copyFileSync, existsSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { allocatorEnv, relaunch, tooLargeToExec } from "../../src/cli/allocator.ts";
import { isServe } from "../../src/cli/usage.ts";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";
import { buildBinary } from "../helpers/binary.ts";

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

/** serveArgs: a fresh data dir, HTTP only on 127.0.0.1 */
const serveArgs = () => [
  "serve",
  "--data-dir",
  tempDir(),
  "--bind",
  "127.0.0.1",
  "--http-port",
  "0",
  ...["--https-port", "--mqtt-port", "--mqtts-port", "--opcua-port"].flatMap((f) => [f, "off"]),
];

/** serveAlone: `gatehouse serve` from source (or `command`) with `env`; resolves once ready */
async function serveAlone(env: Record<string, string>, command = ["bun", main, ...serveArgs()], spawned?: () => void) {
  const proc = Bun.spawn(command, { cwd: root, stdout: "pipe", stderr: "pipe", stdin: "ignore", env });
  spawned?.();
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
      "/proc/self/exe",
      "/usr/bin/bun",
      ["--smol"],
      "/opt/gh/src/main.ts",
      { PATH: "/bin", GATEHOUSE_DATA_DIR: "/var/lib/gatehouse" },
      isServe,
    );
    expect(again).toEqual({
      file: "/proc/self/exe",
      args: ["/usr/bin/bun", "--smol", "/opt/gh/src/main.ts", "serve", "--http-port", "0", "--data-dir", "/d i r"],
      env: { PATH: "/bin", GATEHOUSE_DATA_DIR: "/var/lib/gatehouse", ...allocatorEnv },
    });
  });

  it("the compiled binary: itself and the arguments (its script lives inside it)", () => {
    const again = relaunch(
      ["bun", "/$bunfs/root/gatehouse", "--mqtt-port", "1883"],
      "/proc/self/exe",
      "/usr/local/bin/gatehouse",
      [],
      "/$bunfs/root/gatehouse",
      {},
      isServe,
    );
    expect(again?.file).toBe("/proc/self/exe"); // the running image, not a path looked up again
    expect(again?.args).toEqual(["/usr/local/bin/gatehouse", "--mqtt-port", "1883"]);
  });

  it("not when the operator set either setting (even empty), nor for another verb", () => {
    const argv = ["bun", "/opt/gh/src/main.ts", "serve"];
    for (const env of [{ MIMALLOC_PURGE_HOLES: "1" }, { MIMALLOC_PURGE_DELAY: "-1" }, { MIMALLOC_PURGE_HOLES: "" }])
      expect(relaunch(argv, "/proc/self/exe", "/usr/bin/bun", [], argv[1]!, env, isServe)).toBeUndefined();
    const list = ["bun", "/opt/gh/src/main.ts", "integrations", "list"];
    expect(relaunch(list, "/proc/self/exe", "/usr/bin/bun", [], list[1]!, {}, isServe)).toBeUndefined();
  });

  it("not what the kernel would refuse: one string or all of them too large, counted as UTF-8", () => {
    const r = (env: Record<string, string>) => ({ file: "/proc/self/exe", args: ["bun", "serve"], env });
    expect(tooLargeToExec(r({ A: "x".repeat(1000) }))).toBeUndefined();
    // 100 000 bytes that were not UTF-8 come back as U+FFFD, three bytes each
    expect(tooLargeToExec(r({ BIG: "\ufffd".repeat(100_000) }))).toMatch(/variable of 300005 bytes/);
    const many: Record<string, string> = {};
    for (let i = 0; i < 20; i++) many[`V${i}`] = "y".repeat(100_000);
    expect(tooLargeToExec(r(many))).toMatch(/bytes of arguments and environment/);
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

describe("serve that cannot start again", () => {
  it("runs on the runtime's defaults and says why in its log, with nothing else on stderr", async () => {
    // found from outside: 100 000 bytes that are not UTF-8 in one variable come back three times as long,
    // over what the kernel takes in one string; the start failed with E2BIG and the runtime's warning went
    // to stderr outside the log format
    const command = [
      "bash",
      "-c",
      `export BIG="$(head -c 100000 /dev/zero | tr '\\0' '\\377')"; exec bun ${main} ${serveArgs().join(" ")}`,
    ];
    const { proc, seen } = await serveAlone(withoutAllocatorEnv(), command);
    try {
      expect(environOf(proc.pid).MIMALLOC_PURGE_HOLES).toBeUndefined();
      expect(seen).toMatch(
        /^warn runs on the runtime's memory allocator defaults.* why="an argument or environment variable of 300\d\d\d bytes/m,
      );
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
    expect(await new Response(proc.stderr).text()).toBe("");
  }, 60_000);

  it("an exec that fails keeps the runtime's warning off stderr, and later warnings still print", async () => {
    const script = `
      import { startAgain, startedAgainNot } from ${JSON.stringify(join(root, "src/cli/allocator.ts"))};
      startAgain({ file: "/nonexistent/gatehouse", args: ["gatehouse", "serve"], env: {} });
      console.log("not started:", startedAgainNot());
      setTimeout(() => process.emitWarning("a later warning"), 50);
    `;
    const p = Bun.spawn(["bun", "-e", script], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(out).toMatch(/not started: ENOENT/);
    expect(err).not.toContain("ExperimentalWarning");
    expect(err).toContain("a later warning");
  });
});

describe("the compiled binary deleted while it starts", () => {
  it("starts again from the image it runs, never from a file planted where it was", async () => {
    // found from outside: the path started again was the kernel's "<path> (deleted)", which anyone with the
    // folder could plant; it ran with the appliance's arguments and environment (the admin's password in it)
    const dir = tempDir();
    const bin = join(dir, "gatehouse");
    copyFileSync(await buildBinary(), bin);
    chmodSync(bin, 0o755);
    const marker = join(dir, "planted-ran");
    const { proc } = await serveAlone(withoutAllocatorEnv(), [bin, ...serveArgs()], () => {
      unlinkSync(bin); // within the first ~0.2 s, before it starts again
      writeFileSync(`${bin} (deleted)`, `#!/bin/sh\ntouch ${marker}\nexec sleep 30\n`, { mode: 0o755 });
    });
    try {
      expect(existsSync(marker)).toBe(false);
      expect(environOf(proc.pid).MIMALLOC_PURGE_HOLES).toBe("0");
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
  }, 180_000);
});
