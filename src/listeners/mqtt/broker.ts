import { Aedes, type AuthenticateError, type Client, type ConnectPacket, type PublishPacket, type Subscription } from "aedes";
import { createServer, type Server, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import type { AcceptPool, PendingSocket } from "../../core/accept-pool.ts";
import type { Core } from "../../core/index.ts";
import { mayPublish, mayRead, maySubscribe } from "../../core/permissions.ts";
import type { SessionHandle } from "../../core/sessions.ts";
import { isValidTopicString } from "../../core/topics.ts";
import type { Integration, IntegrationType, LoginFailure } from "../../core/types.ts";
import { StaleLoginError } from "../../lib/errors.ts";
import type { WsPeer } from "../../lib/http.ts";
import type { Logger } from "../../lib/logger.ts";
import type { TlsSource } from "../../lib/tls.ts";
import type { Listener } from "../listener.ts";
import {
  assertAedesShape,
  assertBrokerShape,
  assertClientShape,
  deliverOnlyPublishProperties,
  disconnectV5,
  dropPublishes,
  eachClient,
  forgetSession,
  handleOnFirstBytes,
  holdUntilConnack,
  limitPacketSize,
  markRedeliveries,
  parserOf,
  refuseUnknownProtocolLevels,
  refuseV5,
  retainedStream,
  stopAtDisconnect,
} from "./aedes-internals.ts";
import { ClientIdOwners } from "./client-ids.ts";
import { foreignPublishProperty, foreignWillProperty } from "./properties.ts";

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
  maxPacketBytes?: number;
  /** MQTT over TLS on this port (null/absent: none) */
  tlsPort?: number | null;
  /** MQTT over WebSockets at this path of the web server's ports (absent: none) */
  websocketPath?: string;
  /** MQTT 5: the longest session expiry a client may ask for */
  maxSessionExpirySeconds?: number;
  /** MQTT 5: sessions (and delayed wills) waiting after their connection ended, at most */
  maxPendingSessions?: number;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 for each refusal reason. */
export const connackFor: Record<LoginFailure, 1 | 2 | 3 | 4 | 5> = {
  "unknown-user": 4,
  "wrong-password": 4,
  throttled: 4,
  deactivated: 5,
  "wrong-type": 5,
  stale: 5,
  "unsupported-protocol": 1,
  "client-id-in-use": 2,
  "connection-limit": 3,
  anonymous: 4,
  "certificate-user": 4,
  "insecure-token": 4,
  "certificate-rejected": 5,
};

/** WsStream: a WebSocket connection as the byte stream aedes reads MQTT from (one frame = bytes). */
class WsStream extends Duplex {
  readonly remoteAddress: string;
  constructor(private readonly peer: WsPeer) {
    super();
    this.remoteAddress = peer.remote;
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.peer.send(chunk);
    done();
  }
  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.peer.close();
    done(err);
  }
}

/** protocolOf: how a session and a failed login name the protocol level. */
function protocolOf(version: number | undefined): string | undefined {
  return version === 5 ? "MQTT 5" : version === 4 ? "MQTT 3.1.1" : version === 3 ? "MQTT 3.1" : undefined;
}

/** keepsSession: the session outlives the connection (3.1.1 clean session off; 5 a session expiry). */
function keepsSession(packet: ConnectPacket | undefined): boolean {
  if (!packet) return false;
  if (packet.protocolVersion === 5) return ((packet.properties as { sessionExpiryInterval?: number } | undefined)?.sessionExpiryInterval ?? 0) > 0;
  return !packet.clean;
}

function authError(code: number, reason: string): AuthenticateError {
  const err = new Error(reason) as AuthenticateError;
  err.returnCode = code as AuthenticateError["returnCode"];
  return err;
}

/** Conn: what the listener knows of one authenticated client. */
interface Conn {
  integration: Integration;
  socket: Socket;
  session?: SessionHandle;
  /** kicked by the core: its will is not published */
  revoked: boolean;
  /** the client asked for a persistent session that had to start clean (its id's old owner is gone) */
  restorePersistence: boolean;
}

