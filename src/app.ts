// tsyringe (inside @peculiar/x509, used by node-opcua-crypto) needs the Reflect polyfill loaded before
// it. node-opcua is loaded lazily, and in the compiled binary only a module of the main chunk (this
// one, before any listener starts) guarantees that order; an import in the lazy chunk did not.
import "reflect-metadata";
import { accessSync, chmodSync, constants, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { createCore, type Core, type CoreOptions } from "./core/index.ts";
import { openDatabase, type Db } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import type { Logger } from "./lib/logger.ts";
import { createHttpListener } from "./listeners/http/index.ts";
import { createMqttListener } from "./listeners/mqtt/index.ts";
import { createOpcuaListener, type OpcuaListener } from "./listeners/opcua/index.ts";
import type { Listener } from "./listeners/listener.ts";
import { createWebApp, defaultMaxBodyBytes } from "./web/app.tsx";
import pkg from "../package.json";

export const version = pkg.version;

export class DataDirError extends Error {
  override name = "DataDirError";
}

/** openDataDir: creates the folder if needed and proves it is writable before anything else runs. */
export function openDataDir(dir: string): Db {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (err) {
    throw new DataDirError(`data dir "${dir}" is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let db: Db;
  try {
    const file = join(dir, "gatehouse.db");
    db = openDatabase(file);
    chmodSync(file, 0o600); // password hashes and session digests: owner only (-wal/-shm inherit it)
  } catch (err) {
    throw new DataDirError(`cannot open database in "${dir}": ${(err as Error).message}`);
  }
  migrate(db);
  return db;
}

export interface App {
  core: Core;
  listeners: Listener[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** the real address of a started listener, by name */
  address(name: string): { host: string; port: number } | undefined;
}

/**
 * createApp: composition root. open db -> migrate -> core -> listeners; `start` binds them in order
 * and, if one fails, stops those already started in reverse before rethrowing; `stop` reverses all.
 */
export function createApp(config: Config, log: Logger, coreOptions: CoreOptions = {}): App {
  const db = openDataDir(config.dataDir);
  const core = createCore(db, log, { sessionTtlMs: config.sessionTtlSeconds * 1000, ...coreOptions });
  let opcua: OpcuaListener | undefined;
  const web = createWebApp(core, log, { version, certificates: () => opcua?.certificates });
  const mqtt =
    config.mqttPort === null
      ? undefined
      : createMqttListener(
          { credentials: core.credentials, sessions: core.sessions, log: log.child({ listener: "mqtt" }) },
          { host: config.bind, port: config.mqttPort, maxConnections: config.mqttMaxConnections, maxPacketBytes: config.mqttMaxPacketBytes },
        );
  opcua =
    config.opcuaPort === null
      ? undefined
      : createOpcuaListener(
          {
            credentials: core.credentials,
            sessions: core.sessions,
            log: log.child({ listener: "opcua" }),
            bus: mqtt && (() => mqtt.bus),
            status: { integrations: () => core.credentials.count(), onlineByType: () => core.sessions.onlineCountByType(), startedAt: Date.now() },
          },
          { host: config.bind, port: config.opcuaPort, dataDir: config.dataDir, version, autoAcceptCertificates: config.opcuaTrustAll },
        );
  // Order matters: HTTP and MQTT serve while OPC UA (the slow one, ~1 s) is still loading and starting.
  const listeners: Listener[] = [
    createHttpListener(web, { host: config.bind, port: config.httpPort, maxBodyBytes: defaultMaxBodyBytes }),
    ...(mqtt ? [mqtt] : []),
    ...(opcua ? [opcua] : []),
  ];
  const started: Listener[] = [];
  let stopped = false;

  const bootstrapAdmin = async () => {
    if (core.admins.hasAdmin()) return;
    if (config.adminPassword) {
      await core.admins.setPassword("admin", config.adminPassword);
      log.info("admin created from GATEHOUSE_ADMIN_PASSWORD", { username: "admin" });
      return;
    }
    const token = core.admins.startSetup();
    const http = listeners[0]!.address()!;
    const host = http.host === "0.0.0.0" || http.host === "::" ? "127.0.0.1" : http.host;
    const base = config.publicUrl?.replace(/\/$/, "") ?? `http://${host}:${http.port}`;
    log.warn("no admin yet: open the setup link within 1 hour", { url: `${base}/setup?token=${token}` });
  };

  return {
    core,
    listeners,
    async start() {
      core.start();
      for (const l of listeners) {
        try {
          await l.start();
        } catch (err) {
          log.error("listener failed to start", { listener: l.name, err });
          await this.stop();
          throw err;
        }
        started.push(l);
        const a = l.address();
        log.info("listening", { listener: l.name, address: a ? `${a.host}:${a.port}` : undefined });
      }
      await bootstrapAdmin();
      log.info("ready", { version, dataDir: config.dataDir });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const l of started.splice(0).reverse()) {
        try {
          await l.stop();
        } catch (err) {
          log.error("listener failed to stop", { listener: l.name, err });
        }
      }
      core.stop();
      db.$client.close();
    },
    address(name) {
      return listeners.find((l) => l.name === name)?.address();
    },
  };
}
