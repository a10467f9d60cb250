import { anyCovers, anyMatches, filterCovers, isVrpcInfoTopic } from "./topics.ts";
import type { Integration, IntegrationType } from "./types.ts";
import { vrpcAgentIdentity } from "./vrpc.ts";

/**
 * Permissions: every "may this integration publish / subscribe / read / write this topic" of every
 * listener. Adapters ask here, per message and per delivery, and never decide themselves. The rules:
 *
 * - a deactivated (or deleted: `undefined`) integration may do nothing;
 * - `$SYS` is the broker's own: nobody publishes there;
 * - other `$` topics, and `$SYS` for reading, are reachable only through a filter that names them
 *   ([MQTT-4.7.2-1]: `#` and `+` never match a first level starting with `$`);
 * - each type adds its own rule (`typeRules`): only VRPC integrations publish VRPC discovery topics,
 *   each only its own, inside its domain;
 * - a deny filter that matches wins over every allow filter;
 * - then the integration's allow filters decide.
 *
 * A subscription is refused (SUBACK 0x80) when a deny filter covers all of it or no allow filter
 * does; a wildcard subscription that only partly overlaps a deny filter is granted, and each message
 * inside the denied part is withheld at delivery (`mayRead`), as Mosquitto's ACLs do. (Refusing every
 * overlap would refuse `#` and `+/+` to anyone with one denied topic.)
 */
type Action = "publish" | "subscribe";
type Rule = (integration: Readonly<Integration>, topic: string, action: Action) => boolean;

const noVrpcInfo: Rule = (_i, topic, action) => action !== "publish" || !isVrpcInfoTopic(topic);

/**
 * vrpcRule: a VRPC integration named `<domain>/<agent>` stays inside `<domain>/#` (every topic vrpc 3.5
 * uses is there: announcements `<domain>/<agent>/...`, calls `<domain>/<agent>/<Class>/...`, client ids
 * and replies `<domain>/<host>/<id>`, client info `<domain>/<host>/<id>/__clientInfo__`), and announces
 * only itself. One named without a domain is a client: confined by its filters, and announces nobody.
 */
const identities = new WeakMap<Readonly<Integration>, ReturnType<typeof vrpcAgentIdentity> | null>();
const vrpcRule: Rule = (i, topic, action) => {
  // asked per message: the identity is parsed once per stored version of the integration
  let id = identities.get(i);
  if (id === undefined) identities.set(i, (id = vrpcAgentIdentity(i.username) ?? null));
  if (!id) return noVrpcInfo(i, topic, action);
  if (!topic.startsWith(id.domain) || topic.charCodeAt(id.domain.length) !== 47 /* "/" */) return false;
  return action !== "publish" || !isVrpcInfoTopic(topic) || topic.split("/")[1] === id.agent;
};

/** typeRules: what a type may never do whatever its filters say. One entry per type. */
const typeRules: Record<IntegrationType, Rule> = {
  mqtt: noVrpcInfo,
  opcua: noVrpcInfo,
  http: noVrpcInfo,
  vrpc: vrpcRule,
};

const isSys = (topic: string) => topic === "$SYS" || topic.startsWith("$SYS/");

/** mayPublish: a message on `topic` from this integration may be forwarded. */
export function mayPublish(integration: Readonly<Integration> | undefined, topic: string): boolean {
  return (
    integration !== undefined &&
    integration.active &&
    !isSys(topic) &&
    typeRules[integration.type](integration, topic, "publish") &&
    !anyMatches(integration.denyPublishAcl, topic) &&
    anyMatches(integration.publishAcl, topic)
  );
}

/** mayWrite: a value written through OPC UA (or posted over HTTP) is a publish by that integration. */
export const mayWrite = mayPublish;

/** maySubscribe: a subscription to `filter` may be granted. */
export function maySubscribe(integration: Readonly<Integration> | undefined, filter: string): boolean {
  return (
    integration !== undefined &&
    integration.active &&
    typeRules[integration.type](integration, filter, "subscribe") &&
    !integration.denySubscribeAcl.some((deny) => filterCovers(deny, filter)) &&
    anyCovers(integration.subscribeAcl, filter)
  );
}

/** mayRead: one message on `topic` may be delivered to this integration now (asked at every delivery). */
export function mayRead(integration: Readonly<Integration> | undefined, topic: string): boolean {
  return (
    integration !== undefined &&
    integration.active &&
    typeRules[integration.type](integration, topic, "subscribe") &&
    !anyMatches(integration.denySubscribeAcl, topic) &&
    anyMatches(integration.subscribeAcl, topic)
  );
}
