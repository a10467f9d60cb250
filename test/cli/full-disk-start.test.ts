import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Outbox } from "../../src/connectors/uplink/outbox.ts";
import type { CoreOptions } from "../../src/core/index.ts";
import { closeDatabase } from "../../src/db/client.ts";
import { DataDirSystemError, lockDataDir, openDataDir } from "../../src/db/data-dir.ts";
import { adminPassword, cleanupTempDirs, tempDir, testApp } from "../helpers/app.ts";
import { postSignIn, signIn } from "../helpers/http.ts";
import { runCli, startServe } from "../helpers/serve.ts";
import { startMosquitto, stopUpstreams } from "../helpers/upstream.ts";
import { eventually } from "../helpers/wait.ts";
import { connectMqtt, connectPacket, nextMessage, rawMqtt } from "../helpers/mqtt.ts";

afterAll(async () => {
  await stopUpstreams();
  cleanupTempDirs();
});

/** fullDisk: a 4 MiB tmpfs (root only: mount) holding a data dir, then filled to the last byte. */
function fullDisk(): { dir: string; fill(leave?: number): void; freeSome(): void; unmount(): void } {
  const mnt = tempDir("gatehouse-full-");
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt]);
  if (r.exitCode !== 0) throw new Error(`mount: ${r.stderr}`);
  const dir = join(mnt, "data");
  mkdirSync(dir);
  return {
    dir,
    fill(leave = 0) {
      // `leave` bytes kept back, freed once the rest is full
      if (leave) writeFileSync(join(mnt, "reserve"), Buffer.alloc(leave));
      // dd stops at ENOSPC: big blocks first, then what is left, to the last byte
      Bun.spawnSync(["dd", "if=/dev/zero", `of=${join(mnt, "fill")}`, "bs=64k"]);
      Bun.spawnSync(["dd", "if=/dev/zero", `of=${join(mnt, "fill2")}`, "bs=512"]);
      if (leave) rmSync(join(mnt, "reserve"));
    },
    freeSome: () => rmSync(join(mnt, "fill")),
    unmount: () => void Bun.spawnSync(["umount", "-l", mnt]),
  };
}

const root = process.getuid?.() === 0;

/** serveOnce: `serve` on `dir` until it exits or comes up (then it is stopped): its exit code or "started" */
async function serveOnce(dir: string) {
  const s = startServe(dir);
  const code = await Promise.race([s.proc.exited, s.waitFor(/listening/).then(() => "started" as const)]);
  if (code === "started") s.proc.kill();
  return { s, code };
}

/**
 * onFullDisk: an appliance in this process on a data dir of `fullDisk()` (OPC UA off, `args` added), given to
 * `body` with the disk (not filled yet); the appliance stopped and the disk unmounted after, however it ends.
 */
async function onFullDisk(
  args: string[],
  coreOptions: CoreOptions,
  body: (started: Awaited<ReturnType<typeof testApp>>, disk: ReturnType<typeof fullDisk>) => Promise<void>,
): Promise<void> {
  const disk = fullDisk();
  const started = await testApp(["--opcua-port", "off", ...args], {}, coreOptions, disk.dir);
  try {
    await body(started, disk);
  } finally {
    await started.app.stop();
    disk.unmount();
  }
}

