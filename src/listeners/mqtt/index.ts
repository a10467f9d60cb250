import { Aedes, type AuthenticateError, type Client, type Subscription } from "aedes";
import { createServer, type Server, type Socket } from "node:net";
import type { CredentialStore } from "../../core/credentials.ts";
import type { SessionHandle, SessionRegistry } from "../../core/sessions.ts";
import { anyCovers, anyMatches, isVrpcInfoTopic } from "../../core/topics.ts";
import type { Integration, VerifyFailure } from "../../core/types.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Listener } from "../listener.ts";

export interface MqttDeps {
  credentials: CredentialStore;
  sessions: SessionRegistry;
  log: Logger;
}

export interface MqttOptions {
  host: string;
  port: number;
  maxConnections?: number;
  maxPacketBytes?: number;
  /** a socket that sends no CONNECT within this time is closed */
  connectTimeoutMs?: number;
}

/** TopicBus: what other listeners (OPC UA Topics) may do with the broker, in process. */
export interface TopicBus {
  /** every message published from now on (not `$` topics); returns an unsubscribe function */
  onMessage(handler: (topic: string, payload: Buffer, retain: boolean) => void): () => void;
  /** the retained messages stored now */
  retained(): AsyncIterable<{ topic: string; payload: Buffer }>;
  /** publish as the broker itself; the caller has checked permissions */
  publish(topic: string, payload: Buffer, retain: boolean): Promise<void>;
}

export interface MqttListener extends Listener {
  /** in-process access to the broker once started */
  readonly bus: TopicBus;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 for each refusal reason. */
export const connackFor: Record<VerifyFailure, 4 | 5> = {
  "unknown-user": 4,
  "wrong-password": 4,
  throttled: 4,
  deactivated: 5,
  "wrong-type": 5,
};

/** Where a refused publish goes: `#` and `+` never match `$` topics [MQTT-4.7.2-1] and nobody may subscribe here. */
const refusedTopic = "$gatehouse/refused";

function authError(code: 4 | 5, reason: string): AuthenticateError {
  const err = new Error(reason) as AuthenticateError;
  err.returnCode = code;
  return err;
}

/**
 * createMqttListener: an aedes broker whose every hook goes to the core. No anonymous access; the
 * library's allow-all defaults for authenticate, authorizePublish and authorizeSubscribe are replaced.
 */
export function createMqttListener(deps: MqttDeps, opts: MqttOptions): MqttListener {
  const { credentials, sessions, log } = deps;
  const maxPacket = opts.maxPacketBytes ?? 1024 * 1024;
  const maxConnections = opts.maxConnections ?? 10_000;
  /** the integration each authenticated client logged in as, and its registry session */
  const identities = new WeakMap<Client, { integration: Integration; session?: SessionHandle }>();
  let broker: Aedes | undefined;
  let server: Server | undefined;
  const sockets = new Set<Socket>();

  const remoteOf = (client: Client) => (client.conn as Socket).remoteAddress ?? "unknown";

  /** current: the integration as it is now (permissions may have changed since login) */
  const current = (client: Client | null) => {
    if (!client) return undefined;
    const who = identities.get(client);
    return who ? credentials.peek(who.integration.id) : undefined;
  };

  /** refused: a client hammering a forbidden topic must not flood the journal: log the 1st, 10th, 100th, ... */
  const refusals = new WeakMap<Client, number>();
  const logRefusal = (client: Client, what: string, fields: Record<string, unknown>) => {
    const n = (refusals.get(client) ?? 0) + 1;
    refusals.set(client, n);
    if (Number.isInteger(Math.log10(n))) log.warn(what, { ...fields, clientId: client.id, refusals: n });
  };

  const hooks = {
    authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: (err: AuthenticateError | null, ok: boolean | null) => void) {
      const meta = { remote: remoteOf(client), clientId: client.id };
      // No username is an unknown user: refused with 4, logged and throttled like any other.
      credentials.verify("mqtt", username ?? "", password?.toString("utf8") ?? "", meta).then(
        (result) => {
          if (!result.ok) return done(authError(connackFor[result.reason], result.reason), null);
          identities.set(client, { integration: result.integration });
          done(null, true);
        },
        (err) => {
          log.error("mqtt authenticate failed", { err });
          done(authError(5, "server error"), null);
        },
      );
    },

    authorizePublish(client: Client | null, packet: { topic: string; retain: boolean; payload: unknown }, done: (err?: Error | null) => void) {
      if (!client) return done(null); // the broker's own publishes (retained LWT, in-process bridges)
      const integration = current(client);
      const topic = packet.topic;
      const allowed =
        integration !== undefined &&
        !topic.startsWith("$") &&
        !(integration.type !== "vrpc" && isVrpcInfoTopic(topic)) &&
        anyMatches(integration.publishAcl, topic);
      if (allowed) return done(null);
      // [MQTT-3.3.5-2] acknowledge as usual and do not forward: the message goes where nobody listens.
      logRefusal(client, "publish refused", { username: integration?.username, topic: topic.slice(0, 256) });
      packet.topic = refusedTopic;
      packet.retain = false;
      done(null);
    },

    authorizeSubscribe(client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void) {
      const integration = current(client);
      if (integration && !sub.topic.startsWith("$gatehouse") && anyCovers(integration.subscribeAcl, sub.topic)) return done(null, sub);
      logRefusal(client, "subscribe refused", { username: integration?.username, topic: sub.topic.slice(0, 256) });
      done(null, null); // SUBACK 0x80 for this filter
    },
  };

