import { vrpcAgentIdentity } from "../../core/vrpc.ts";
import type { ConnectHelp, HelpContext } from "../../lib/pages.ts";
import { jsString } from "../../lib/quote.ts";

/**
 * vrpcHelp: what each shape of a VRPC username does (core/permissions.ts decides by it), the broker
 * its agents and clients connect to, and a VrpcAgent started with this integration's name.
 */
export function vrpcHelp(ctx: HelpContext): ConnectHelp {
  const mqtt = ctx.port("mqtt");
  const broker = `mqtt://${ctx.host}:${mqtt ?? 1883}`;
  const id = vrpcAgentIdentity(ctx.username) ?? { domain: "vrpc", agent: ctx.username };
  return {
    username:
      "<domain>/<agent> (e.g. plant/press-1): an agent (edge connector) that announces itself as <agent> in " +
      "<domain>, or a client of that domain; either reaches only <domain>/…. Start the agent with this domain and " +
      "agent name. A name without / is a client: it announces no agent and reaches a VRPC domain only through a " +
      "topic filter that names the domain. Agents and clients connect to the MQTT broker.",
    urls: mqtt ? [{ label: "MQTT broker", url: broker }] : [],
    retry: "VRPC: a VrpcAgent retries by itself and comes in within a second or two.",
    examples: [
      {
        label: "VrpcAgent (npm vrpc 3.5)",
        text: [
          "const { VrpcAdapter, VrpcAgent } = require('vrpc')",
          "VrpcAdapter.register(MyClass)",
          "const agent = new VrpcAgent({",
          `  broker: ${jsString(broker)},`,
          `  domain: ${jsString(id.domain)},`,
          `  agent: ${jsString(id.agent)},`,
          `  username: ${jsString(ctx.username)},`,
          "  password: 'PASSWORD'",
          "})",
          "await agent.serve()",
        ].join("\n"),
      },
    ],
  };
}
