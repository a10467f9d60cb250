// tsyringe (inside @peculiar/x509, used by node-opcua-crypto) needs the Reflect polyfill loaded before
// it. node-opcua is loaded lazily, and in the compiled binary only a module of the main chunk (this
// one, before any listener starts) guarantees that order; an import in the lazy chunk did not.
import "reflect-metadata";
import { statfsSync } from "node:fs";
import type { Config } from "./config.ts";
import { AcceptPool } from "./core/accept-pool.ts";
import { createCore, type Core, type CoreOptions } from "./core/index.ts";
import { closeDatabase } from "./db/client.ts";
import { diskFull, openDataDir } from "./db/data-dir.ts";
import type { Logger } from "./lib/logger.ts";
import { acceptsTable, requestTypeOf } from "./listeners/index.ts";
import type { Listener } from "./listeners/listener.ts";
import type { Connector } from "./connectors/connector.ts";
import { version } from "./version.ts";
import { createWebApp, defaultMaxBodyBytes } from "./web/app.tsx";
import { TlsSource } from "./lib/tls.ts";
import { createWebServer } from "./web/server.ts";

export { version } from "./version.ts";
/** renderProbe: the pages' rendering of a database, for `restore`'s check of a backup (web/probe.tsx). */
export { renderProbe } from "./web/probe.tsx";

/**
 * minFreeBytes: /readyz says "not ready" while the data dir's file system has less free space than this
 * (16 MiB: a write-ahead log of a large import, a backup's temp copy and the logs' neighbours need room).
 */
export const minFreeBytes = 16 * 1024 * 1024;

export interface App {
  core: Core;
  listeners: Listener[];
  /** the outbound parts (uplinks), started after the listeners and stopped before them */
  connectors: Connector[];
  /** every socket of every listener that has not logged in yet */
  pool: AcceptPool;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** the real address of the web server's ports ("http", "https") or of a started listener, by type */
  address(name: string): { host: string; port: number } | undefined;
  /** reloadTls: SIGHUP; re-read the TLS certificate and key */
  reloadTls(): void;
  /** routes: every route of the admin page and API (method, path pattern), for tests that must cover them all */
  routes(): { method: string; path: string }[];
}

/**
 * createApp: composition root. open db -> migrate -> core -> web server, listeners and connectors;
 * `start` binds the web server, then each listener of the registry in order, then each connector (an
 * uplink forwards what the listeners take in) and, if one fails, stops those already started in reverse
 * before rethrowing (Caddy's run()); `stop` reverses all: connectors first, so an uplink's last words
 * still go out while the broker runs.
 */
