import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupTempDirs, tempDir } from "../helpers/app.ts";
import { buildBinary, runBinary } from "../helpers/binary.ts";
import { signIn } from "../helpers/http.ts";

let binary: string;
beforeAll(async () => {
  binary = await buildBinary();
}, 120_000);
afterAll(cleanupTempDirs);

const serveArgs = (dir: string) => [
  "--data-dir",
  join(dir, "data"),
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
];

/** procText: what anyone allowed to read /proc/<pid>/X sees of the running process. */
const procText = (pid: number, what: "environ" | "cmdline") => readFileSync(`/proc/${pid}/${what}`).toString("latin1");

describe("the first admin's password and the process's environment (compiled binary)", () => {
  it.each([
    [
      "GATEHOUSE_ADMIN_PASSWORD_FILE",
      (dir: string, password: string) => {
        writeFileSync(join(dir, "admin-password"), `${password}\n`, { mode: 0o600 });
        return { GATEHOUSE_ADMIN_PASSWORD_FILE: join(dir, "admin-password") };
      },
    ],
    [
      "the systemd credential in $CREDENTIALS_DIRECTORY",
      (dir: string, password: string) => {
        mkdirSync(join(dir, "credentials"), { mode: 0o500 });
        writeFileSync(join(dir, "credentials", "admin-password"), `${password}\n`, { mode: 0o400 });
        return { CREDENTIALS_DIRECTORY: join(dir, "credentials") };
      },
    ],
  ])(
    "from %s: the admin signs in; /proc/<pid>/environ and cmdline never hold the password",
    async (_, setup) => {
      const dir = tempDir("gatehouse-secret-");
      const password = `file-password-${crypto.randomUUID()}`;
      const running = await runBinary(binary, dir, serveArgs(dir), setup(dir, password));
      try {
        expect(
          running.lines.some((l) =>
            /admin created from (--admin-password-file|systemd credential admin-password)/.test(l),
          ),
        ).toBe(true);
        expect(procText(running.proc.pid, "environ")).not.toContain(password);
        expect(procText(running.proc.pid, "cmdline")).not.toContain(password);
        expect(running.lines.join("\n")).not.toContain(password);
        const { cookie } = await signIn(`http://127.0.0.1:${running.ports.http}`, "admin", password);
        expect(cookie).toStartWith("gh_session=");
      } finally {
        expect(await running.stop()).toBe(0);
      }
    },
    60_000,
  );

  it("GATEHOUSE_ADMIN_PASSWORD stays in /proc/<pid>/environ for the life of the process (why the README recommends the file)", async () => {
    const dir = tempDir("gatehouse-secret-");
    const password = `env-password-${crypto.randomUUID()}`;
    const running = await runBinary(binary, dir, serveArgs(dir), { GATEHOUSE_ADMIN_PASSWORD: password });
    try {
      // taken out of process.env, but the kernel's copy of the initial environment is unchanged
      expect(procText(running.proc.pid, "environ")).toContain(`GATEHOUSE_ADMIN_PASSWORD=${password}`);
    } finally {
      expect(await running.stop()).toBe(0);
    }
  }, 60_000);

  it("refuses a password file others can read (exit 2, nothing created)", () => {
    const dir = tempDir("gatehouse-secret-");
    copyFileSync(binary, join(dir, "gatehouse"));
    writeFileSync(join(dir, "admin-password"), "world-readable-password\n", { mode: 0o644 });
    const r = Bun.spawnSync(
      [join(dir, "gatehouse"), ...serveArgs(dir), "--admin-password-file", join(dir, "admin-password")],
      { cwd: dir, env: { PATH: process.env.PATH ?? "" } },
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain("can be read or written by others (mode 0644); chmod 600 it");
  });
});
