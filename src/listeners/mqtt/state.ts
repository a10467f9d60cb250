import type { Client, ConnectPacket } from "aedes";
import type { Socket } from "node:net";
import type { PendingSocket } from "../../core/accept-pool.ts";
import type { Core } from "../../core/index.ts";
import type { SessionHandle } from "../../core/sessions.ts";
import type { Integration, IntegrationType, LoginFailure } from "../../core/types.ts";
import type { Logger } from "../../lib/logger.ts";
import { ClientIdOwners } from "./client-ids.ts";
import type { BrokerStore } from "./persistence.ts";
import type { SharedGroups } from "./shared.ts";

/** Conn: what the listener knows of one authenticated client. */
export interface Conn {
  integration: Integration;
  socket: Socket;
  session?: SessionHandle;
  /** kicked by the core: its will is not published */
  revoked: boolean;
  /** the client asked for a persistent session that had to start clean (its id's old owner is gone) */
  restorePersistence: boolean;
  /** its session outlives the connection (stored in broker.db) */
  persistent: boolean;
}

/** SessionLimits: how long a persistent session outlives its connection, and how long a client id may be. */
export interface SessionLimits {
  /** seconds; 0: no limit (MQTT 5 as asked, 3.1.1 never ends) */
  maxSessionExpirySeconds: number;
  maxClientIdLength: number;
}

/**
 * createMqttState: what the broker's steps share: the clients it knows (their login, their CONNECT,
 * their place in the accept pool), who owns which client id, and its counters.
 */
export function createMqttState(
  core: Core,
  log: Logger,
  type: IntegrationType,
  store: BrokerStore,
  limits: SessionLimits,
) {
  const { credentials } = core;
  const conns = new WeakMap<Client, Conn>();
  /** a client's logins and refusals counted against its own metrics */
  const refusals = new WeakMap<Client, number>();
  const state = {
    core,
    log,
    type,
    store,
    limits,
    conns,
    connects: new WeakMap<Client, ConnectPacket>(),
    owners: new ClientIdOwners((id) => credentials.peek(id) !== undefined),
    /** publishes acknowledged and then dropped (3.1.1 has no refusal in a PUBACK) */
    dropped: new WeakSet<object>(),
    /** QoS 1 publishes published (and stored) before their PUBACK: aedes must not publish them again */
    published: new WeakSet<object>(),
    /** each socket's place in the accept pool, until it has logged in */
    pendingOf: new WeakMap<object, PendingSocket>(),
    /** the shared subscriptions' groups (set once the broker exists) */
    shared: undefined as SharedGroups | undefined,
    /** logged-in connections now */
    authenticated: 0,
    /** logged-in connections now, by integration id (bounded by --mqtt-max-integration-connections) */
    liveByIntegration: new Map<number, number>(),
    stats: { refusedPublishes: 0 },
    metric: {
      messagesIn: core.metrics.counter("gatehouse_mqtt_messages_in_total", "MQTT messages accepted from clients"),
      bytesIn: core.metrics.counter("gatehouse_mqtt_bytes_in_total", "Payload bytes of those messages"),
      messagesOut: core.metrics.counter("gatehouse_mqtt_messages_out_total", "MQTT messages delivered to clients"),
      bytesOut: core.metrics.counter("gatehouse_mqtt_bytes_out_total", "Payload bytes of those deliveries"),
      refused: core.metrics.counter(
        "gatehouse_mqtt_refused_publishes_total",
        "Publishes refused by the topic permissions (acknowledged, dropped)",
      ),
      flowDropped: core.metrics.counter(
        "gatehouse_mqtt_flow_dropped_total",
        "QoS 1/2 messages dropped for an MQTT 5 client at its Receive Maximum with its waiting room full",
      ),
    },
    remoteOf: (client: Client) => (client.conn as Socket).remoteAddress ?? "unknown",
    /** current: the integration as it is now (permissions may have changed since login) */
    current(client: Client | null): Integration | undefined {
      const conn = client ? conns.get(client) : undefined;
      return conn && !conn.revoked ? credentials.peek(conn.integration.id) : undefined;
    },
    refuse(client: Client, username: string | undefined, reason: LoginFailure) {
      credentials.loginRefused(type, username ?? "", reason, { remote: state.remoteOf(client), clientId: client.id });
    },
    /** flowDropped: a message for a client at its Receive Maximum found no room to wait (logged 1st, 10th, ...) */
    flowDropped(client: Client) {
      state.metric.flowDropped.add();
      state.logRefusal(client, "mqtt message dropped: the client acknowledges nothing and its waiting room is full", {
        username: conns.get(client)?.integration.username,
      });
    },
    /** logRefusal: a client hammering a forbidden topic must not flood the journal: the 1st, 10th, 100th, ... */
    logRefusal(client: Client, what: string, fields: Record<string, unknown>) {
      const n = (refusals.get(client) ?? 0) + 1;
      refusals.set(client, n);
      if (Number.isInteger(Math.log10(n))) log.warn(what, { ...fields, clientId: client.id, refusals: n });
    },
  };
  return state;
}

export type MqttState = ReturnType<typeof createMqttState>;
