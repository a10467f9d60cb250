import type { Aedes, Client, PublishPacket } from "aedes";
import { BusNotStoredError } from "../../core/bus.ts";
import { mayPublish, maySubscribe } from "../../core/permissions.ts";
import { attributePublishes, retainedStream } from "./aedes-internals.ts";
import type { Publisher, StaleWill } from "./persistence.ts";
import { filterOf } from "./shared.ts";
import type { MqttState } from "./state.ts";

/**
 * restoreOwners: the store's stored sessions belong to their integrations again (a restart must not free a
 * client id for another integration's client). A session whose integration is gone (deleted, or its id
 * reused by another after a restore: the creation time tells) or deactivated while the appliance was down
 * is forgotten, as it would have been while running. Also wires the store's questions to this listener.
 */
export function restoreOwners(s: MqttState): void {
  const { store, owners, core } = s;
  const ownerOf = (clientId: string) => {
    const id = owners.ownerOf(clientId);
    return id === undefined ? undefined : core.credentials.peek(id);
  };
  store.ownerOf = (clientId) => {
    const i = ownerOf(clientId);
    return i && { id: i.id, created: i.createdAt };
  };
  store.keepSubscription = (clientId, topic) => maySubscribe(ownerOf(clientId), filterOf(topic), core.topicSpace);
  store.onForget = (clientId) => owners.sessionGone(clientId);
  const stamped = new Set<number>();
  for (const session of store.sessions()) {
    const i = core.credentials.peek(session.integrationId);
    // a stamp of a release before it (null) is taken as current; any other moved: changed while down
    const same = session.integrationStamp === null || session.integrationStamp === i?.updatedAt;
    if (i && i.createdAt === session.integrationCreated && i.active && same) {
      owners.restore(session.clientId, i.id);
      if (session.integrationStamp === null && !stamped.has(i.id)) stamped.add(i.id);
      continue;
    }
    s.log.info("mqtt stored session forgotten: its integration is gone, deactivated or changed while stopped", {
      clientId: session.clientId.slice(0, 128),
      integrationId: session.integrationId,
    });
    store.forget(session.clientId);
  }
  for (const id of stamped) store.restamp(id, core.credentials.peek(id)!.updatedAt);
  // retained values of an integration deleted while the appliance was down stay, nobody's: their charge is freed
  store.disownGone((o) => core.credentials.peek(o.id)?.createdAt === o.created);
}

/** topCharges: how many integrations `gatehouse_mqtt_store_integration_bytes` shows (the largest charges). */
const topCharges = 50;

/**
 * publishStaleWills: the wills a previous run stored were never published when it ended (a crash, a power
 * cut; a clean stop publishes them as it closes each client): their connections ended then, so they are
 * published now, before any client can connect, if their integration still exists and may publish the
 * topic; a Will Delay Interval counts from now, and the client coming back within it cancels the will, as
 * [MQTT-3.1.3-9] has it. Returns what cancels the delayed ones.
 */
export function publishStaleWills(b: Aedes, s: MqttState): () => void {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const publish = (will: StaleWill) => {
    if (!s.store.holdsWill(will)) return; // its client came back: it stored its own will, or none
    s.store.dropStaleWill(will);
    const i = will.integrationId === null ? undefined : s.core.credentials.peek(will.integrationId);
    const owner = i && i.createdAt === will.integrationCreated ? i : undefined;
    const p = will.packet;
    if (!mayPublish(owner, p.topic ?? "", s.core.topicSpace)) return;
    // as a will is published: its Will Properties pass `deliverOnlyPublishProperties` on the way
    const packet = { cmd: "publish", topic: p.topic, payload: p.payload, qos: p.qos ?? 0, retain: p.retain === true };
    b.publish(
      { ...packet, dup: false, ...(p.properties ? { properties: p.properties } : {}) } as PublishPacket,
      (err) => {
        if (err)
          s.log.warn("mqtt will of the previous run not published", { clientId: will.clientId.slice(0, 128), err });
      },
    );
  };
  for (const will of s.store.staleWills()) {
    const delay = Number(
      (will.packet.properties as { willDelayInterval?: number } | undefined)?.willDelayInterval ?? 0,
    );
    if (!(delay > 0)) {
      publish(will);
      continue;
    }
    const t = setTimeout(
      () => {
        timers.delete(t);
        publish(will);
      },
      Math.min(delay * 1000, 2 ** 31 - 1),
    );
    timers.add(t);
  }
  return () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}

