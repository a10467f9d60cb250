import type { AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from "aedes";
import type { Socket } from "node:net";
import type { PublishedMessage } from "../../core/bus.ts";
import { mayPublish, mayRead, maySubscribe } from "../../core/permissions.ts";
import { isValidTopicString, topicMatches } from "../../core/topics.ts";
import type { LoginFailure } from "../../core/types.ts";
import { StaleLoginError } from "../../lib/errors.ts";
import {
  allSubscriptionIdentifiers,
  deliverResumedQueue,
  disconnectV5,
  exceedsClientMaximum,
  grantSubscription,
  reasonStringsOnRequest,
  refuseOverQuota,
  refuseV5,
} from "./aedes-internals.ts";
import { foreignPublishProperty, foreignWillProperty } from "./properties.ts";
import { WsStream } from "./transports.ts";
import { filterOf, isShared, isSharedName } from "./shared.ts";
import type { Conn, MqttState } from "./state.ts";

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 for each refusal reason. */
export const connackFor: Record<LoginFailure, 1 | 2 | 3 | 4 | 5> = {
  "unknown-user": 4,
  "wrong-password": 4,
  throttled: 4,
  banned: 5,
  deactivated: 5,
  "wrong-type": 5,
  stale: 5,
  "unsupported-protocol": 1,
  "client-id-in-use": 2,
  "connection-limit": 3,
  // [MQTT-3.2.2.3] 3: server unavailable (MQTT 5 hears 0x89 Server busy): the password-check line is full
  busy: 3,
  abandoned: 3, // the client has gone; nothing is sent
  anonymous: 4,
  "certificate-user": 4,
  "insecure-token": 4,
  "certificate-rejected": 5,
};

/** protocolOf: how a session and a failed login name the protocol level. */
function protocolOf(version: number | undefined): string | undefined {
  return version === 5 ? "MQTT 5" : version === 4 ? "MQTT 3.1.1" : version === 3 ? "MQTT 3.1" : undefined;
}

/** keepsSession: the session outlives the connection (3.1.1 clean session off; 5 a session expiry). */
function keepsSession(packet: ConnectPacket | undefined): boolean {
  if (!packet) return false;
  if (packet.protocolVersion === 5)
    return ((packet.properties as { sessionExpiryInterval?: number } | undefined)?.sessionExpiryInterval ?? 0) > 0;
  return !packet.clean;
}

/**
 * sessionExpiryOf: how long the client's session outlives its connection, in seconds (null: no end). MQTT 5
 * asks (aedes has clamped it to the limit, and a DISCONNECT may have changed it); a 3.1.1 session with
 * clean session off asks for ever, and gets the same limit (as Mosquitto's persistent_client_expiration).
 */
function sessionExpiryOf(client: Client, maxSeconds: number): number | null {
  if (client.version !== 5) return maxSeconds === 0 ? null : maxSeconds;
  return client.sessionExpiryInterval >= 0xffffffff ? null : client.sessionExpiryInterval; // 0: ends now
}

function authError(code: number, reason: string): AuthenticateError {
  const err = new Error(reason) as AuthenticateError;
  err.returnCode = code as AuthenticateError["returnCode"];
  return err;
}

/**
 * createHooks: aedes' hooks, each a step that asks the core (aedes' own defaults allow everything):
 * `preConnect` checks the CONNECT, `authenticate` the credential (and opens the session), and
 * `authorizePublish`, `authorizeSubscribe`, `authorizeForward` ask core/permissions.ts at every
 * message and every delivery, so a narrowed permission holds at once.
 */
export function createHooks(s: MqttState, maxConnections: number, maxIntegrationConnections = maxConnections) {
  const { credentials, sessions, topicSpace } = s.core;
  /**
   * pendingSubs: filters granted and not yet the client's (`client.subscriptions` gets them only once a
   * persistent session's are stored), so one SUBSCRIBE of 1000 new filters counts each against the bounds.
   */
  const pendingSubs = new WeakMap<Client, Set<string>>();
  /**
   * overSubscriptionBounds: would a new filter take the session past `maxSubscriptionsPerSession`, or a
   * persistent session's integration past `maxSubscriptionsPerIntegration` (its stored sessions together)?
   * A filter the session holds already is a change of options, never refused. Returns the bound, or undefined.
   */
  const overSubscriptionBounds = (client: Client, topic: string): string | undefined => {
    const held = (client as unknown as { subscriptions: Record<string, unknown> }).subscriptions ?? {};
    let pending = pendingSubs.get(client);
    if (Object.hasOwn(held, topic) || pending?.has(topic)) return undefined;
    const limits = s.store.limits;
    let extra = 0; // granted, not yet in `held` (a persistent session's wait for their commit)
    if (pending) for (const t of pending) if (!Object.hasOwn(held, t)) extra++;
    if (Object.keys(held).length + extra >= limits.maxSubscriptionsPerSession) return "session";
    const conn = s.conns.get(client);
    // the store counts a persistent session's filters as it keeps them; those granted and not kept yet count here
    let unstored = 0;
    if (pending) for (const t of pending) if (!s.store.hasSubscription(client.id, t)) unstored++;
    if (
      conn?.persistent &&
      s.store.subscriptionsOf(conn.integration.id) + unstored >= limits.maxSubscriptionsPerIntegration
    )
      return "integration";
    if (!pending) pendingSubs.set(client, (pending = new Set()));
    pending.add(topic);
    return undefined;
  };
  return {
    preConnect(client: Client, packet: ConnectPacket, done: (err: Error | null, ok: boolean) => void) {
      // A whole CONNECT: a real client, no longer silent. When the pool is full of such clients, one
      // whose name or address has failed logins lately is closed first to make room.
      const remote = s.remoteOf(client);
      const name = packet.username ?? "";
      s.pendingOf.get(client.conn)?.spoke(() => credentials.suspect(remote, name));
      const version = packet.protocolVersion;
      if (version !== 3 && version !== 4 && version !== 5) {
        // aedes answers CONNACK 1 itself; the admin should see why the device cannot connect.
        s.log.info("mqtt protocol version not supported", {
          version,
          clientId: packet.clientId?.slice(0, 128),
          remote: s.remoteOf(client),
        });
        s.refuse(client, packet.username, "unsupported-protocol");
      }
      // [MQTT-3.1.2-22] 3.1.1 (and 3.1): no password without a user name; a CONNECT that breaks §3.1 is
      // closed without CONNACK [MQTT-3.1.4-1], as Mosquitto 2 does. MQTT 5 allows a password alone.
      if (version !== 5 && packet.password !== undefined && packet.username === undefined) {
        return done(new Error("password without user name"), false);
      }
      // [MQTT-1.5.3-1/2] a client id or user name with U+0000, bad UTF-8 (decoded to U+FFFD) or a surrogate is a
      // malformed CONNECT: closed, as Mosquitto does (MQTT 5: CONNACK 0x85 Client Identifier not valid / 0x81
      // Malformed Packet first). Two different ids on the wire must not become one session id.
      const badId = packet.clientId !== "" && !isValidTopicString(packet.clientId ?? "");
      if (badId || (packet.username !== undefined && packet.username !== "" && !isValidTopicString(packet.username))) {
        s.log.info("mqtt connect refused: malformed UTF-8 in the client id or user name", { remote });
        if (version === 5) refuseV5(client, badId ? 0x85 : 0x81);
        return done(new Error("malformed UTF-8 string"), false);
      }
      const will = packet.will as { topic: string; qos: number; properties?: Record<string, unknown> } | undefined;
      // [MQTT-3.1.2-14] will QoS 3 is a protocol violation; a will topic obeys the topic rules; a will
      // carries Will Properties only (§3.1.3.2).
      const badWill =
        will &&
        (will.qos > 2 ||
          !isValidTopicString(will.topic) ||
          /[#+]/.test(will.topic) ||
          foreignWillProperty(will.properties));
      if (badWill) return done(new Error("malformed will"), false);
      s.connects.set(client, packet);
      done(null, true);
    },

    authenticate(
      client: Client,
      username: string | undefined,
      password: Buffer | undefined,
      done: (err: AuthenticateError | null, ok: boolean | null) => void,
    ) {
      const packet = s.connects.get(client);
      // [MQTT-3.1.3-8] an empty client id needs a clean session (aedes 1.2 would invent an id nobody can resume);
      // MQTT 3.1 (§3.1 Client Identifier) needs 1 to 23 characters: CONNACK 2 as Mosquitto (longer ids pass there).
      if (packet?.clientId === "" && (!packet.clean || packet.protocolVersion === 3))
        return done(authError(2, "empty client id"), null);
      // A client id is held in memory, in broker.db and on the sessions page: bounded for every protocol level
      // (aedes checks only 3.1's). CONNACK 2, 0x85 (Client Identifier not valid) in MQTT 5.
      if (packet && packet.clientId.length > s.limits.maxClientIdLength) {
        s.log.info("mqtt client id too long", {
          length: packet.clientId.length,
          limit: s.limits.maxClientIdLength,
          clientId: packet.clientId.slice(0, 64),
          remote: s.remoteOf(client),
        });
        return done(authError(2, "client id too long"), null);
      }
      if (s.authenticated >= maxConnections) {
        s.log.warn("mqtt connection refused: limit reached", { limit: maxConnections, remote: s.remoteOf(client) });
        s.refuse(client, username, "connection-limit");
        return done(authError(3, "connection limit"), null);
      }
      const meta = { remote: s.remoteOf(client), clientId: client.id, protocol: protocolOf(packet?.protocolVersion) };
      // The socket's close ends the attempt if it still waits for its password check: a client that
      // has gone costs no hash.
      const socket = client.conn as Socket;
      const gone = new AbortController();
      const abort = () => gone.abort();
      if (socket.destroyed) abort();
      else socket.once("close", abort);
      // No username is an unknown user: refused with 4, logged and throttled like any other.
      credentials.verify(s.type, username ?? "", password?.toString("utf8") ?? "", meta, gone.signal).then(
        (result) => {
          socket.off("close", abort);
          if (!result.ok) {
            // MQTT 5 hears "connection rate exceeded" (0x9F) for a throttled login and "server busy"
            // (0x89) when the line is full; 3.1.1 has only 4 and 3
            if (result.reason === "throttled" && client.version === 5) refuseV5(client, 0x9f);
            if (result.reason === "busy" && client.version === 5) refuseV5(client, 0x89);
            if (result.reason === "banned" && client.version === 5) refuseV5(client, 0x8a); // MQTT 5 §3.2.2.2 Banned
            return done(authError(connackFor[result.reason], result.reason), null);
          }
          if (client.closed || socket.destroyed) return done(authError(3, "gone"), null);
          const integration = result.integration;
          // MQTT 5 Clean Start 0 resumes the integration's stored session even when this connection asks for
          // no expiry (§3.1.2.4): its subscriptions and queue are the client's, and it ends with this connection.
          const stored = s.store.session(client.id);
          const resumes = packet?.protocolVersion === 5 && !packet.clean && stored?.integrationId === integration.id;
          const persistent = keepsSession(packet) || resumes;
          if (resumes && !keepsSession(packet)) deliverResumedQueue(client);
          if (packet?.protocolVersion === 5) reasonStringsOnRequest(client, packet);
          // Stored sessions per integration are bounded; one offline makes room, live ones do not.
          if (persistent && !s.store.roomFor(integration.id, client.id)) {
            s.log.warn("mqtt persistent session refused: the integration's sessions are all connected", {
              username: integration.username,
              clientId: client.id.slice(0, 128),
            });
            s.refuse(client, username, "connection-limit");
            if (client.version === 5) refuseV5(client, 0x97); // quota exceeded
            return done(authError(3, "persistent sessions limit"), null);
          }
          // One integration holds at most its part of the connections (attack4 F7: one credential took every
          // slot and the others heard "server unavailable"); a takeover of one of its own ids replaces, not adds.
          const live = s.liveByIntegration.get(integration.id) ?? 0;
          if (live >= maxIntegrationConnections && s.owners.liveFor(client.id, integration.id) === 0) {
            s.log.warn("mqtt connection refused: the integration's limit reached", {
              username: integration.username,
              limit: maxIntegrationConnections,
              remote: s.remoteOf(client),
            });
            s.refuse(client, username, "connection-limit");
            if (client.version === 5) refuseV5(client, 0x97); // quota exceeded
            return done(authError(3, "integration connection limit"), null);
          }
          // A will is kept in broker.db until the connection ends: it counts toward the store's cap and the
          // integration's share (attack4 F1), and a CONNECT whose will does not fit is refused as a full store is.
          const willRefused = packet?.will ? s.store.willRefused(integration.id, client.id, packet.will) : undefined;
          if (willRefused) {
            s.log.warn("mqtt connection refused: no room for its will in broker.db", {
              username: integration.username,
              clientId: client.id.slice(0, 128),
              bound: willRefused === "share" ? "integration share" : "store cap",
            });
            s.refuse(client, username, "connection-limit");
            if (client.version === 5) refuseV5(client, 0x97); // quota exceeded
            return done(authError(3, "no room for the will"), null);
          }
          const claim = s.owners.claim(client.id, integration.id, !persistent);
          if (claim === "taken") {
            s.refuse(client, username, "client-id-in-use");
            return done(authError(2, "client id in use by another integration"), null);
          }
          const conn: Conn = { integration, socket, revoked: false, restorePersistence: false, persistent };
          if (claim === "orphaned" && packet && persistent) {
            // Another integration's persistent session under this id: start clean, then persist.
            packet.clean = true;
            client.clean = true;
            conn.restorePersistence = true;
          }
          if (persistent) {
            // Whose the session is goes to broker.db with it: after a restart the id is still this integration's.
            s.store.openSession({
              clientId: client.id,
              integrationId: integration.id,
              integrationCreated: integration.createdAt,
              integrationStamp: integration.updatedAt,
              expiry: sessionExpiryOf(client, s.limits.maxSessionExpirySeconds),
              cleanStart: packet?.clean === true || claim === "orphaned",
            });
          } else if (s.store.session(client.id)) {
            s.store.forget(client.id); // a clean session discards the one stored under its id [MQTT-3.1.2-6]
          }
          s.conns.set(client, conn);
          s.authenticated++;
          s.liveByIntegration.set(integration.id, (s.liveByIntegration.get(integration.id) ?? 0) + 1);
          s.pendingOf.get(socket)?.leave();
          if (socket instanceof WsStream) socket.loggedIn();
          socket.once("close", () => {
            s.authenticated--;
            const left = (s.liveByIntegration.get(integration.id) ?? 1) - 1;
            if (left > 0) s.liveByIntegration.set(integration.id, left);
            else s.liveByIntegration.delete(integration.id);
            const live = s.owners.release(client.id, integration.id);
            // the session's last connection: it is offline from now, and ends after its expiry
            if (live === 0 && conn.persistent)
              s.store.closeSession(client.id, sessionExpiryOf(client, s.limits.maxSessionExpirySeconds));
            if (live === 0 && !conn.persistent) s.store.dropVolatile(client.id);
            conn.session?.close();
          });
          // The session opens with the login and ends with the socket: online as soon as the CONNACK
          // is out, and never a ghost, whatever order aedes reports its events in.
          const kick = (reason: string) => {
            s.log.info("mqtt client dropped", { username: conn.integration.username, clientId: client.id, reason });
            conn.revoked = true; // no will for a revoked client
            // MQTT 5 hears why: 0x98 an admin's Disconnect, 0x87 a revocation; 3.1.1 just loses the socket
            if (client.version === 5) disconnectV5(client, reason === "disconnected by admin" ? 0x98 : 0x87);
            else client.close();
          };
          try {
            // a VRPC integration logging in over the broker is a VRPC session (OnlineVRPC, gatehouse_sessions{type="vrpc"})
            const sessionType = conn.integration.type === "vrpc" ? "vrpc" : s.type;
            conn.session = sessions.open({
              integration: conn.integration,
              type: sessionType,
              clientId: client.id,
              remote: s.remoteOf(client),
              protocol: protocolOf(packet?.protocolVersion),
              kick,
              // the filters aedes granted (a refused one never enters `client.subscriptions`)
              subscriptions: () => Object.keys((client as unknown as { subscriptions?: object }).subscriptions ?? {}),
            });
          } catch (err) {
            if (!(err instanceof StaleLoginError)) throw err;
            // Changed (password, active, permissions) or deleted while the password was checked; the
            // socket's close (aedes closes it after this CONNACK) releases the client id.
            return done(authError(5, "integration changed during login"), null);
          }
          done(null, true);
        },
        (err) => {
          socket.off("close", abort);
          s.log.error("mqtt authenticate failed", { err });
          done(authError(3, "server error"), null);
        },
      );
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void) {
      if (!client) return done(null); // the broker's own publishes (in-process bus)
      // MQTT 5 §3.3.2.3: a property PUBLISH cannot carry (a Will Delay Interval, a Subscription Identifier
      // [MQTT-3.3.4-6]) is a malformed packet: DISCONNECT 0x81 as Mosquitto, never forwarded. A will is
      // asked here too (no `cmd`); its properties were checked at CONNECT.
      if (
        client.version === 5 &&
        packet.cmd === "publish" &&
        foreignPublishProperty(packet.properties as Record<string, unknown> | undefined)
      ) {
        disconnectV5(client, 0x81);
        return done(new Error("malformed publish properties"));
      }
      // [MQTT-1.5.3-1/2] [MQTT-4.7.3-2] bad UTF-8 or U+0000 in a topic: protocol error, connection closed.
      if (!isValidTopicString(packet.topic)) {
        if (client.version === 5) client.close(); // aedes would answer v5 with 0x87 and carry on
        return done(new Error("malformed topic"));
      }
      const integration = s.current(client);
      // a shared subscription's name is no topic: nobody publishes to it
      if (!isSharedName(packet.topic) && mayPublish(integration, packet.topic, topicSpace)) {
        // Durable taps (an uplink's outbox) hold a QoS 1/2 message before aedes writes its PUBACK, which follows
        // `done`; one a tap could not store (a full disk) is refused (BusNotStoredError, see publishBeforePuback)
        const held = s.core.bus.tap(packet as PublishedMessage, "mqtt", packet.qos > 0);
        return held && packet.qos > 0 ? void held.then(() => done(null), done) : done(null);
      }
      s.stats.refusedPublishes++;
      s.metric.refused.add();
      s.conns.get(client)?.session?.traffic.refused();
      s.logRefusal(client, "publish refused", {
        username: s.conns.get(client)?.integration.username,
        topic: packet.topic.slice(0, 256),
      });
      if (integration) s.core.events.emit("publish.refused", { integration, topic: packet.topic });
      // MQTT 5: PUBACK/PUBREC 0x87 (Not authorized) with this reason string if the client asked for
      // problem information; aedes drops the message. QoS 0 has no acknowledgement to carry it.
      if (client.version === 5) return done(new Error(`not authorized to publish to ${packet.topic.slice(0, 128)}`));
      // [MQTT-3.3.5-2] acknowledged as usual, then dropped: not routed, not retained, not queued.
      s.dropped.add(packet);
      done(null);
    },

    /** subscribed: a SUBSCRIBE's filters are now the client's (see `pendingSubs`) */
    subscribed(client: Client, topics: string[]) {
      const p = pendingSubs.get(client);
      if (p) for (const t of topics) p.delete(t);
    },

    authorizeSubscribe(
      client: Client,
      sub: Subscription,
      done: (err: Error | null, sub?: Subscription | null) => void,
    ) {
      // `$share/g/f` arrives renamed `$SHARE/g/f` (shared.ts); a client's own `$SHARE/...` as "\u0000": refused
      if (sub.topic === "\u0000") return done(null, null);
      if (!isValidTopicString(sub.topic)) return done(new Error("malformed topic filter"));
      // the core's permissions judge a shared subscription's filter
      const filter = filterOf(sub.topic);
      // broker.db full: a persistent session keeps the filters it has (a restore re-asks for those) and gets no new one
      const conn = s.conns.get(client);
      if (conn?.persistent && s.store.full && !s.store.hasSubscription(client.id, sub.topic)) {
        s.logRefusal(client, "subscribe refused: the broker store is full", { topic: sub.topic.slice(0, 256) });
        return done(null, null);
      }
      if (maySubscribe(s.current(client), filter, topicSpace)) {
        // nor when its integration holds its share of broker.db (SUBACK 0x97 quota exceeded, 3.1.1 0x80)
        if (
          conn?.persistent &&
          !s.store.hasSubscription(client.id, sub.topic) &&
          s.store.subscriptionOverShare(conn.integration.id, sub.topic)
        ) {
          refuseOverQuota(sub);
          s.logRefusal(client, "subscribe refused: the integration holds its share of the broker store", {
            topic: sub.topic.slice(0, 256),
          });
          return done(null, null);
        }
        const over = overSubscriptionBounds(client, sub.topic);
        if (over) {
          refuseOverQuota(sub); // SUBACK 0x97 (MQTT 5) / 0x80, and the store does not keep it
          s.logRefusal(client, "subscribe refused: too many subscriptions", {
            topic: sub.topic.slice(0, 256),
            bound: over,
          });
          return done(null, null);
        }
        grantSubscription(sub);
        if (isShared(sub.topic)) s.shared?.join(client, sub.topic);
        return done(null, sub);
      }
      s.logRefusal(client, "subscribe refused", {
        username: s.conns.get(client)?.integration.username,
        topic: sub.topic.slice(0, 256),
      });
      done(null, null); // SUBACK 0x80 for this filter
    },

    /** authorizeForward: asked for every delivery, live and queued, so narrowed permissions hold at once. */
    authorizeForward(client: Client, packet: PublishPacket) {
      if (!mayRead(s.current(client), packet.topic, topicSpace)) return null;
      const out = allSubscriptionIdentifiers(client, packet, topicMatches);
      // [MQTT-3.1.2-24] larger than the client's Maximum Packet Size: discarded, as Mosquitto does
      if (exceedsClientMaximum(client, out)) return null;
      const bytes = packet.payload?.length ?? 0;
      s.metric.messagesOut.add();
      s.metric.bytesOut.add(bytes);
      s.conns.get(client)?.session?.traffic.delivered(bytes);
      return out;
    },
  };
}
