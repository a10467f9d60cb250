import type { Aedes, Client } from "aedes";

/**
 * Shared subscriptions (MQTT 5 §4.8.2, and 3.1.1 clients as Mosquitto allows): `$share/<group>/<filter>`.
 * aedes 2.0.0-beta.1 refuses them (SUBACK 0x9E, CONNACK "not available"). Here a client's `$share/g/f` is
 * renamed, before aedes reads the packet, to `$SHARE/g/f`: aedes then keeps it like any subscription (its
 * QoS, options, identifier; stored with a persistent session and asked again on restore), but nothing is
 * ever published to that name (authorizePublish refuses `$share/` and `$SHARE/` topics). One broker-wide
 * subscription per group and filter hands each message to one connected member, in turn, through that
 * member's own subscription, so the member's QoS, options and the permission check at delivery all apply.
 * Messages are not queued for a group while all its members are offline.
 */

/** internalPrefix: how aedes and broker.db name a shared subscription (clients cannot subscribe to it). */
const internalPrefix = "$SHARE/";

/** parseShared: `$share/<group>/<filter>` (or its internal name) as group and filter; undefined otherwise. */
export function parseShared(topic: string): { group: string; filter: string } | undefined {
  const prefix = topic.startsWith("$share/")
    ? "$share/"
    : topic.startsWith(internalPrefix)
      ? internalPrefix
      : undefined;
  if (!prefix) return undefined;
  const rest = topic.slice(prefix.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const group = rest.slice(0, slash);
  const filter = rest.slice(slash + 1);
  // [MQTT-4.8.2-1] a share name has no wildcard; [MQTT-4.8.2-2] a filter follows it
  if (/[+#]/.test(group) || filter === "") return undefined;
  return { group, filter };
}

/** isSharedName: the topic is a shared subscription's name, which no PUBLISH may use. */
export const isSharedName = (topic: string) => topic.startsWith("$share/") || topic.startsWith(internalPrefix);

/** filterOf: what the topic permissions judge for a subscription: a shared one's filter, or the filter itself. */
export function filterOf(topic: string): string {
  return topic.startsWith(internalPrefix) ? (parseShared(topic)?.filter ?? topic) : topic;
}

/** isShared: aedes' name of a shared subscription. */
export const isShared = (topic: string) => topic.startsWith(internalPrefix) && parseShared(topic) !== undefined;

interface ParserLike {
  prependListener(
    event: "packet",
    listener: (p: { cmd: string; subscriptions?: { topic: string }[]; unsubscriptions?: string[] }) => void,
  ): void;
}

/**
 * renameSharedFilters: the client's SUBSCRIBE and UNSUBSCRIBE are read before aedes: `$share/g/f` becomes
 * `$SHARE/g/f`; a client's own `$SHARE/...` becomes an invalid filter (refused: only the broker names it so).
 * A malformed `$share/...` is left to aedes (SUBACK 0x9E).
 */
export function renameSharedFilters(client: Client): void {
  const parser = (client as unknown as { _parser: ParserLike })._parser;
  parser.prependListener("packet", (packet) => {
    if (packet.cmd === "subscribe") {
      for (const sub of packet.subscriptions ?? []) {
        if (sub.topic.startsWith(internalPrefix)) sub.topic = "\u0000";
        else if (parseShared(sub.topic)) sub.topic = internalPrefix + sub.topic.slice("$share/".length);
      }
    } else if (packet.cmd === "unsubscribe" && packet.unsubscriptions) {
      packet.unsubscriptions = packet.unsubscriptions.map((t) =>
        t.startsWith(internalPrefix) ? "\u0000" : parseShared(t) ? internalPrefix + t.slice("$share/".length) : t,
      );
    }
  });
}

type Deliver = (packet: { topic: string }, cb: () => void) => void;

interface Group {
  filter: string;
  members: Set<Client>;
  next: number;
  deliver: Deliver;
}

interface ClientSubs {
  subscriptions: Record<string, { func: Deliver } | undefined>;
}

/**
 * createSharedGroups: the groups, each a broker subscription on its filter. `join` is called once the
 * core allowed a client's shared subscription; a member leaves when it unsubscribes or disconnects (seen
 * at the next message, and at once on close). `mayRead` (the core's read decision for the member, now)
 * picks the member: a member allowed the filter but not this topic is passed over, so it cannot make
 * a share of the group's messages vanish (handed to it and refused at delivery, found from outside).
 */
export function createSharedGroups(broker: Aedes, mayRead: (client: Client, topic: string) => boolean) {
  const groups = new Map<string, Group>();
  const joined = new WeakMap<Client, Set<string>>();

  const drop = (name: string, group: Group, client: Client) => {
    group.members.delete(client);
    if (group.members.size > 0) return;
    groups.delete(name);
    broker.unsubscribe(group.filter, group.deliver as never, () => {});
  };

  const alive = (name: string, client: Client) =>
    !client.closed && (client as unknown as ClientSubs).subscriptions[name] !== undefined;

  return {
    /** join: the client's subscription `name` (`$SHARE/g/f`) takes part in its group from now on. */
    join(client: Client, name: string): void {
      const parsed = parseShared(name);
      if (!parsed) return;
      let group = groups.get(name);
      if (!group) {
        const g: Group = {
          filter: parsed.filter,
          members: new Set(),
          next: 0,
          // one member, in turn: the first connected one that still holds the subscription
          deliver: (packet, cb) => {
            // [MQTT-4.7.2-1] a filter starting with a wildcard matches no `$` topic
            if (/^[+#]/.test(g.filter) && packet.topic.charCodeAt(0) === 36) return cb();
            const members = [...g.members];
            for (let i = 0; i < members.length; i++) {
              const member = members[(g.next + i) % members.length]!;
              if (!alive(name, member)) {
                drop(name, g, member); // unsubscribed or gone
                continue;
              }
              if (!mayRead(member, packet.topic)) continue; // the next member that may read it
              g.next = (g.next + i + 1) % members.length;
              return (member as unknown as ClientSubs).subscriptions[name]!.func(packet, cb);
            }
            cb();
          },
        };
        group = g;
        groups.set(name, g);
        broker.subscribe(g.filter, g.deliver as never, () => {});
      }
      group.members.add(client);
      let mine = joined.get(client);
      if (!mine) {
        joined.set(client, (mine = new Set()));
        const leave = () => {
          for (const n of mine!) {
            const g = groups.get(n);
            if (g) drop(n, g, client);
          }
        };
        (client.conn as unknown as { once(e: "close", f: () => void): void }).once("close", leave);
      }
      mine.add(name);
    },
    /** size: groups now (tests, metrics) */
    get size() {
      return groups.size;
    },
  };
}

export type SharedGroups = ReturnType<typeof createSharedGroups>;
