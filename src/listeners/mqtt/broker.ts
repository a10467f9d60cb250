import { Aedes } from "aedes";
import type { AcceptPool } from "../../core/accept-pool.ts";
import type { Core } from "../../core/index.ts";
import type { IntegrationType } from "../../core/types.ts";
import { mayRead } from "../../core/permissions.ts";
import type { Logger } from "../../lib/logger.ts";
import type { TlsSource } from "../../lib/tls.ts";
import type { Listener } from "../listener.ts";
import {
  assertBrokerShape,
  assertClientShape,
  deliverOnlyPublishProperties,
  dropPublishes,
  eachClient,
  subackQuotaCodes,
  holdUntilConnack,
  limitInflight,
  markRedeliveries,
  publishBeforePuback,
  stopAtDisconnect,
} from "./aedes-internals.ts";
import { createHooks } from "./hooks.ts";
import { BrokerStore, type StoreLimits } from "./persistence.ts";
import { publishStaleWills, restoreOwners, wireBroker } from "./provider.ts";
import { createSharedGroups, renameSharedFilters } from "./shared.ts";
import { createMqttState } from "./state.ts";
import { startTransports, type WsStream } from "./transports.ts";

export { connackFor } from "./hooks.ts";

export interface MqttDeps {
  core: Core;
  log: Logger;
  /** the certificate for MQTT over TLS, when `tlsPort` is set */
  tls?: TlsSource;
  /** the pool every socket is counted in from accept until it has logged in (shared by all listeners) */
  pool: AcceptPool;
}

export interface MqttOptions {
  host: string;
  port: number;
  /** authenticated connections at most (CONNACK 3 past it) */
  maxConnections?: number;
  /** authenticated connections of one integration at most (CONNACK 3, MQTT 5 0x97 past it) */
  maxIntegrationConnections?: number;
  maxPacketBytes?: number;
  /** largest CONNECT accepted (at most maxPacketBytes): held per socket before login */
  maxConnectBytes?: number;
  /** MQTT over TLS on this port (null/absent: none) */
  tlsPort?: number | null;
  /** MQTT over WebSockets at this path of the web server's ports (absent: none) */
  websocketPath?: string;
  /** MQTT 5: the longest session expiry a client may ask for */
  maxSessionExpirySeconds?: number;
  /** MQTT 5: sessions (and delayed wills) waiting after their connection ended, at most */
  maxPendingSessions?: number;
  /** the longest client id accepted, at every protocol level */
  maxClientIdLength?: number;
  /**
   * where the broker keeps what it acknowledged (`<data-dir>/broker.db`) and its bounds; without `file` the
   * same store keeps everything in memory only (benchmarks)
   */
  store?: Partial<StoreLimits> & { file?: string; maxPageCount?: number };
}

/**
 * defaultStoreLimits: the bounds of `--mqtt-max-sessions`, `--mqtt-max-queued(-bytes)`, `--mqtt-store-max-bytes`,
 * `--mqtt-store-max-integration-bytes`.
 */
export const defaultStoreLimits: StoreLimits = {
  maxSessionsPerIntegration: 100,
  maxQueuedMessages: 10_000,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxStoreBytes: 256 * 1024 * 1024,
  maxIntegrationBytes: 0, // an eighth of the store
  maxSubscriptionsPerSession: 1000,
  maxSubscriptionsPerIntegration: 10_000,
};

/**
 * createMqttListener: an aedes broker whose every hook goes to the core (hooks.ts: no anonymous access;
 * the library's allow-all defaults are replaced), fed by TCP, TLS and WebSocket transports that count
 * each socket in the accept pool (transports.ts), and providing the core's topic bus (provider.ts). The
 * session registry follows the sockets: a session opens only for a client still connected, and the
 * socket's own `close` ends it, whatever order aedes reports events in.
 */
