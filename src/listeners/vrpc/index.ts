import { option } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import { vrpcAgentIdentity } from "../../core/vrpc.ts";
import type { Listener } from "../listener.ts";
import { createVrpcDirectory } from "./directory.ts";
import { vrpcHelp } from "./help.ts";
import { agentRoutes } from "./pages.tsx";
import type { VrpcDirectory } from "./types.ts";

/** VrpcListener: the listener, with its directory of agents while it runs. */
export interface VrpcListener extends Listener {
  readonly directory: VrpcDirectory | undefined;
}

/**
 * vrpcListener: VRPC agents and clients log in through the MQTT broker (it admits VRPC integrations); this
 * listener is the appliance's own view of them: the directory of agents and the calls from the page.
 */
export const vrpcListener = defineListener<{ callTimeoutMs: number }>()({
  type: "vrpc",
  accepts: [],
  // An MQTT login named `<domain>/<agent>`, or with a VrpcAgent's client id (`va3...`), is an agent.
  claimsRequest: (via, username, clientId) =>
    via === "mqtt" && (vrpcAgentIdentity(username) !== undefined || clientId?.startsWith("va3") === true),
  options: {
    vrpcCallTimeout: option.count("how long a call from the page waits for its agent", "10", 1, 600, "SECONDS"),
  },
  parseConfig: (o) => ({ callTimeoutMs: o.vrpcCallTimeout * 1000 }),
  create(deps, options) {
    const { core, log } = deps;
    const vrpc = createVrpcDirectory(core.bus, log, options.callTimeoutMs);
    let running = false;
    const current = () => (running ? vrpc.directory : undefined);
    const listener: VrpcListener = {
      type: "vrpc",
      get directory() {
        return current();
      },
      async start() {
        await vrpc.start();
        running = true;
      },
      async stop() {
        running = false;
        vrpc.stop();
      },
      address: () => undefined,
      help: vrpcHelp,
      pages: {
        nav: { href: "/agents", label: "VRPC agents" },
        routes: (kit) => agentRoutes(kit, { current, refused: () => core.refusedAnnouncements.list(), log }),
      },
      /**
       * describe: a VRPC integration named `<domain>/<agent>` whose agent has announced itself is an Agent
       * (Edge Connector), another a Client; an announcement the topic rules refused is said on any row.
       */
      describe(i) {
        const refused = core.refusedAnnouncements.of(i.id);
        const warning = refused && `Agent announcement refused (${refused.agent.slice(0, 128)}): ${refused.reason}`;
        if (i.type !== "vrpc") return warning ? { warning } : undefined;
        const id = vrpcAgentIdentity(i.username);
        const agent = id && current()?.agent(id.domain, id.agent);
        return { text: agent ? `Agent (Edge Connector), ${agent.status}` : "Client", warning };
      },
    };
    return listener;
  },
});
