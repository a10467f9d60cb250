// tsyringe (inside @peculiar/x509, used by node-opcua-crypto) needs the Reflect polyfill loaded before
// it. node-opcua is loaded lazily, and in the compiled binary only a module of the main chunk (this
// one, before any listener starts) guarantees that order; an import in the lazy chunk did not.
import "reflect-metadata";
import type { Config } from "./config.ts";
import { createCore, type Core, type CoreOptions } from "./core/index.ts";
import { openDataDir } from "./db/data-dir.ts";
import type { Logger } from "./lib/logger.ts";
import { acceptsTable } from "./listeners/index.ts";
import type { Listener } from "./listeners/listener.ts";
import { version } from "./version.ts";
import { createWebApp, defaultMaxBodyBytes } from "./web/app.tsx";
import { createWebServer } from "./web/server.ts";

export { version } from "./version.ts";

export interface App {
  core: Core;
  listeners: Listener[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** the real address of the web server ("http") or of a started listener, by type */
  address(name: string): { host: string; port: number } | undefined;
}

/**
 * createApp: composition root. open db -> migrate -> core -> web server and listeners; `start` binds
 * the web server, then each listener of the registry in order and, if one fails, stops those already
 * started in reverse before rethrowing (Caddy's run()); `stop` reverses all.
 */
export function createApp(config: Config, log: Logger, coreOptions: CoreOptions = {}): App {
  // A short busy timeout: bun:sqlite waits synchronously, so a CLI holding the lock must not stall the
  // event loop (every listener) for seconds; write-behind retries later, an admin's write answers 503.
  const db = openDataDir(config.dataDir, { busyTimeoutMs: 250 });
  const core = createCore(db, log, { sessionTtlMs: config.sessionTtlSeconds * 1000, accepts: acceptsTable(), ...coreOptions });
  const deps = { core, version, dataDir: config.dataDir, bind: config.bind };
  const listeners = config.listeners.map(({ module, options }) => module.create({ ...deps, log: log.child({ listener: module.type }) }, options));
  const mounts = listeners.flatMap((l) => (l.http ? [l.http] : []));
  const web = createWebApp(core, log, { version, mounts });
  const maxBodyBytes = Math.max(defaultMaxBodyBytes, ...mounts.map((m) => m.maxBodyBytes ?? 0));
  const http = createWebServer(web, { host: config.bind, port: config.httpPort, maxBodyBytes });
  // The web server first: the admin page answers while the listeners (OPC UA: ~1 s) start.
  const parts: { name: string; start(): Promise<void>; stop(): Promise<void>; address(): { host: string; port: number } | undefined }[] = [
    { name: "http", ...http },
    ...listeners.map((l) => ({ name: l.type, start: () => l.start(), stop: () => l.stop(), address: () => l.address() })),
  ];
  const started: typeof parts = [];
  let stopped = false;

  const bootstrapAdmin = async () => {
    if (core.admins.hasAdmin()) return;
    if (config.adminPassword) {
      await core.admins.setPassword("admin", config.adminPassword);
      log.info("admin created from GATEHOUSE_ADMIN_PASSWORD", { username: "admin" });
      return;
    }
    const token = core.admins.startSetup();
    const a = http.address()!;
    const host = a.host === "0.0.0.0" || a.host === "::" ? "127.0.0.1" : a.host;
    const base = config.publicUrl?.replace(/\/$/, "") ?? `http://${host}:${a.port}`;
    log.warn("no admin yet: open the setup link within 1 hour", { url: `${base}/setup?token=${token}` });
  };

  return {
    core,
    listeners,
    async start() {
      core.start();
      for (const part of parts) {
        try {
          await part.start();
        } catch (err) {
          log.error("listener failed to start", { listener: part.name, err });
          await this.stop();
          throw err;
        }
        started.push(part);
        const a = part.address();
        log.info("listening", { listener: part.name, address: a ? `${a.host}:${a.port}` : "http" });
      }
      await bootstrapAdmin();
      // Start-up leaves parse garbage behind (node-opcua's nodeset above all): collect it once, so
      // the idle footprint is what the appliance holds, not what it passed through.
      Bun.gc(true);
      log.info("ready", { version, dataDir: config.dataDir });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const part of started.splice(0).reverse()) {
        try {
          await part.stop();
        } catch (err) {
          log.error("listener failed to stop", { listener: part.name, err });
        }
      }
      core.stop();
      db.$client.close();
    },
    address(name) {
      return parts.find((p) => p.name === name)?.address();
    },
  };
}