export function createApp(
  config: Config,
  log: Logger,
  coreOptions: CoreOptions = {},
  appOptions: { minFreeBytes?: number } = {},
): App {
  // A short busy timeout: bun:sqlite waits synchronously, so a CLI holding the lock must not stall the
  // event loop (every listener) for seconds; write-behind retries later, an admin's write answers 503.
  const db = openDataDir(config.dataDir, { busyTimeoutMs: 250 });
  const core = createCore(db, log, {
    sessionTtlMs: config.sessionTtlSeconds * 1000,
    accepts: acceptsTable(),
    requestTypeOf,
    metricsPerIntegration: config.metricsPerIntegration,
    ...coreOptions,
  });
  // One TLS configuration for HTTPS and MQTT over TLS (made or read when the appliance starts).
  const tls = new TlsSource({ dataDir: config.dataDir, certFile: config.tlsCertFile, keyFile: config.tlsKeyFile });
  // One pool for the sockets of every listener that have not logged in: strangers holding sockets on
  // one port take room from all, so they are counted together (src/core/accept-pool.ts).
  const pool = new AcceptPool({
    capacity: config.maxPending,
    timeoutMs: config.pendingTimeoutSeconds * 1000,
    log: log.child({ part: "accept-pool" }),
    metrics: core.metrics,
    refuse: (remote) => core.bans.addressBanned(remote),
  });
  for (const warning of config.warnings) log.warn(warning);
  const deps = { core, version, dataDir: config.dataDir, bind: config.bind, tls, pool };
  const listeners = config.listeners.map(({ module, options }) =>
    module.create({ ...deps, log: log.child({ listener: module.type }) }, options),
  );
  const connectors = config.connectors.map(({ module, options }) =>
    module.create({ core, version, dataDir: config.dataDir, log: log.child({ part: module.name }) }, options),
  );
  const mounts = listeners.flatMap((l) => (l.http ? [l.http] : []));
  let ready = false;
  const readiness = () => {
    const reasons: string[] = [];
    if (!ready) reasons.push("starting or stopping");
    for (const p of parts)
      if (p.name !== "tls" && !started.includes(p))
        reasons.push(`${p.name} not ${p.connector ? "started" : "listening"}`);
    // A connector says how its far end is; only its own `ready: false` makes the appliance unready.
    const detail: Record<string, unknown> = {};
    for (const c of connectors) {
      const r = c.readiness?.();
      if (!r) continue;
      detail[c.name] = r.detail;
      if (!r.ready) reasons.push(`${c.name} not ready`);
    }
    try {
      db.$client.run("BEGIN IMMEDIATE");
      db.$client.run("ROLLBACK");
    } catch (err) {
      reasons.push(`database not writable: ${(err as Error).message}`);
    }
    // BEGIN IMMEDIATE + ROLLBACK writes nothing: on a full disk it succeeds while every sign-in fails
    // with "database or disk is full". Free space below the floor is not ready, and says so.
    try {
      const fs = statfsSync(config.dataDir);
      const free = fs.bavail * fs.bsize;
      const floor = appOptions.minFreeBytes ?? minFreeBytes;
      if (free < floor)
        reasons.push(
          `database not writable: ${free} bytes free on the data dir's file system, below the ${floor} the appliance needs`,
        );
    } catch (err) {
      reasons.push(`data dir not readable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return { ready: reasons.length === 0, reasons, connectors: detail };
  };
  const web = createWebApp(core, log, {
    version,
    mounts,
    readiness,
    pages: [...listeners, ...connectors].flatMap((p) => (p.pages ? [p.pages] : [])),
    describe: (i) => {
      for (const l of listeners) {
        const note = l.describe?.(i);
        if (note) return note;
      }
      return undefined;
    },
    // a type's connection help is its own part's (asked when a page is rendered, after start)
    help: (type, context) =>
      listeners.find((l) => l.type === type)?.help?.({ ...context, port: (name) => addressOf(name)?.port }),
  });
  const maxBodyBytes = Math.max(defaultMaxBodyBytes, ...mounts.map((m) => m.maxBodyBytes ?? 0));
  const http = createWebServer(web, {
    host: config.bind,
    httpPort: config.httpPort,
    httpsPort: config.httpsPort,
    tls,
    redirect: config.httpRedirect,
    trustedProxies: config.trustedProxies,
    maxBodyBytes,
    websockets: mounts.flatMap((m) => (m.websocket ? [m.websocket] : [])),
    requests: core.metrics.counter("gatehouse_http_requests_total", "HTTP requests by route class and status"),
    routeClassOf: (path) => mounts.find((m) => m.routeClass && m.claims(path))?.routeClass,
    pool: config.httpAcceptFront ? pool : undefined,
    maxConnections: config.httpMaxConnections,
  });
  const tlsNeeded = config.httpsPort !== null || listeners.some((l) => l.needsTls);
  // The web server first: the admin page answers while the listeners (OPC UA: ~1 s) start.
  // Each part's addresses by name: the web server has one per scheme; a listener that shares another's
  // port (HTTP integrations on the web port, VRPC in the broker) has none.
  const parts: {
    name: string;
    connector?: boolean;
    start(): Promise<void>;
    stop(): Promise<void>;
    addresses(): Record<string, { host: string; port: number } | undefined>;
  }[] = [
    {
      name: "tls",
      async start() {
        if (!tlsNeeded) return;
        const m = await tls.load();
        log.info("tls certificate", { source: m.source, fingerprint: m.fingerprint, file: m.certFile });
        core.tlsInfo.attach({ fingerprint: m.fingerprint, source: m.source, certFile: m.certFile });
        tls.onChange((n) =>
          core.tlsInfo.attach({ fingerprint: n.fingerprint, source: n.source, certFile: n.certFile }),
        );
        tls.watch((err) => log.error("tls reload failed; the previous certificate stays", { err }));
      },
      async stop() {
        tls.close();
      },
      addresses: () => ({}),
    },
    {
      name: "web",
      start: () => http.start(),
      stop: () => http.stop(),
      addresses: () => ({ http: http.address("http"), https: http.address("https") }),
    },
    ...listeners.map((l) => ({
      name: l.type,
      start: () => l.start(),
      stop: () => l.stop(),
      addresses: () => ({ [l.type]: l.address() }),
    })),
    ...connectors.map((c) => ({
      name: c.name,
      connector: true,
      start: () => c.start(),
      stop: () => c.stop(),
      addresses: () => ({}),
    })),
  ];
  const started: typeof parts = [];
  const addressOf = (name: string) => {
    for (const p of parts) {
      const a = p.addresses()[name];
      if (a) return a;
    }
    return undefined;
  };
  let stopped = false;

  const bootstrapAdmin = async () => {
    if (core.admins.hasAdmin()) return;
    if (config.adminPassword) {
      await core.admins.setPassword("admin", config.adminPassword);
      log.info(`admin created from ${config.adminPasswordSource ?? "GATEHOUSE_ADMIN_PASSWORD"}`, { username: "admin" });
      return;
    }
    const a = http.address();
    if (!a && !config.publicUrl) {
      // --http-port off: no setup link could be opened here (a crash here once ended the start)
      log.warn("no admin yet and no HTTP port for a setup link: run gatehouse admin set-password --username NAME");
      return;
    }
    const token = core.admins.startSetup();
    const host = !a || a.host === "0.0.0.0" || a.host === "::" ? "127.0.0.1" : a.host;
    const base = config.publicUrl?.replace(/\/$/, "") ?? `http://${host}:${a?.port}`;
    log.warn("no admin yet: open the setup link within 1 hour", { url: `${base}/setup?token=${token}` });
  };

  return {
    core,
    listeners,
    connectors,
    pool,
    routes: () => web.routes.map((r) => ({ method: r.method, path: r.path })),
    async start() {
      core.start();
      for (const part of parts) {
        try {
          await part.start();
        } catch (err) {
          // on a (nearly) full disk its database says only "disk I/O error": the log says the disk is full
          const disk = diskFull(err, config.dataDir);
          log.error("listener failed to start", { listener: part.name, err, ...(disk ? { disk } : {}) });
          await this.stop();
          throw err;
        }
        started.push(part);
        const bound = Object.entries(part.addresses()).filter(([, a]) => a !== undefined);
        for (const [name, a] of bound)
          log.info("listening", { listener: name, address: `${a!.host}:${a!.port}`, part: part.name });
        if (bound.length === 0 && part.name !== "tls") log.info("started", { part: part.name });
      }
      await bootstrapAdmin();
      // Start-up leaves parse garbage behind (node-opcua's nodeset above all): collect it once, so
      // the idle footprint is what the appliance holds, not what it passed through.
      Bun.gc(true);
      ready = true;
      log.info("ready", { version, dataDir: config.dataDir });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      ready = false;
      for (const part of started.splice(0).reverse()) {
        try {
          await part.stop();
        } catch (err) {
          log.error("listener failed to stop", { listener: part.name, err });
        }
      }
      pool.stop();
      core.stop();
      closeDatabase(db);
    },
    address: addressOf,
    reloadTls() {
      if (!tlsNeeded) return;
      try {
        const m = tls.reload();
        log.info("tls certificate reloaded", { fingerprint: m.fingerprint });
      } catch (err) {
        log.error("tls reload failed; the previous certificate stays", { err });
      }
    },
  };
}