describe("starting on a full disk (F5)", () => {
  it.skipIf(!root)("the data dir's lock needs no free disk; the database that cannot open is a system failure", () => {
    const disk = fullDisk();
    try {
      closeDatabase(openDataDir(disk.dir)); // a clean stop: no -wal, -shm left
      disk.fill();
      const lock = lockDataDir(disk.dir); // wrote gatehouse.lock-journal before: SQLITE_FULL
      try {
        expect(() => openDataDir(disk.dir)).toThrow(DataDirSystemError);
        expect(() => openDataDir(disk.dir)).toThrow(/the data dir's disk is full: 0 bytes free; free some space/);
      } finally {
        lock.release();
      }
    } finally {
      disk.unmount();
    }
  });

  it.skipIf(!root)(
    "serve on a full disk exits 1 (the unit restarts it once space is back), not 2, saying the disk is full; so does the CLI",
    async () => {
      const disk = fullDisk();
      try {
        closeDatabase(openDataDir(disk.dir)); // a clean stop: no -wal, -shm left
        disk.fill();
        const { s, code } = await serveOnce(disk.dir);
        expect(code).toBe(1);
        // found from outside: at 0 bytes free it said only "disk I/O error" (SQLite cannot make the -shm)
        expect(await s.waitFor(/cannot open database/)).toMatch(/the data dir's disk is full: 0 bytes free/);
        for (const verb of [
          ["uplinks", "status"],
          ["integrations", "list"],
        ]) {
          const r = await runCli([...verb, "--data-dir", disk.dir], { env: { GATEHOUSE_DATA_DIR: "" } });
          expect([r.code, r.err]).toEqual([1, expect.stringMatching(/the data dir's disk is full/)]);
        }
      } finally {
        disk.unmount();
      }
    },
    30_000,
  );
});

describe('a nearly full disk (found from outside: only "disk I/O error" below 1 MiB free)', () => {
  it.skipIf(!root)(
    "with a few KB free, uplinks status (the outbox) and serve say the disk is full, exit 1",
    async () => {
      const disk = fullDisk();
      try {
        closeDatabase(openDataDir(disk.dir));
        await (await Outbox.open(disk.dir)).outbox.close(); // the outbox is there: the CLI opens it
        // 40 KB: the database opens, the outbox does not (SQLite: only "disk I/O error", SQLITE_IOERR_SHMSIZE)
        disk.fill(40 * 1024);
        const st = await runCli(["uplinks", "status", "--data-dir", disk.dir], { env: { GATEHOUSE_DATA_DIR: "" } });
        expect([st.code, st.err]).toEqual([1, expect.stringMatching(/the data dir's disk is full: \d+ bytes free/)]);
        disk.freeSome();
        disk.fill(24 * 1024);
        const { s, code } = await serveOnce(disk.dir);
        expect(code).toBe(1);
        expect(await s.waitFor(/disk is full/)).toMatch(/the data dir's disk is full: \d+ bytes free/);
      } finally {
        disk.unmount();
      }
    },
    30_000,
  );
});

describe("the admin page on a full disk (found from outside: signing in answered 500)", () => {
  it.skipIf(!root)(
    "signing in says the disk is full (503), and works again once there is room",
    async () => {
      await onFullDisk([], {}, async ({ url, lines }, disk) => {
        await signIn(url); // works while there is room
        disk.fill();
        const res = await postSignIn(url, "admin", adminPassword);
        expect([res.status, (await res.text()).includes("disk is full")]).toEqual([503, true]);
        // found from outside: the log said "admin signed in" before the session's write failed
        expect(lines.filter((l) => l.includes("admin signed in")).length).toBe(1);
        disk.freeSome();
        await signIn(url);
      });
    },
    30_000,
  );
});

describe("an uplink on a full disk (found from outside: the appliance crashed)", () => {
  it.skipIf(!root)(
    "an uplink that loses its upstream while the disk is full: the appliance goes on, and its activity entries are written once there is room",
    async () => {
      // found from outside: the activity log's entry for the disconnect met SQLITE_FULL and threw out of the
      // connection's close handler: the whole appliance stopped (and again at every restart, once connected)
      const up = await startMosquitto(); // stopped by afterAll's stopUpstreams too
      await onFullDisk(["--uplink-reconnect-max", "1"], { flushIntervalMs: 200 }, async ({ app, url, lines }, disk) => {
        const token = app.core.admins.createApiToken("full").token;
        const res = await fetch(`${url}/api/v1/uplinks`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ name: "full", urls: [`mqtt://127.0.0.1:${up.port}`], forward: ["x/#"] }),
        });
        expect(res.status).toBe(201);
        await eventually(() => expect(lines.some((l) => l.includes("uplink connected"))).toBe(true), 15_000);
        disk.fill();
        await up.stop();
        await eventually(() => expect(lines.some((l) => l.includes("uplink disconnected"))).toBe(true), 15_000);
        expect((await fetch(`${url}/healthz`)).status).toBe(200);
        const disconnects = () => app.core.activity.list({ action: "uplink.disconnected" });
        expect(disconnects()).toEqual([]);
        disk.freeSome();
        await eventually(() => expect(disconnects().length).toBeGreaterThan(0), 10_000);
      });
      await up.stop();
    },
    60_000,
  );
});

describe("the onboarding window on a full disk (found from outside: its expiry stopped the appliance)", () => {
  it.skipIf(!root)(
    "the clock closes it in memory and its rows go once there is room; an admin's close changes nothing and says why",
    async () => {
      await onFullDisk([], { flushIntervalMs: 200 }, async ({ app }, disk) => {
        const onboarding = app.core.onboarding;
        onboarding.open({ minutes: 1, by: "admin" });
        disk.fill();
        // an admin's close that cannot be written: refused, the window stays open (a restart would reopen it)
        expect(() => onboarding.close()).toThrow(/disk is full/);
        expect(onboarding.status().open).toBe(true);
        // the clock's close (what its timer calls when the window's time is over): never throws
        onboarding.close("expired");
        expect(onboarding.status().open).toBe(false);
        const row = () =>
          app.core.db.$client.query("SELECT COUNT(*) AS n FROM onboarding_window").get() as { n: number };
        expect(row().n).toBe(1);
        disk.freeSome();
        await eventually(() => expect(row().n).toBe(0), 10_000);
      });
    },
    30_000,
  );
});

describe("MQTT on a full disk (found from outside)", () => {
  it.skipIf(!root)(
    "a device with a will logs in (its will kept in memory); a persistent SUBSCRIBE gets no SUBACK, nor when sent again",
    async () => {
      await onFullDisk([], {}, async ({ app }, disk) => {
        const port = app.address("mqtt")!.port;
        const login = async (username: string) =>
          ({ username, password: (await app.core.credentials.create({ type: "mqtt", username })).password }) as const;
        const watch = await login("will-watch");
        const w = await login("will-dev");
        const sp = await login("sub-persistent");
        const watcher = await connectMqtt(port, watch);
        await watcher.subscribeAsync("live/will", { qos: 0 });
        disk.fill();
        // every CONNECT with a will was closed without a CONNACK (a VRPC agent's offline announcement is its
        // will: none could log in), and the refused connection's will was published anyway
        const dev = await rawMqtt(port, "127.0.0.1", 4);
        dev.send(
          connectPacket({
            clientId: "will-dev",
            username: w.username,
            password: Buffer.from(w.password),
            will: { topic: "live/will", payload: Buffer.from("gone"), qos: 0, retain: false },
          }),
        );
        expect(await dev.next()).toMatchObject({ cmd: "connack", returnCode: 0 });
        const will = nextMessage(watcher, 5_000);
        dev.destroy(); // dropped without a DISCONNECT: its will goes out
        expect(await will).toEqual({ topic: "live/will", payload: "gone" });
        await watcher.endAsync();
        // the first SUBSCRIBE of a persistent session closed its connection, and the same SUBSCRIBE again got
        // a SUBACK with the subscription in memory only: lost at the next restart, while the session said
        // "present" (a device never subscribes again)
        for (let attempt = 0; attempt < 2; attempt++) {
          const raw = await rawMqtt(port, "127.0.0.1", 4);
          raw.send(
            connectPacket({
              clientId: "sub-p",
              clean: false,
              username: sp.username,
              password: Buffer.from(sp.password),
            }),
          );
          expect(await raw.next()).toMatchObject({ cmd: "connack" });
          raw.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "plant/p", qos: 1 }] });
          expect([attempt, await raw.next()]).toEqual([attempt, undefined]);
        }
      });
    },
    60_000,
  );
});

describe("the write-behind flushes on a full disk (found from outside: a line every 5 s, ~17 000 a day)", () => {
  it.skipIf(!root)(
    "a failing flush is logged once, then at most every 10 minutes, and once when it works again; what a stop cannot write is counted",
    async () => {
      await onFullDisk([], { flushIntervalMs: 50 }, async ({ app, lines }, disk) => {
        const port = app.address("mqtt")!.port;
        const dev = await app.core.credentials.create({ type: "mqtt", username: "flush-dev" });
        const lastLogin = () =>
          (
            app.core.db.$client
              .query("SELECT last_login_at AS at FROM integrations WHERE username = 'flush-dev'")
              .get() as {
              at: number | null;
            }
          ).at;
        disk.fill();
        const c = await connectMqtt(port, { username: "flush-dev", password: dev.password });
        await c.endAsync();
        const failed = () => lines.filter((l) => l.includes("last-login flush"));
        await eventually(() => expect(failed().length).toBe(1), 5_000);
        // twenty flushes later: still the one line (an absence: only time shows it)
        await Bun.sleep(1_000);
        expect(failed()).toEqual([expect.stringMatching(/error last-login flush failed .*disk is full/)]);
        expect(lastLogin()).toBe(null);
        disk.freeSome();
        await eventually(() => expect(lastLogin()).not.toBe(null), 5_000);
        await eventually(
          () => expect(failed().at(-1)).toMatch(/info last-login flush works again .*failures=\d+/),
          5_000,
        );
      });
      // a stop that cannot write the times gathered since the last flush says how many are lost (found from
      // outside: without a word)
      await onFullDisk([], { flushIntervalMs: 60_000 }, async ({ app, lines }, disk) => {
        const dev = await app.core.credentials.create({ type: "mqtt", username: "stop-dev" });
        // no room left in the write-ahead log either (as after a restart): the times need new blocks
        app.core.db.$client.run("PRAGMA wal_checkpoint(TRUNCATE)");
        disk.fill();
        const c = await connectMqtt(app.address("mqtt")!.port, { username: "stop-dev", password: dev.password });
        await c.endAsync();
        // the core's stop alone (the appliance's frees broker.db's and the outbox's logs first, room for them)
        app.core.stop();
        expect(lines.filter((l) => l.includes("last-login flush"))).toEqual([
          expect.stringMatching(/^error last-login flush failed at stop; .* lost=1$/),
        ]);
      });
    },
    30_000,
  );
});