  const requireBroker = () => {
    if (!broker) throw new Error("mqtt broker is not running");
    return broker;
  };
  const bus: TopicBus = {
    onMessage(handler) {
      const b = requireBroker();
      const deliver = (packet: { topic: string; payload: Buffer | string; retain?: boolean }, cb: () => void) => {
        if (packet.topic !== refusedTopic) handler(packet.topic, Buffer.from(packet.payload), packet.retain === true);
        cb();
      };
      b.subscribe("#", deliver as never, () => {});
      return () => b.unsubscribe("#", deliver as never, () => {});
    },
    async *retained() {
      const b = requireBroker() as unknown as { persistence: { createRetainedStream(p: string): AsyncIterable<{ topic: string; payload: Buffer }> } };
      for await (const packet of b.persistence.createRetainedStream("#")) yield { topic: packet.topic, payload: Buffer.from(packet.payload) };
    },
    publish(topic, payload, retain) {
      const b = requireBroker();
      return new Promise((resolve, reject) => b.publish({ cmd: "publish", topic, payload, qos: 0, retain, dup: false } as never, (err) => (err ? reject(err) : resolve())));
    },
  };

  return {
    name: "mqtt",
    bus,
    async start() {
      broker = await Aedes.createBroker({
        ...hooks,
        connectTimeout: opts.connectTimeoutMs ?? 10_000,
        maxClientsIdLength: 128,
        heartbeatInterval: 60_000,
      } as ConstructorParameters<typeof Aedes>[0]);
      const b = broker;

      b.on("clientReady", (client) => {
        const who = identities.get(client);
        if (!who) return client.close(); // never: authenticate always sets it
        const now = credentials.get(who.integration.id);
        // Deactivated or deleted while the CONNACK was on its way.
        if (!now || !now.active) return client.close();
        who.session = sessions.open({
          integration: now,
          type: "mqtt",
          clientId: client.id,
          remote: remoteOf(client),
          kick: (reason) => {
            log.info("mqtt client dropped", { username: now.username, clientId: client.id, reason });
            client.close();
          },
        });
      });
      // [MQTT-3.1.4-2] a second CONNECT with the same client id closes the old connection: only the
      // old client's own session ends, so the integration stays online through a takeover.
      b.on("clientDisconnect", (client) => identities.get(client)?.session?.close());
      b.on("clientError", (client, err) => {
        identities.get(client)?.session?.close();
        log.debug("mqtt client error", { clientId: client.id, err });
      });
      b.on("connectionError", (client, err) => log.debug("mqtt connection error", { remote: remoteOf(client), err }));

      server = createServer((socket) => {
        if (sockets.size >= maxConnections) {
          log.warn("mqtt connection refused: limit reached", { limit: maxConnections, remote: socket.remoteAddress });
          socket.destroy();
          return;
        }
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        socket.on("error", () => {});
        const client = b.handle(socket);
        limitPacketSize(client, maxPacket);
      });
      await new Promise<void>((resolve, reject) => {
        server!.once("error", reject);
        server!.listen(opts.port, opts.host, () => {
          server!.off("error", reject);
          resolve();
        });
      });
    },
    async stop() {
      const s = server;
      const b = broker;
      server = undefined;
      broker = undefined;
      // Stop accepting, drop every client, then wait for the server (it waits for open sockets).
      const serverClosed = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
      if (b) await new Promise<void>((resolve) => b.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await serverClosed;
    },
    address() {
      const a = server?.address();
      return a && typeof a === "object" ? { host: opts.host, port: a.port } : undefined;
    },
  };
}

/**
 * limitPacketSize: aedes buffers a packet until its declared length has arrived, so one client could
 * announce 256 MB. The parser (mqtt-packet) is asked to fail as soon as the remaining length is read.
 */
function limitPacketSize(client: Client, maxBytes: number): void {
  const parser = (client as unknown as { _parser?: { _parseLength(): boolean; packet: { length: number }; _emitError(e: Error): void } })._parser;
  if (!parser) return;
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    const done = parseLength();
    if (done && parser.packet.length > maxBytes) {
      parser._emitError(new Error(`packet of ${parser.packet.length} bytes exceeds the limit of ${maxBytes}`));
      return false;
    }
    return done;
  };
}
