import type { ConnectorModule } from "./connector.ts";
import { uplinkConnector } from "./uplink/index.ts";

// biome-ignore lint/suspicious/noExplicitAny: each entry keeps its own option type; the list only checks their shape
type AnyConnectorModule = ConnectorModule<any>;

/**
 * connectorRegistry: every outbound part, once, in start order. A new connector is one folder plus one
 * line here; `serve` flags, `--help`, boot (after the listeners) and stop (before them) loop over it.
 */
export const connectorRegistry = [uplinkConnector] as const satisfies readonly AnyConnectorModule[];
