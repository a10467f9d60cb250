import type { Aedes, PublishPacket } from "aedes";
import { forgetSession, retainedStream } from "./aedes-internals.ts";
import type { MqttState } from "./state.ts";

/**
 * wireBroker: what the broker does for the rest of the appliance while it runs: it provides the core's
 * topic bus (OPC UA Topics, HTTP data), counts messages, reports retained messages, and ends the stored
 * sessions of an integration that is deleted or deactivated. Returns what undoes it.
 */
export function wireBroker(b: Aedes, s: MqttState, maxPacket: number): (() => void)[] {
  // A persistent session that had to start clean (its id's old owner is gone) persists from now on.
  b.on("clientReady", (client) => {
    const conn = s.conns.get(client);
    if (conn?.restorePersistence && !client.closed) client.clean = false;
  });
  b.on("clientError", (client, err) => s.log.debug("mqtt client error", { clientId: client.id, err }));
  b.on("connectionError", (client, err) => s.log.debug("mqtt connection error", { remote: s.remoteOf(client), err }));
  b.on("publish", (packet, client) => {
    if (client) {
      s.metric.messagesIn.add();
      s.metric.bytesIn.add(packet.payload?.length ?? 0);
    }
    if (client && s.core.bus.listening && packet.topic.charCodeAt(0) !== 36) {
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
      s.core.bus.routed({ topic: packet.topic, payload, retain: packet.retain });
    }
  });

  return [
    s.core.metrics.gauge({
      name: "gatehouse_mqtt_retained_messages",
      help: "Retained messages held by the broker",
      read: async () => {
        let n = 0;
        for await (const _ of retainedStream(b, "#")) n++;
        return [[{}, n]];
      },
    }),
    s.core.bus.attach({
      publish: ({ topic, payload, retain, qos }) =>
        new Promise((resolve, reject) => {
          b.publish({ cmd: "publish", topic, payload, qos: qos ?? 0, retain, dup: false } as PublishPacket, (err) =>
            err ? reject(err) : resolve(),
          );
          if (s.core.bus.listening) s.core.bus.routed({ topic, payload, retain });
        }),
      // a PUBLISH is its payload plus topic and header: keep a little room for those
      maxPayloadBytes: Math.max(0, maxPacket - 1024),
      async *retained(filter) {
        for await (const p of retainedStream(b, filter)) yield { topic: p.topic, payload: Buffer.from(p.payload) };
      },
    }),
    // A deleted integration's persistent sessions go with it: subscriptions now, queue at the next connect.
    s.core.events.on("integration.deleted", ({ integration }) => {
      for (const clientId of s.owners.orphan(integration.id)) void forgetSession(b, clientId).catch(() => undefined);
    }),
    // A deactivated integration's stored sessions end too, whatever expiry a v5 client asked for.
    s.core.events.on("integration.deactivated", ({ integration }) => {
      for (const clientId of s.owners.endSessions(integration.id))
        void forgetSession(b, clientId).catch(() => undefined);
    }),
  ];
}
