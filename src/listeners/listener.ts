import type { AcceptPool } from "../core/accept-pool.ts";
import type { Core } from "../core/index.ts";
import type { Integration, IntegrationType } from "../core/types.ts";
import type { HttpMount } from "../lib/http.ts";
import type { Logger } from "../lib/logger.ts";
import type { AdminPages, ConnectHelp, HelpContext, IntegrationNote } from "../lib/pages.ts";
import type { OptionSet, OptionValues } from "../lib/options.ts";
import type { TlsSource } from "../lib/tls.ts";

/**
 * Listener: the contract every protocol adapter satisfies (Caddy's App). An adapter translates its
 * library's callbacks into core calls and nothing more: logins to `credentials.verify`, connections to
 * `sessions.open` (with a kick closure), every topic decision to `core/permissions.ts`.
 */
export interface Listener {
  readonly type: IntegrationType;
  /** bind sockets; throw to abort boot */
  start(): Promise<void>;
  /** idempotent; safe after a failed start */
  stop(): Promise<void>;
  /** where it listens, with the real port once started (port 0 picks one); none for listeners that share the HTTP port */
  address(): { host: string; port: number } | undefined;
  /** requests a listener answers on the shared HTTP port (handed to the web server by the composition root) */
  readonly http?: HttpMount;
  /** it serves TLS (the appliance then loads or makes the certificate before it starts) */
  readonly needsTls?: boolean;
  /** its pages on the admin page: a nav entry and routes (mounted behind the admin guard) */
  readonly pages?: AdminPages;
  /** describe: what this listener adds to an integration's row (a VRPC agent's role), if anything */
  describe?(integration: Integration): IntegrationNote | undefined;
  /** help: how a device of this listener's own type connects (the Add form, an integration's detail) */
  help?(context: HelpContext): ConnectHelp | undefined;
}

/** ListenerDeps: what the composition root hands every listener. */
export interface ListenerDeps {
  core: Core;
  log: Logger;
  version: string;
  dataDir: string;
  bind: string;
  /** the TLS certificate and key (loaded before any listener starts, if one needs them) */
  tls: TlsSource;
  /** the one pool every listener counts its sockets in, from accept until they have logged in */
  pool: AcceptPool;
}

/**
 * ListenerModule: one registry entry (`listeners/index.ts`). `options` are its options, each declared
 * once (its flag, environment variable, `--help` line and parse derive from it); `parseConfig` turns
 * their values into the listener's options (throws ConfigError) or null when it is switched off.
 */
export interface ListenerModule<O, S extends OptionSet = OptionSet> {
  readonly type: IntegrationType;
  /** integration types that may log in through it (its own type first) */
  readonly accepts: readonly IntegrationType[];
  readonly options: S;
  /**
   * claimsRequest: an unknown login that arrived through another listener is this part's during
   * onboarding (VRPC agents log in through the MQTT broker).
   */
  claimsRequest?(via: IntegrationType, username: string, clientId?: string): boolean;
  parseConfig(values: OptionValues<S>): O | null;
  create(deps: ListenerDeps, options: O): Listener;
}

/**
 * defineListener: keeps each entry's option type tied to its own parse and create, and its `accepts`
 * list literal, so the registry can prove at compile time that every type is served.
 * Usage: `defineListener<Options>()({ type, accepts, ... })`.
 */
export function defineListener<O>() {
  return <const A extends readonly IntegrationType[], S extends OptionSet>(
    module: ListenerModule<O, S> & { readonly accepts: A },
  ) => module;
}
