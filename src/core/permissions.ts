import { anyMatches, filterCovers, isVrpcInfoTopic, topicMatches } from "./topics.ts";
import type { Integration, IntegrationType } from "./types.ts";
import { vrpcAgentIdentity } from "./vrpc.ts";

/*
 * Permissions: every "may this integration publish / subscribe / read / write this topic" of every
 * listener. Adapters ask here, per message and per delivery, and never decide themselves. The rules:
 *
 * - a deactivated (or deleted: `undefined`) integration may do nothing;
 * - `$SYS` is the broker's own: nobody publishes there;
 * - other `$` topics, and `$SYS` for reading, are reachable only through a filter that names them
 *   ([MQTT-4.7.2-1]: `#` and `+` never match a first level starting with `$`);
 * - VRPC domains are shielded the same way (see `TopicSpace`): a topic inside a VRPC domain is
 *   reachable only by that domain's own VRPC integrations or through a filter whose first level names
 *   the domain; `#`, `+/...` never reach into one;
 * - each type adds its own rule (`typeRules`): only VRPC integrations publish VRPC discovery topics,
 *   each only its own, inside its domain;
 * - a deny filter that matches wins over every allow filter;
 * - then the integration's allow filters decide.
 *
 * A subscription is refused (SUBACK 0x80, MQTT 5 0x87) when a deny filter covers all of it or no allow
 * filter does, and so when it can never deliver (`plant/#` for an integration whose only filter is `#`
 * once `plant` is a VRPC domain); a wildcard subscription that only partly overlaps what it may not read
 * (a deny filter, a VRPC domain) is granted, and each message inside the withheld part is withheld at
 * delivery (`mayRead`), as Mosquitto's ACLs do. (Refusing every overlap would refuse `#` and `+/+` to
 * anyone with one denied topic.)
 */
type Action = "publish" | "subscribe";
type Rule = (integration: Readonly<Integration>, topic: string, action: Action) => boolean;

/**
 * TopicSpace: what a decision needs beyond the one integration: the VRPC domains. vrpc 3.5's topic
 * grammar puts everything of a domain under its first level (announcements `<domain>/<agent>/__agentInfo__`,
 * `<domain>/<agent>/<Class>/__classInfo__` and `__classInfoConcise__`; calls
 * `<domain>/<agent>/<Class>/__static__/<fn>` and `<domain>/<agent>/<Class>/<instance>/<fn>`; replies on
 * the client id `<domain>/<host>/<id>`; client lifetimes `<domain>/<host>/<id>/__clientInfo__`; events
 * `<domain>/<agent>/<Class>/<instance>:<event>`). A member call cannot be told from any 5-level topic by
 * its shape, so the appliance does not guess from the shape: a first level is a VRPC domain when a VRPC
 * integration (active or not) is named `<domain>/<name>` (the admin declared it by creating one), and
 * then every topic under it is a VRPC topic. A filter lies in a domain only when its first level names
 * it literally.
 */
export interface TopicSpace {
  /** vrpcDomainOf: the VRPC domain a topic (or a filter) lies in, if any. Asked per message. */
  vrpcDomainOf(topic: string): string | undefined;
}

const noVrpcInfo: Rule = (_i, topic, action) => action !== "publish" || !isVrpcInfoTopic(topic);

/** identities: the `<domain>/<agent>` of each VRPC integration, parsed once per stored version of it. */
const identities = new WeakMap<Readonly<Integration>, ReturnType<typeof vrpcAgentIdentity> | null>();
function identityOf(i: Readonly<Integration>) {
  if (i.type !== "vrpc") return undefined;
  let id = identities.get(i);
  if (id === undefined) identities.set(i, (id = vrpcAgentIdentity(i.username) ?? null));
  return id ?? undefined;
}

/** shielded: `topic` lies in a VRPC domain that is not this integration's own. */
function shielded(i: Readonly<Integration>, topic: string, space: TopicSpace): boolean {
  const domain = space.vrpcDomainOf(topic);
  return domain !== undefined && identityOf(i)?.domain !== domain;
}

/** isWildcardFirst: `#`, `+`, `+/...`: a filter whose first level names no domain. */
const isWildcardFirst = (filter: string) => {
  const c = filter.charCodeAt(0);
  return c === 35 /* # */ || c === 43 /* + */;
};

