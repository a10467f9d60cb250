import type { Core } from "../core/index.ts";
import type { Logger } from "../lib/logger.ts";
import type { OptionSet, OptionValues } from "../lib/options.ts";
import type { AdminPages } from "../lib/pages.ts";

/**
 * Connector: the contract of an outbound part (an uplink to another broker), the listener's twin
 * (src/listeners/listener.ts): a listener lets devices in, a connector carries the appliance's data out.
 * It works through the core only: the topic bus (what it forwards, what it publishes locally), the
 * permissions, the events and the metrics; it never imports a listener or the web layer.
 */
export interface Connector {
  /** its registry name, as the log and /readyz name it */
  readonly name: string;
  /** starts its work (after every listener started); throw only for what must abort boot */
  start(): Promise<void>;
  /** idempotent; safe after a failed start (runs before the listeners stop) */
  stop(): Promise<void>;
  /** its pages on the admin page: a nav entry and routes (mounted behind the admin guard) */
  readonly pages?: AdminPages;
  /**
   * readiness: what /readyz shows of it. `ready: false` makes the appliance unready; a connector whose
   * far end is down says so in `detail` and stays ready (the appliance itself serves).
   */
  readiness?(): { ready: boolean; detail: unknown };
}

/** ConnectorDeps: what the composition root hands every connector. */
export interface ConnectorDeps {
  core: Core;
  log: Logger;
  version: string;
  dataDir: string;
}

/**
 * ConnectorModule: one registry entry (`connectors/index.ts`). `options` are its `serve` options, each
 * declared once (flag, environment variable, `--help` line and parse derive from it); `parseConfig`
 * turns their values into its options (throws ConfigError) or null when it is switched off.
 */
export interface ConnectorModule<O, S extends OptionSet = OptionSet> {
  readonly name: string;
  readonly options: S;
  parseConfig(values: OptionValues<S>): O | null;
  create(deps: ConnectorDeps, options: O): Connector;
}

/**
 * defineConnector: keeps an entry's option type tied to its own parse and create.
 * Usage: `defineConnector<Options>()({ name, options, parseConfig, create })`.
 */
export function defineConnector<O>() {
  return <S extends OptionSet>(module: ConnectorModule<O, S>) => module;
}
