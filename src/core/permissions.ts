import { anyCovers, anyMatches, filterCovers, isVrpcInfoTopic } from "./topics.ts";
import type { Integration, IntegrationType } from "./types.ts";

/**
 * Permissions: every "may this integration publish / subscribe / read / write this topic" of every
 * listener. Adapters ask here, per message and per delivery, and never decide themselves. The rules:
 *
 * - a deactivated (or deleted: `undefined`) integration may do nothing;
 * - `$SYS` is the broker's own: nobody publishes there;
 * - other `$` topics, and `$SYS` for reading, are reachable only through a filter that names them
 *   ([MQTT-4.7.2-1]: `#` and `+` never match a first level starting with `$`);
 * - each type adds its own rule (`typeRules`): only VRPC integrations publish VRPC discovery topics;
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

/** typeRules: what a type may never do whatever its filters say. One entry per type. */
const typeRules: Record<IntegrationType, Rule> = {
  mqtt: noVrpcInfo,
  opcua: noVrpcInfo,
  http: noVrpcInfo,
  vrpc: () => true,
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