export function createMqttListener(
  deps: MqttDeps,
  opts: MqttOptions & { type?: IntegrationType },
): Listener & { tlsAddress(): { host: string; port: number } | undefined } {
  const storeLog = deps.log.child({ part: "broker-store" });
  const maxSessionExpirySeconds = opts.maxSessionExpirySeconds ?? 86_400;
  const maxClientIdLength = opts.maxClientIdLength ?? 128;
  const storeOpts = { ...defaultStoreLimits, ...opts.store, maxPacketBytes: opts.maxPacketBytes, log: storeLog };
  let store = new BrokerStore(storeOpts);
  const state = createMqttState(deps.core, deps.log, opts.type ?? "mqtt", store, {
    maxSessionExpirySeconds,
    maxClientIdLength,
  });
  const { subscribed, ...hooks } = createHooks(
    state,
    opts.maxConnections ?? 10_000,
    opts.maxIntegrationConnections || Math.max(1, Math.floor((opts.maxConnections ?? 10_000) / 2)),
  );
  const maxPacket = opts.maxPacketBytes ?? 1024 * 1024;
  const maxQueued = opts.store?.maxQueuedMessages ?? defaultStoreLimits.maxQueuedMessages;
  const maxQueuedBytes = opts.store?.maxQueuedBytes ?? defaultStoreLimits.maxQueuedBytes;
  let broker: Aedes | undefined;
  let transports: Awaited<ReturnType<typeof startTransports>> | undefined;
  let unwire: (() => void)[] = [];

  return {
    type: state.type,
    async start() {
      // A stopped listener started again gets a fresh store over the same file.
      if (store.opened) state.store = store = new BrokerStore(storeOpts);
      await store.open();
      try {
        // Whose each stored session is (a restart must not free a client id for another integration).
        restoreOwners(state);
        broker = await Aedes.createBroker({
          ...hooks,
          persistence: store,
          // a backstop: the pool's deadline (shorter under pressure) closes a socket without CONNECT first
          connectTimeout: deps.pool.timeoutMs + 5_000,
          maxClientsIdLength: maxClientIdLength,
          heartbeatInterval: 60_000,
          // MQTT 5: a session outlives its connection at most this long, and only so many may wait
          sessionExpiryIntervalLimit: maxSessionExpirySeconds,
          pendingSessionsLimit: opts.maxPendingSessions ?? 10_000,
          topicAliasMaximum: 16, // aliases a v5 client may set up per connection
          maximumPacketSize: maxPacket, // advertised to v5 clients (enforced for all as the length is read)
        } as ConstructorParameters<typeof Aedes>[0]);
      } catch (err) {
        await store.close();
        throw err;
      }
      const b = broker;
      // aedes as the MQTT specs and Mosquitto have it (aedes-internals.ts: each patch says why)
      assertBrokerShape(b);
      deliverOnlyPublishProperties(b);
      dropPublishes(b, state.dropped, state.published);
      // One line every 10 s for every client together, with how many since: the cause is the appliance's (a
      // full disk), not one client's (found from outside: refused 3.1.1 devices reconnecting logged a line per
      // connection, ~53 a second from 10 devices).
      let notStored = { at: Number.NEGATIVE_INFINITY, since: 0 };
      publishBeforePuback(b, state.published, (client, err) => {
        notStored.since++;
        const now = performance.now();
        if (now - notStored.at < 10_000) return;
        deps.log.warn("mqtt publish not acknowledged: it could not be stored", {
          err: err.message,
          clientId: client.id,
          refused: notStored.since,
        });
        notStored = { at: now, since: 0 };
      });
      markRedeliveries(b);
      // the member asked before it is chosen; its delivery (authorizeForward) asks again
      state.shared = createSharedGroups(b, (client, topic) =>
        mayRead(state.current(client), topic, deps.core.topicSpace),
      );
      let clientChecked = false;
      eachClient(b, (client) => {
        if (!clientChecked) assertClientShape(client);
        clientChecked = true;
        holdUntilConnack(client);
        renameSharedFilters(client);
        // MQTT 5 Receive Maximum; what waits for a slot is bounded as a session's queue (ids wrap at 65 535)
        limitInflight(client, Math.min(maxQueued, 50_000), maxQueuedBytes, () => state.flowDropped(client));
        stopAtDisconnect(client);
        subackQuotaCodes(client);
      });
      b.on(
        "subscribe",
        (subs, client) =>
          client &&
          subscribed(
            client,
            subs.map((x) => x.topic),
          ),
      );
      unwire = wireBroker(b, state, maxPacket);
      // What a previous run's end cut: its clients' wills, published now as their integrations may.
      unwire.push(publishStaleWills(b, state));
      try {
        transports = await startTransports(b, state, deps.pool, deps.tls, {
          host: opts.host,
          port: opts.port,
          tlsPort: opts.tlsPort,
          maxPacketBytes: maxPacket,
          maxConnectBytes: opts.maxConnectBytes ?? 64 * 1024, // limitPacketSize keeps it within the packet limit
        });
      } catch (err) {
        for (const d of unwire.splice(0)) d();
        broker = undefined;
        await new Promise<void>((resolve) => b.close(() => resolve()));
        await store.close();
        throw err;
      }
    },
    async stop() {
      const b = broker;
      const t = transports;
      broker = undefined;
      transports = undefined;
      for (const d of unwire.splice(0)) d();
      // Stop accepting, drop every client, then wait for the servers (they wait for open sockets).
      const closeBroker = () => (b ? new Promise<void>((resolve) => b.close(() => resolve())) : Promise.resolve());
      if (t) await t.stop(closeBroker);
      else await closeBroker();
      // after the broker: what its closing clients changed (sessions now offline) is written too
      await store.close();
    },
    address: () => transports?.address(),
    /** where MQTT over TLS listens, once started */
    tlsAddress: () => transports?.tlsAddress(),
    needsTls: opts.tlsPort !== undefined && opts.tlsPort !== null,
    // MQTT over WebSockets on the web server's ports (browser dashboards, vrpc in the browser)
    http: opts.websocketPath
      ? {
          claims: () => false,
          fetch: () => new Response(null, { status: 404 }),
          websocket: {
            path: opts.websocketPath,
            protocol: "mqtt",
            // an MQTT packet per message (clients send one; a larger message is refused by the server): a
            // stranger's half message is held until the pool's deadline, so the bound counts before login too
            maxMessageBytes: maxPacket + 5,
            open: (peer) => transports?.websocketAccept(peer),
            message: (peer, data) => (peer.state as WsStream | undefined)?.push(data),
            close: (peer) => (peer.state as WsStream | undefined)?.destroy(),
          },
        }
      : undefined,
  };
}