/**
 * allows: does an allow filter match `topic`? Inside a foreign VRPC domain only filters naming it count.
 * A plain loop: asked per message and delivery; the domain is looked up only when a wildcard filter
 * would otherwise decide.
 */
function allows(i: Readonly<Integration>, filters: readonly string[], topic: string, space: TopicSpace): boolean {
  let foreign = -1; // not looked up yet
  for (let k = 0; k < filters.length; k++) {
    const f = filters[k]!;
    const c = f.charCodeAt(0);
    if (c === 35 /* # */ || c === 43 /* + */) {
      if (foreign < 0) foreign = shielded(i, topic, space) ? 1 : 0;
      if (foreign === 1) continue;
    }
    if (topicMatches(f, topic)) return true;
  }
  return false;
}

/**
 * vrpcRule: a VRPC integration named `<domain>/<agent>` stays inside `<domain>/#` (every topic vrpc 3.5
 * uses is there, see `TopicSpace`) and announces only itself. One named without a domain is a client:
 * confined by its filters (which reach a VRPC domain only by naming it), and announces nobody.
 */
const vrpcRule: Rule = (i, topic, action) => {
  const id = identityOf(i);
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
export function mayPublish(integration: Readonly<Integration> | undefined, topic: string, space: TopicSpace): boolean {
  return (
    integration !== undefined &&
    integration.active &&
    !isSys(topic) &&
    typeRules[integration.type](integration, topic, "publish") &&
    !anyMatches(integration.denyPublishAcl, topic) &&
    allows(integration, integration.publishAcl, topic, space)
  );
}

/** mayWrite: a value written through OPC UA (or posted over HTTP) is a publish by that integration. */
export const mayWrite = mayPublish;

/** maySubscribe: a subscription to `filter` may be granted (it can deliver something this integration may read). */
export function maySubscribe(
  integration: Readonly<Integration> | undefined,
  filter: string,
  space: TopicSpace,
): boolean {
  if (integration === undefined || !integration.active) return false;
  if (!typeRules[integration.type](integration, filter, "subscribe")) return false;
  if (integration.denySubscribeAcl.some((deny) => filterCovers(deny, filter))) return false;
  const foreign = shielded(integration, filter, space);
  return integration.subscribeAcl.some((f) => !(foreign && isWildcardFirst(f)) && filterCovers(f, filter));
}

/** mayRead: one message on `topic` may be delivered to this integration now (asked at every delivery). */
export function mayRead(integration: Readonly<Integration> | undefined, topic: string, space: TopicSpace): boolean {
  return (
    integration !== undefined &&
    integration.active &&
    typeRules[integration.type](integration, topic, "subscribe") &&
    !anyMatches(integration.denySubscribeAcl, topic) &&
    allows(integration, integration.subscribeAcl, topic, space)
  );
}

/**
 * whyPublishRefused: what a person should be told when `mayPublish` said no (the integration's row and
 * the agents page show it for refused VRPC announcements). Follows mayPublish's order of rules.
 */
export function whyPublishRefused(
  integration: Readonly<Integration> | undefined,
  topic: string,
  space: TopicSpace,
): string {
  if (!integration) return "the integration no longer exists";
  if (!integration.active) return "the integration is deactivated";
  if (isSys(topic)) return "$SYS is the broker's own";
  if (!typeRules[integration.type](integration, topic, "publish")) {
    const id = identityOf(integration);
    if (integration.type !== "vrpc") return "only VRPC integrations announce agents";
    if (!id) return "its name has no domain: only a VRPC integration named <domain>/<agent> announces an agent";
    const [domain, agent] = topic.split("/");
    if (domain !== id.domain) return `it may use only its own domain "${id.domain}"`;
    return `it may announce only itself (agent "${id.agent}"), not "${agent}"`;
  }
  if (anyMatches(integration.denyPublishAcl, topic)) return "a deny filter of the integration matches it";
  const domain = space.vrpcDomainOf(topic);
  if (domain !== undefined && shielded(integration, topic, space) && anyMatches(integration.publishAcl, topic)) {
    return `"${domain}" is a VRPC domain: only its VRPC integrations or a filter naming "${domain}" reach it`;
  }
  return "no publish filter of the integration allows it";
}
