import type { CertificateTrust } from "./trust.ts";
import { option } from "../../lib/options.ts";
import { defineListener, type Listener } from "../listener.ts";
import { opcuaHelp } from "./help.ts";
import { certificatePages } from "./pages.tsx";
import type { OpcuaDeps, OpcuaOptions, RunningOpcua } from "./server.ts";

export type { OpcuaDeps, OpcuaOptions } from "./server.ts";

export interface OpcuaListener extends Listener {
  /** the trust list, once started */
  readonly certificates: CertificateTrust | undefined;
}

/**
 * createOpcuaListener: node-opcua is imported when the listener starts, not when the binary
 * loads: it is most of the start-up time and memory, and HTTP and MQTT already serve meanwhile
 * (or do without it when `--opcua-port off`).
 */
export function createOpcuaListener(deps: OpcuaDeps, opts: OpcuaOptions): OpcuaListener {
  let running: RunningOpcua | undefined;
  return {
    type: "opcua",
    get certificates() {
      return running?.certificates;
    },
    pages: {
      nav: { href: "/certificates", label: "OPC UA certificates" },
      routes: (kit) => certificatePages(kit, () => running?.certificates),
    },
    async start() {
      const { startOpcuaServer } = await import("./server.ts");
      running = await startOpcuaServer(deps, opts);
    },
    async stop() {
      const r = running;
      running = undefined;
      await r?.stop();
    },
    address() {
      return running ? { host: opts.host, port: running.port } : undefined;
    },
    help: (ctx) => opcuaHelp(ctx, running?.port),
  };
}

/** opcuaListener: the OPC UA server; its Topics folder mirrors the broker through the core's topic bus. */
export const opcuaListener = defineListener<{
  port: number;
  trustAll: boolean;
  maxSessions: number;
  fullNodeset: boolean;
}>()({
  type: "opcua",
  accepts: ["opcua"],
  options: {
    opcuaPort: option.port("OPC UA server", "4840"),
    opcuaMaxSessions: option.count("OPC UA sessions at most (secure channels to match)", "100", 1, 10_000),
    opcuaFullNodeset: option.bool(
      "the whole OPC UA standard nodeset (PubSub, GDS, alarm types; ~22 MB more memory) instead of the data-access one",
      "false",
    ),
    opcuaTrustAll: option.bool("labs only: accept unknown OPC UA client certificates", "false"),
  },
  parseConfig: (o) =>
    o.opcuaPort === null
      ? null
      : {
          port: o.opcuaPort,
          trustAll: o.opcuaTrustAll,
          maxSessions: o.opcuaMaxSessions,
          fullNodeset: o.opcuaFullNodeset,
        },
  create: (deps, o) =>
    createOpcuaListener(
      { core: deps.core, log: deps.log, pool: deps.pool },
      {
        host: deps.bind,
        port: o.port,
        dataDir: deps.dataDir,
        version: deps.version,
        autoAcceptCertificates: o.trustAll,
        maxSessions: o.maxSessions,
        fullNodeset: o.fullNodeset,
      },
    ),
});
