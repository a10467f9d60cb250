import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";
import { buildBinary } from "../helpers/binary.ts";
import { eventually } from "../helpers/wait.ts";

let binary: string;
beforeAll(async () => {
  binary = await buildBinary();
}, 120_000);
afterAll(cleanupTempDirs);

/**
 * A NOTIFY_SOCKET datagram listener in Debian's Python (Bun has no Unix datagram sockets), which writes
 * every message it receives to a file: what systemd would read.
 */
function notifyListener(dir: string) {
  const socket = join(dir, "notify.sock");
  const log = join(dir, "notify.log");
  const script = `import socket,sys\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound", flush=True)\nwhile True:\n    m=s.recv(4096).decode()\n    open(sys.argv[2],"a").write(m.replace("\\n","|")+"\\n")\n`;
  const proc = Bun.spawn(["/usr/bin/python3", "-c", script, socket, log], { stdout: "pipe" });
  return {
    socket,
    proc,
    messages: () =>
      (() => {
        try {
          return readFileSync(log, "utf8").trim().split("\n");
        } catch {
          return [];
        }
      })(),
  };
}

describe("systemd", () => {
  it("READY=1 only after every listener is bound, WATCHDOG=1 pings, STOPPING=1 on SIGTERM", async () => {
    const dir = tempDir("gatehouse-notify-");
    copyFileSync(binary, join(dir, "gatehouse"));
    const listener = notifyListener(dir);
    await new Response(listener.proc.stdout).body!.getReader().read(); // "bound"
    const proc = Bun.spawn(
      [
        join(dir, "gatehouse"),
        "--data-dir",
        join(dir, "data"),
        "--bind",
        "127.0.0.1",
        "--http-port",
        "0",
        "--https-port",
        "off",
        "--mqtt-port",
        "0",
        "--mqtts-port",
        "off",
        "--opcua-port",
        "0",
      ],
      {
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: dir,
          NOTIFY_SOCKET: listener.socket,
          WATCHDOG_USEC: "1000000",
          GATEHOUSE_ADMIN_PASSWORD: "notify-admin-pass",
        },
        stdout: "pipe",
      },
    );
    try {
      const out: string[] = [];
      void (async () => {
        const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
        for (let r = await reader.read(); !r.done; r = await reader.read())
          out.push(...new TextDecoder().decode(r.value).split("\n"));
      })();
      await eventually(() => expect(listener.messages().some((m) => m.startsWith("READY=1"))).toBe(true), 20_000);
      // every listener (OPC UA, the slowest, included) had logged "listening" before READY=1 went out
      expect(out.some((l) => /listening listener=opcua/.test(l))).toBe(true);
      await eventually(
        () => expect(listener.messages().filter((m) => m === "WATCHDOG=1").length).toBeGreaterThanOrEqual(2),
        10_000,
      );
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      await eventually(() => expect(listener.messages()).toContain("STOPPING=1"));
    } finally {
      proc.kill();
      listener.proc.kill();
    }
  }, 60_000);

  it("the unit passes systemd-analyze verify", () => {
    const dir = tempDir("gatehouse-unit-");
    const unit = readFileSync(join(import.meta.dir, "../../deploy/gatehouse.service"), "utf8").replace(
      "/usr/local/bin/gatehouse",
      binary,
    );
    writeFileSync(join(dir, "gatehouse.service"), unit);
    const r = Bun.spawnSync(["systemd-analyze", "verify", join(dir, "gatehouse.service")], { stderr: "pipe" });
    const errors = r.stderr
      .toString()
      .split("\n")
      .filter(
        (l) =>
          l.trim() &&
          !/Documentation|network-online|mount point|Failed to connect to bus|not found|Cannot add dependency job|systemd-tmpfiles/i.test(
            l,
          ),
      );
    expect(errors).toEqual([]);
  });
});
