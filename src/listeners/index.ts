import type { AcceptsTable } from "../core/credentials.ts";
import type { RequestTypeOf } from "../core/onboarding.ts";
import type { IntegrationType } from "../core/types.ts";
import type { ListenerModule } from "./listener.ts";
import { httpListener } from "./http/index.ts";
import { mqttListener } from "./mqtt/index.ts";
import { opcuaListener } from "./opcua/index.ts";
import { vrpcListener } from "./vrpc/index.ts";

// biome-ignore lint/suspicious/noExplicitAny: each entry keeps its own option type; the list only checks their shape
type AnyListenerModule = ListenerModule<any>;

/**
 * listenerRegistry: every protocol, once, in start order (the slow OPC UA last, so the others serve
 * while it loads). A new protocol is one folder plus one line here; `serve` flags, `--help`, boot and
 * the login type rules all loop over this list.
 */
export const listenerRegistry = [
  httpListener,
  mqttListener,
  vrpcListener,
  opcuaListener,
] as const satisfies readonly AnyListenerModule[];

/** Every integration type must be admitted by some listener: `tsc` fails here when one is not. */
type Unserved = Exclude<IntegrationType, (typeof listenerRegistry)[number]["accepts"][number]>;
export const everyTypeIsServed: [Unserved] extends [never] ? true : { unserved: Unserved } = true;

/** acceptsTable: which integration types each listener admits, for the core's login check. */
export function acceptsTable(): AcceptsTable {
  return Object.fromEntries(listenerRegistry.map((m) => [m.type, m.accepts]));
}

/** requestTypeOf: the type of an onboarding request: the listener's own unless a part claims it. */
export const requestTypeOf: RequestTypeOf = (listener, username, clientId) =>
  (listenerRegistry as readonly ListenerModule<unknown>[]).find(
    (m) => m.type !== listener && m.claimsRequest?.(listener, username, clientId),
  )?.type ?? listener;
