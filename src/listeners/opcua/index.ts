import type { CertificateTrust } from "../../core/certificates.ts";
import type { Listener } from "../listener.ts";
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
    name: "opcua",
    get certificates() {
      return running?.certificates;
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
  };
}
