import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp, type App } from "../../src/app.ts";
import { openDataDir } from "../../src/db/data-dir.ts";
import { parseServeConfig } from "../../src/config.ts";
import { createCore, type Core, type CoreOptions } from "../../src/core/index.ts";
import { closeDatabase, type Db } from "../../src/db/client.ts";
import { createLogger, silentLogger, type Logger } from "../../src/lib/logger.ts";
import { acceptsTable, requestTypeOf } from "../../src/listeners/index.ts";
import type { AdminPages } from "../../src/lib/pages.ts";
import type { OpcuaListener } from "../../src/listeners/opcua/index.ts";
import type { CertificateTrust } from "../../src/listeners/opcua/trust.ts";
import type { VrpcListener } from "../../src/listeners/vrpc/index.ts";
import type { VrpcDirectory } from "../../src/listeners/vrpc/types.ts";
import { createWebApp } from "../../src/web/app.tsx";

/** Real argon2id with small parameters, so suites that create many credentials stay quick. */
export const testHashCost = { memoryCost: 1024, timeCost: 1 };

const slowHashes = new Map<string, Promise<string>>();
/**
 * slowHash: a real argon2id hash of `password` that takes a while to check (64 MiB, 3 passes: a few
 * hundred ms), for tests where logins must wait in the password-check line. Made once per password.
 */
export function slowHash(password: string): Promise<string> {
  let h = slowHashes.get(password);
  if (!h)
    slowHashes.set(
      password,
      (h = Bun.password.hash(password, { algorithm: "argon2id", memoryCost: 65_536, timeCost: 3 })),
    );
  return h;
}

const dirs: string[] = [];

export function tempDir(prefix = "gatehouse-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/**
 * newDataDir: a data dir with an empty, migrated database, as the appliance's first start leaves it
 * (every CLI verb refuses a folder without one).
 */
export function newDataDir(dir = tempDir()): string {
  closeDatabase(openDataDir(dir)); // closed for real: its -wal and -shm are gone on return
  return dir;
}

/** testCore: a fresh core on a real SQLite file in a throw-away folder (`options` override the test defaults). */
export function testCore(opts: { dir?: string; log?: Logger; options?: CoreOptions } = {}): {
  core: Core;
  db: Db;
  dir: string;
} {
  const dir = opts.dir ?? tempDir();
  const db = openDataDir(dir);
  const core = createCore(db, opts.log ?? silentLogger, {
    hashCost: testHashCost,
    accepts: acceptsTable(),
    requestTypeOf,
    ...opts.options,
  });
  return { core, db, dir };
}

/** memoryLog: a logger whose lines a test can read. */
export function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: "debug", write: (l) => lines.push(l) }), lines };
}

export const adminPassword = "correct-horse-battery";

/** testWeb: the Elysia app plus a signed-in admin's cookie and CSRF token, for `app.handle`. */
export async function testWeb(opts: { pages?: (core: Core, dir: string) => AdminPages[] } = {}) {
  const { core, db, dir } = testCore();
  const web = createWebApp(core, silentLogger, { pages: opts.pages?.(core, dir) });
  await core.admins.setPassword("admin", adminPassword);
  const { token, session } = await core.admins.signIn("admin", adminPassword, "test");
  const cookie = `gh_session=${token}`;
  const csrf = session.csrfToken;
  const base = "http://localhost";

  const request = (
    method: string,
    path: string,
    init: {
      form?: Record<string, string>;
      json?: unknown;
      body?: string;
      headers?: Record<string, string>;
      auth?: boolean;
      csrf?: boolean;
    } = {},
  ) => {
    // a browser sends its page's Origin with every state-changing request (`origin: ""` in headers: none)
    const headers: Record<string, string> = { ...(method !== "GET" ? { origin: base } : {}), ...init.headers };
    if (headers.origin === "") delete headers.origin;
    if (init.auth !== false) headers.cookie = cookie;
    let body: string | undefined = init.body;
    if (init.form) {
      const form = { ...init.form };
      if (init.csrf !== false && method !== "GET" && !("_csrf" in form)) form._csrf = csrf;
      body = new URLSearchParams(form).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers["content-type"] = "application/json";
      if (init.csrf !== false) headers["x-csrf-token"] = csrf;
    } else if (init.csrf !== false && method !== "GET") {
      headers["x-csrf-token"] = csrf;
    }
    return web.handle(new Request(base + path, { method, headers, body }));
  };
  return { core, db, dir, web, cookie, csrf, request };
}

/** testApp: the whole appliance on 127.0.0.1 with every port 0 (`coreOptions` override the test defaults). */
export async function testApp(
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  coreOptions: CoreOptions = {},
  /** a data dir to start on again (a restart); a fresh one by default */
  dataDir?: string,
): Promise<{ app: App; dir: string; url: string; lines: string[] }> {
  const dir = dataDir ?? tempDir();
  const config = parseServeConfig(
    [
      "--data-dir",
      dir,
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
      ...extraArgs,
    ],
    { GATEHOUSE_ADMIN_PASSWORD: adminPassword, ...env },
  );
  const { log, lines } = memoryLog();
  const app = createApp(config, log, { hashCost: testHashCost, watchIntervalMs: 100, ...coreOptions });
  await app.start();
  const http = app.address("http")!;
  return { app, dir, url: `http://127.0.0.1:${http.port}`, lines };
}

/**
 * appsOfFile: the apps one test file starts (`start`: OPC UA off, `baseArgs` before the test's own, the MQTT
 * port read back; `dir` to start again on a data dir) and stops (`stop`); after the file, whatever still
 * runs stops and its temporary dirs go.
 */
export function appsOfFile(baseArgs: string[] = []) {
  const apps: App[] = [];
  afterAll(async () => {
    for (const a of apps) await a.stop();
    cleanupTempDirs();
  });
  return {
    async start(args: string[] = [], dir?: string) {
      const t = await testApp(["--opcua-port", "off", ...baseArgs, ...args], {}, {}, dir);
      apps.push(t.app);
      return { ...t, port: t.app.address("mqtt")!.port };
    },
    async stop(app: App) {
      await app.stop();
      apps.splice(apps.indexOf(app), 1);
    },
  };
}

/** metricValue: one series of the app's /metrics (`labels` as written there, `{k="v"}`), undefined if absent */
export async function metricValue(app: App, name: string, labels = ""): Promise<number | undefined> {
  const text = await app.core.metrics.render();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

/** vrpcOf: the running VRPC listener's directory of agents (a part keeps its own, the core has none). */
export function vrpcOf(app: App): VrpcDirectory {
  const l = app.listeners.find((x) => x.type === "vrpc") as VrpcListener | undefined;
  if (!l?.directory) throw new Error("the VRPC listener is not running");
  return l.directory;
}

/** trustOf: the running OPC UA listener's certificate trust list. */
export function trustOf(app: App): CertificateTrust {
  const l = app.listeners.find((x) => x.type === "opcua") as OpcuaListener | undefined;
  if (!l?.certificates) throw new Error("the OPC UA listener is not running");
  return l.certificates;
}