/**
 * wireBroker: what the broker does for the rest of the appliance while it runs: it provides the core's
 * topic bus (OPC UA Topics, HTTP data), counts messages, reports its store, and ends the stored sessions
 * of an integration that is deleted or deactivated. Returns what undoes it.
 */
export function wireBroker(b: Aedes, s: MqttState, maxPacket: number): (() => void)[] {
  // A persistent session that had to start clean (its id's old owner is gone) persists from now on.
  b.on("clientReady", (client) => {
    const conn = s.conns.get(client);
    if (conn?.restorePersistence && !client.closed) client.clean = false;
  });
  b.on("clientError", (client, err) => s.log.debug("mqtt client error", { clientId: client.id, err }));
  b.on("connectionError", (client, err) => s.log.debug("mqtt connection error", { remote: s.remoteOf(client), err }));
  // MQTT 5: aedes ended a session at once because too many wait (`--mqtt-max-pending-sessions`)
  b.on("sessionLimitReached", (client) => {
    if (s.store.session(client.id)?.offlineSince !== null) s.store.forget(client.id);
  });
  b.on("publish", (packet, client) => {
    if (client) {
      const bytes = packet.payload?.length ?? 0;
      s.metric.messagesIn.add();
      s.metric.bytesIn.add(bytes);
      // its integration's traffic (the page, the API): a WeakMap lookup and a few increments a message
      s.conns.get(client)?.session?.traffic.received(bytes);
    }
    if (client && s.core.bus.listening && packet.topic.charCodeAt(0) !== 36) {
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
      s.core.bus.routed({ topic: packet.topic, payload, retain: packet.retain });
    }
  });

  const store = s.store;
  // whose publish the store keeps: the client's integration (a QoS 0 one has no acknowledgement to refuse with);
  // made once a connection, not once a message
  const publishers = new WeakMap<object, [Publisher, Publisher]>();
  const publisherOf = (client: Client, qos: number | undefined): Publisher | undefined => {
    const conn = s.conns.get(client);
    if (!conn) return undefined;
    let both = publishers.get(conn);
    if (!both) {
      const { id, createdAt: created } = conn.integration;
      publishers.set(
        conn,
        (both = [
          { id, created, unacknowledged: true },
          { id, created, unacknowledged: false },
        ]),
      );
    }
    return both[qos! > 0 ? 1 : 0];
  };
  attributePublishes(b, (packet, client) => {
    const before = store.publisher;
    if (client) store.publisher = publisherOf(client, packet.qos);
    return () => {
      store.publisher = before;
    };
  });
  const counter = (name: string, help: string, read: () => [Record<string, string>, number][]) =>
    s.core.metrics.gauge({ name, help, type: "counter", read });
  return [
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_retained_messages",
      help: "Retained messages held by the broker",
      read: () => [[{}, store.stats.retained]],
    }),
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_store_bytes",
      help: "broker.db: what it holds (data, bounded by --mqtt-store-max-bytes) and its file's size in use (file)",
      read: () => [
        [{ kind: "data" }, store.stats.bytes],
        [{ kind: "file" }, store.stats.fileBytes],
      ],
    }),
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_store_failing",
      help: "1 while broker.db refuses writes (a full disk, an I/O error): nothing that needs it is acknowledged",
      read: () => [[{}, store.failing ? 1 : 0]],
    }),
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_stored_sessions",
      help: "Persistent sessions stored, connected or not",
      read: () => [[{}, store.stats.sessions]],
    }),
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_queued_messages",
      help: "Messages queued for persistent sessions (sent and not acknowledged yet, or waiting)",
      read: () => [[{}, store.stats.queued]],
    }),
    counter("gatehouse_mqtt_dropped_messages_total", "Messages the broker's bounds dropped", () => [
      [{ reason: "queue-full" }, store.counts.queueDropped],
      [{ reason: "store-full" }, store.counts.storeFullDropped],
      [{ reason: "retained-store-full" }, store.counts.retainedDropped],
      [{ reason: "integration-share" }, store.counts.shareRefused],
    ]),
    counter(
      "gatehouse_mqtt_store_share_refused_total",
      "Writes to broker.db refused (retained, QoS 2) or not queued because the integration held its share",
      () => [...store.shareRefusals].map(([id, n]) => [{ integration_id: String(id) }, n]),
    ),
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_store_integration_bytes",
      help:
        `broker.db bytes charged to an integration (--mqtt-store-max-integration-bytes), the ${topCharges} largest ` +
        "of each kind: own (its retained topics, sessions, subscriptions, wills), queued (its sessions' queues, QoS 2)",
      read: () =>
        (["own", "queued"] as const).flatMap((kind) =>
          [...store.charges(kind)]
            .sort((a, b) => b[1] - a[1])
            .slice(0, topCharges)
            .map(([id, n]) => [{ integration_id: String(id), kind }, n] as [Record<string, string>, number]),
        ),
    }),
    counter("gatehouse_mqtt_store_commits_total", "broker.db transactions (each a batch of writes, fsynced)", () => [
      [{ result: "ok" }, store.counts.commits],
      [{ result: "failed" }, store.counts.failedCommits],
    ]),
    counter("gatehouse_mqtt_sessions_ended_total", "Stored sessions ended by the broker", () => [
      [{ reason: "expired" }, store.counts.sessionsExpired],
      [{ reason: "sessions-limit" }, store.counts.sessionsDropped],
    ]),
    s.core.bus.attach({
      publish: ({ topic, payload, retain, qos, by }) =>
        new Promise((resolve, reject) => {
          // charged to the integration it is published for (HTTP), refused as "not stored" past its share
          const before = store.publisher;
          store.publisher = by && ({ ...by, unacknowledged: false } satisfies Publisher);
          try {
            b.publish({ cmd: "publish", topic, payload, qos: qos ?? 0, retain, dup: false } as PublishPacket, (err) => {
              if (err) return reject(err.name === "BrokerStoreError" ? new BusNotStoredError(err.message) : err);
              // the bus hears of it once it is stored (a long poll never answers with a value lost later)
              if (s.core.bus.listening) s.core.bus.routed({ topic, payload, retain });
              resolve();
            });
          } finally {
            store.publisher = before;
          }
        }),
      // a PUBLISH is its payload plus topic and header: keep a little room for those
      maxPayloadBytes: Math.max(0, maxPacket - 1024),
      async *retained(filter) {
        for await (const p of retainedStream(b, filter))
          yield { topic: p.topic, payload: Buffer.from(p.payload), at: s.store.retainedAt(p.topic) };
      },
    }),
    // A deleted integration's persistent sessions go with it, from memory and from broker.db.
    s.core.events.on("integration.deleted", ({ integration }) => {
      for (const clientId of s.owners.orphan(integration.id)) s.store.forget(clientId);
      // its retained values stay (the plant's last values) as nobody's: its share is free
      s.store.disown(integration.id);
    }),
    // A change while running keeps the sessions (they are asked at delivery): they carry the new stamp.
    s.core.events.on("integration.updated", ({ integration }) =>
      s.store.restamp(integration.id, integration.updatedAt),
    ),
    s.core.events.on("integration.activated", ({ integration }) =>
      s.store.restamp(integration.id, integration.updatedAt),
    ),
    // A deactivated integration's stored sessions end too, whatever expiry a v5 client asked for.
    s.core.events.on("integration.deactivated", ({ integration }) => {
      for (const clientId of s.owners.endSessions(integration.id)) s.store.forget(clientId);
    }),
  ];
}
