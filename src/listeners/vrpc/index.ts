import { parseCount } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import { createVrpcDirectory } from "./directory.ts";

/**
 * vrpcListener: VRPC agents and clients log in through the MQTT broker (it admits VRPC integrations); this
 * listener is the appliance's own view of them: the directory of agents and the calls from the page.
 */
export const vrpcListener = defineListener<{ callTimeoutMs: number }>()({
  type: "vrpc",
  accepts: [],
  configKeys: {
    "vrpc-call-timeout": { flag: "--vrpc-call-timeout SECONDS", env: "GATEHOUSE_VRPC_CALL_TIMEOUT", help: "how long a call from the page waits for its agent", default: "10" },
  },
  parseConfig: (get) => ({ callTimeoutMs: parseCount("vrpc-call-timeout", get("vrpc-call-timeout")!, 1, 600) * 1000 }),
  create(deps, options) {
    const vrpc = createVrpcDirectory(deps.core.bus, deps.log, options.callTimeoutMs);
    let detach: (() => void) | undefined;
    return {
      type: "vrpc",
      async start() {
        await vrpc.start();
        detach = deps.core.vrpc.attach(vrpc.directory);
      },
      async stop() {
        detach?.();
        vrpc.stop();
      },
      address: () => undefined,
    };
  },
});