/**
 * createMqttListener: an aedes broker whose every hook goes to the core. No anonymous access; the
 * library's allow-all defaults (authenticate, authorizePublish, authorizeSubscribe, authorizeForward)
 * are replaced. The session registry follows the sockets: a session opens only for a client still
 * connected, and the socket's own `close` ends it, whatever order aedes reports events in.
 */
export function createMqttListener(deps: MqttDeps, opts: MqttOptions & { type?: IntegrationType }): Listener & { tlsAddress(): { host: string; port: number } | undefined } {
  const { core, log } = deps;
  const { credentials, sessions, topicSpace } = core;
  const type = opts.type ?? "mqtt";
  const maxPacket = opts.maxPacketBytes ?? 1024 * 1024;
  const maxConnections = opts.maxConnections ?? 10_000;
  const { pool } = deps;
  const conns = new WeakMap<Client, Conn>();
  const connects = new WeakMap<Client, ConnectPacket>();
  const owners = new ClientIdOwners((id) => credentials.peek(id) !== undefined);
  const dropped = new WeakSet<object>();
  const sockets = new Set<Socket>();
  /** each socket's place in the accept pool, until it has logged in */
  const pendingOf = new WeakMap<object, PendingSocket>();
  let authenticated = 0;
  let broker: Aedes | undefined;
  let server: Server | undefined;
  let tlsServer: TlsServer | undefined;
  let websocketAccept: ((peer: WsPeer) => void) | undefined;
  const detach: (() => void)[] = [];
  const stats = { refusedPublishes: 0 };
  const metric = {
    messagesIn: core.metrics.counter("gatehouse_mqtt_messages_in_total", "MQTT messages accepted from clients"),
    bytesIn: core.metrics.counter("gatehouse_mqtt_bytes_in_total", "Payload bytes of those messages"),
    messagesOut: core.metrics.counter("gatehouse_mqtt_messages_out_total", "MQTT messages delivered to clients"),
    bytesOut: core.metrics.counter("gatehouse_mqtt_bytes_out_total", "Payload bytes of those deliveries"),
    refused: core.metrics.counter("gatehouse_mqtt_refused_publishes_total", "Publishes refused by the topic permissions (acknowledged, dropped)"),
  };

  const remoteOf = (client: Client) => (client.conn as Socket).remoteAddress ?? "unknown";
  /** current: the integration as it is now (permissions may have changed since login) */
  const current = (client: Client | null) => {
    const conn = client ? conns.get(client) : undefined;
    return conn && !conn.revoked ? credentials.peek(conn.integration.id) : undefined;
  };
  const refuse = (client: Client, username: string | undefined, reason: LoginFailure) =>
    credentials.loginRefused(type, username ?? "", reason, { remote: remoteOf(client), clientId: client.id });

  /** a client hammering a forbidden topic must not flood the journal: log the 1st, 10th, 100th, ... */
  const refusals = new WeakMap<Client, number>();
  const logRefusal = (client: Client, what: string, fields: Record<string, unknown>) => {
    const n = (refusals.get(client) ?? 0) + 1;
    refusals.set(client, n);
    if (Number.isInteger(Math.log10(n))) log.warn(what, { ...fields, clientId: client.id, refusals: n });
  };

  const hooks = {
    preConnect(client: Client, packet: ConnectPacket, done: (err: Error | null, ok: boolean) => void) {
      pendingOf.get(client.conn)?.spoke(); // a whole CONNECT: a real client, no longer silent
      const version = packet.protocolVersion;
      if (version !== 3 && version !== 4 && version !== 5) {
        // aedes answers CONNACK 1 itself; the admin should see why the device cannot connect.
        log.info("mqtt protocol version not supported", { version, clientId: packet.clientId?.slice(0, 128), remote: remoteOf(client) });
        refuse(client, packet.username, "unsupported-protocol");
      }
      // [MQTT-3.1.2-22] 3.1.1 (and 3.1): no password without a user name; a CONNECT that breaks §3.1 is
      // closed without CONNACK [MQTT-3.1.4-1], as Mosquitto 2 does. MQTT 5 allows a password alone.
      if (version !== 5 && packet.password !== undefined && packet.username === undefined) {
        return done(new Error("password without user name"), false);
      }
      const will = packet.will as { topic: string; qos: number; properties?: Record<string, unknown> } | undefined;
      // [MQTT-3.1.2-14] will QoS 3 is a protocol violation; a will topic obeys the topic rules; a will
      // carries Will Properties only (§3.1.3.2).
      const badWill = will && (will.qos > 2 || !isValidTopicString(will.topic) || /[#+]/.test(will.topic) || foreignWillProperty(will.properties));
      if (badWill) return done(new Error("malformed will"), false);
      connects.set(client, packet);
      done(null, true);
    },

    authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: (err: AuthenticateError | null, ok: boolean | null) => void) {
      const packet = connects.get(client);
      // [MQTT-3.1.3-8] an empty client id needs a clean session (aedes 1.2 would invent an id nobody can resume);
      // MQTT 3.1 (§3.1 Client Identifier) needs 1 to 23 characters: CONNACK 2 as Mosquitto (longer ids pass there).
      if (packet?.clientId === "" && (!packet.clean || packet.protocolVersion === 3)) return done(authError(2, "empty client id"), null);
      if (authenticated >= maxConnections) {
        log.warn("mqtt connection refused: limit reached", { limit: maxConnections, remote: remoteOf(client) });
        refuse(client, username, "connection-limit");
        return done(authError(3, "connection limit"), null);
      }
      const meta = { remote: remoteOf(client), clientId: client.id, protocol: protocolOf(packet?.protocolVersion) };
      // No username is an unknown user: refused with 4, logged and throttled like any other.
      credentials.verify(type, username ?? "", password?.toString("utf8") ?? "", meta).then(
        (result) => {
          if (!result.ok) {
            // MQTT 5 hears "connection rate exceeded" (0x9F) for a throttled login; 3.1.1 has only 4
            if (result.reason === "throttled" && client.version === 5) refuseV5(client, 0x9f);
            return done(authError(connackFor[result.reason], result.reason), null);
          }
          const socket = client.conn as Socket;
          if (client.closed || socket.destroyed) return done(authError(3, "gone"), null);
          const claim = owners.claim(client.id, result.integration.id, !keepsSession(packet));
          if (claim === "taken") {
            refuse(client, username, "client-id-in-use");
            return done(authError(2, "client id in use by another integration"), null);
          }
          const conn: Conn = { integration: result.integration, socket, revoked: false, restorePersistence: false };
          if (claim === "orphaned" && packet && keepsSession(packet)) {
            // Another integration's persistent session under this id: start clean, then persist.
            packet.clean = true;
            client.clean = true;
            conn.restorePersistence = true;
          }
          conns.set(client, conn);
          authenticated++;
          pendingOf.get(socket)?.leave();
          socket.once("close", () => {
            authenticated--;
            owners.release(client.id, result.integration.id);
            conn.session?.close();
          });
          // The session opens with the login and ends with the socket: online as soon as the CONNACK
          // is out, and never a ghost, whatever order aedes reports its events in.
          const kick = (reason: string) => {
            log.info("mqtt client dropped", { username: conn.integration.username, clientId: client.id, reason });
            conn.revoked = true; // no will for a revoked client
            // MQTT 5 hears why: 0x98 an admin's Disconnect, 0x87 a revocation; 3.1.1 just loses the socket
            if (client.version === 5) disconnectV5(client, reason === "disconnected by admin" ? 0x98 : 0x87);
            else client.close();
          };
          try {
            // a VRPC integration logging in over the broker is a VRPC session (OnlineVRPC, gatehouse_sessions{type="vrpc"})
            const sessionType = conn.integration.type === "vrpc" ? "vrpc" : type;
            conn.session = sessions.open({ integration: conn.integration, type: sessionType, clientId: client.id, remote: remoteOf(client), protocol: protocolOf(packet?.protocolVersion), kick });
          } catch (err) {
            if (!(err instanceof StaleLoginError)) throw err;
            // Changed (password, active, permissions) or deleted while the password was checked; the
            // socket's close (aedes closes it after this CONNACK) releases the client id.
            return done(authError(5, "integration changed during login"), null);
          }
          done(null, true);
        },
        (err) => {
          log.error("mqtt authenticate failed", { err });
          done(authError(3, "server error"), null);
        },
      );
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void) {
      if (!client) return done(null); // the broker's own publishes (in-process bus)
      // MQTT 5 §3.3.2.3: a property PUBLISH cannot carry (a Will Delay Interval, a Subscription Identifier
      // [MQTT-3.3.4-6]) is a malformed packet: DISCONNECT 0x81 as Mosquitto, never forwarded. A will is
      // asked here too (no `cmd`); its properties were checked at CONNECT.
      if (client.version === 5 && packet.cmd === "publish" && foreignPublishProperty(packet.properties as Record<string, unknown> | undefined)) {
        disconnectV5(client, 0x81);
        return done(new Error("malformed publish properties"));
      }
      // [MQTT-1.5.3-1/2] [MQTT-4.7.3-2] bad UTF-8 or U+0000 in a topic: protocol error, connection closed.
      if (!isValidTopicString(packet.topic)) {
        if (client.version === 5) client.close(); // aedes would answer v5 with 0x87 and carry on
        return done(new Error("malformed topic"));
      }
      const integration = current(client);
      if (mayPublish(integration, packet.topic, topicSpace)) return done(null);
      stats.refusedPublishes++;
      metric.refused.add();
      logRefusal(client, "publish refused", { username: conns.get(client)?.integration.username, topic: packet.topic.slice(0, 256) });
      if (integration) core.events.emit("publish.refused", { integration, topic: packet.topic });
      // MQTT 5: PUBACK/PUBREC 0x87 (Not authorized) with this reason string if the client asked for
      // problem information; aedes drops the message. QoS 0 has no acknowledgement to carry it.
      if (client.version === 5) return done(new Error(`not authorized to publish to ${packet.topic.slice(0, 128)}`));
      // [MQTT-3.3.5-2] acknowledged as usual, then dropped: not routed, not retained, not queued.
      dropped.add(packet);
      done(null);
    },

    authorizeSubscribe(client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void) {
      if (!isValidTopicString(sub.topic)) return done(new Error("malformed topic filter"));
      if (maySubscribe(current(client), sub.topic, topicSpace)) return done(null, sub);
      logRefusal(client, "subscribe refused", { username: conns.get(client)?.integration.username, topic: sub.topic.slice(0, 256) });
      done(null, null); // SUBACK 0x80 for this filter
    },

    /** authorizeForward: asked for every delivery, live and queued, so narrowed permissions hold at once. */
    authorizeForward(client: Client, packet: PublishPacket) {
      if (!mayRead(current(client), packet.topic, topicSpace)) return null;
      metric.messagesOut.add();
      metric.bytesOut.add(packet.payload?.length ?? 0);
      return packet;
    },
  };

  return {
    type,
    async start() {
      broker = await Aedes.createBroker({
        ...hooks,
        // a backstop: the pool's deadline (shorter under pressure) closes a socket without CONNECT first
        connectTimeout: pool.timeoutMs + 5_000,
        maxClientsIdLength: 128,
        heartbeatInterval: 60_000,
        // MQTT 5: a session outlives its connection at most this long, and only so many may wait
        sessionExpiryIntervalLimit: opts.maxSessionExpirySeconds ?? 86_400,
        pendingSessionsLimit: opts.maxPendingSessions ?? 10_000,
        topicAliasMaximum: 16, // aliases a v5 client may set up per connection
        maximumPacketSize: maxPacket, // advertised to v5 clients (enforced for all as the length is read)
      } as ConstructorParameters<typeof Aedes>[0]);
      const b = broker;
      assertBrokerShape(b);
      deliverOnlyPublishProperties(b);
      dropPublishes(b, dropped);
      markRedeliveries(b);
      let clientChecked = false;
      eachClient(b, (client) => {
        if (!clientChecked) assertClientShape(client);
        clientChecked = true;
        holdUntilConnack(client);
        stopAtDisconnect(client);
      });

      // A persistent session that had to start clean (its id's old owner is gone) persists from now on.
      b.on("clientReady", (client) => {
        const conn = conns.get(client);
        if (conn?.restorePersistence && !client.closed) client.clean = false;
      });
      b.on("clientError", (client, err) => log.debug("mqtt client error", { clientId: client.id, err }));
      b.on("connectionError", (client, err) => log.debug("mqtt connection error", { remote: remoteOf(client), err }));
      b.on("publish", (packet, client) => {
        if (client) {
          metric.messagesIn.add();
          metric.bytesIn.add(packet.payload?.length ?? 0);
        }
        if (client && core.bus.listening && packet.topic.charCodeAt(0) !== 36) {
          const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
          core.bus.routed({ topic: packet.topic, payload, retain: packet.retain });
        }
      });

      detach.push(
        core.metrics.gauge({
          name: "gatehouse_mqtt_retained_messages",
          help: "Retained messages held by the broker",
          read: async () => {
            let n = 0;
            for await (const _ of retainedStream(b, "#")) n++;
            return [[{}, n]];
          },
        }),
        core.bus.attach({
          publish: ({ topic, payload, retain, qos }) =>
            new Promise((resolve, reject) => {
              b.publish({ cmd: "publish", topic, payload, qos: qos ?? 0, retain, dup: false } as PublishPacket, (err) => (err ? reject(err) : resolve()));
              if (core.bus.listening) core.bus.routed({ topic, payload, retain });
            }),
          // a PUBLISH is its payload plus topic and header: keep a little room for those
          maxPayloadBytes: Math.max(0, maxPacket - 1024),
          async *retained(filter) {
            for await (const p of retainedStream(b, filter)) yield { topic: p.topic, payload: Buffer.from(p.payload) };
          },
        }),
        // A deleted integration's persistent sessions go with it: subscriptions now, queue at the next connect.
        core.events.on("integration.deleted", ({ integration }) => {
          for (const clientId of owners.orphan(integration.id)) void forgetSession(b, clientId).catch(() => undefined);
        }),
        // A deactivated integration's stored sessions end too, whatever expiry a v5 client asked for.
        core.events.on("integration.deactivated", ({ integration }) => {
          for (const clientId of owners.endSessions(integration.id)) void forgetSession(b, clientId).catch(() => undefined);
        }),
      );

      let checked = false;
      /**
       * admit: a new socket enters the accept pool, or is closed at once when the pool is full of
       * sockets that have all spoken. TLS sockets enter at the raw `connection`, before the handshake.
       */
      const admit = (socket: Socket, listener: string): PendingSocket | undefined => {
        socket.on("error", () => {});
        const pending = pool.admit(listener, socket.remoteAddress ?? "unknown", () => socket.destroy());
        if (!pending) {
          log.debug("mqtt connection refused: every waiting slot holds a client that is logging in", { remote: socket.remoteAddress });
          socket.destroy();
          return undefined;
        }
        pendingOf.set(socket, pending);
        // tracked from accept, so a stop also ends a TLS handshake in progress
        sockets.add(socket);
        socket.once("close", () => (pending.leave(), sockets.delete(socket)));
        return pending;
      };
      /** accept: one admitted connection, over TCP, TLS or a WebSocket: the same limits, hooks and kicks. */
      const accept = (socket: Socket) => {
        // an aedes client only for a socket that sends something: a silent one stays cheap
        handleOnFirstBytes(b, socket, (client) => {
          if (!checked) {
            assertAedesShape(b, parserOf(client));
            checked = true;
          }
          limitPacketSize(client, maxPacket);
          refuseUnknownProtocolLevels(client, () => {
            log.info("mqtt protocol version not supported", { remote: socket.remoteAddress });
            credentials.loginRefused(type, "", "unsupported-protocol", { remote: socket.remoteAddress });
          });
        });
      };
      server = createServer((socket) => {
        if (admit(socket, "mqtt")) accept(socket);
      });
      const listen = (srv: Server, port: number) =>
        new Promise<void>((resolve, reject) => {
          srv.once("error", reject);
          srv.listen(port, opts.host, () => {
            srv.off("error", reject);
            resolve();
          });
        });
      if (opts.tlsPort !== undefined && opts.tlsPort !== null) {
        const material = deps.tls!.current;
        // The pool's deadline (shorter under pressure) closes a silent handshake; Node's own timeout
        // (120 s by default) only backs it up. Bun 1.4.4 reports it as a tlsClientError and leaves the
        // socket open, so that handler closes it.
        const secure = createTlsServer({ cert: material.cert, key: material.key, handshakeTimeout: pool.timeoutMs + 5_000 }, (socket) => {
          // Bun hands the same TLSSocket to `connection` and here; Node wraps the raw socket it admitted.
          const tlsSocket = socket as unknown as Socket;
          const raw = (socket as unknown as { _parent?: Socket })._parent;
          if (!pendingOf.has(tlsSocket)) {
            const pending = raw ? pendingOf.get(raw) : undefined;
            if (!pending) return void socket.destroy(); // closed by the pool meanwhile
            pendingOf.set(tlsSocket, pending);
          }
          accept(tlsSocket);
        });
        // Counted from the raw connection, before the handshake: an idle TLS socket is a pending one.
        secure.on("connection", (socket: Socket) => void admit(socket, "mqtts"));
        secure.on("tlsClientError", (err, socket) => {
          log.debug("mqtt tls handshake failed", { remote: socket.remoteAddress, err });
          socket.destroy();
        });
        tlsServer = secure;
        // a renewed certificate: new connections get it, open ones keep theirs
        detach.push(deps.tls!.onChange((m) => secure.setSecureContext({ cert: m.cert, key: m.key })));
        await listen(secure, opts.tlsPort);
        const a = secure.address();
        if (a && typeof a === "object") log.info("listening", { listener: "mqtts", address: `${opts.host}:${a.port}` });
      }
      websocketAccept = (peer) => {
        const stream = new WsStream(peer);
        peer.state = stream;
        if (admit(stream as unknown as Socket, "mqtt-ws")) accept(stream as unknown as Socket);
      };
      await listen(server, opts.port);
    },
    async stop() {
      const s = server;
      const t = tlsServer;
      const b = broker;
      server = undefined;
      tlsServer = undefined;
      broker = undefined;
      websocketAccept = undefined;
      for (const d of detach.splice(0)) d();
      // Stop accepting, drop every client, then wait for the servers (they wait for open sockets).
      const serverClosed = Promise.all([s, t].map((x) => (x ? new Promise<void>((resolve) => x.close(() => resolve())) : undefined)));
      if (b) await new Promise<void>((resolve) => b.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await serverClosed;
    },
    address() {
      const a = server?.address();
      return a && typeof a === "object" ? { host: opts.host, port: a.port } : undefined;
    },
    /** where MQTT over TLS listens, once started */
    tlsAddress() {
      const a = tlsServer?.address();
      return a && typeof a === "object" ? { host: opts.host, port: a.port } : undefined;
    },
    needsTls: opts.tlsPort !== undefined && opts.tlsPort !== null,
    // MQTT over WebSockets on the web server's ports (browser dashboards, vrpc in the browser)
    http: opts.websocketPath
      ? {
          claims: () => false,
          fetch: () => new Response(null, { status: 404 }),
          websocket: {
            path: opts.websocketPath,
            protocol: "mqtt",
            open: (peer) => websocketAccept?.(peer),
            message: (peer, data) => (peer.state as WsStream | undefined)?.push(data),
            close: (peer) => (peer.state as WsStream | undefined)?.destroy(),
          },
        }
      : undefined,
  };
}
