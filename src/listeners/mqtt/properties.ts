import { messageProperties } from "../../core/bus.ts";

/**
 * MQTT 5 properties each packet may carry, as mqtt-packet names them. mqtt-packet decodes any property
 * in any packet and aedes passes a PUBLISH's properties on as they came, so a will's Will Delay Interval
 * (0x18) or a client's stray Session Expiry reached every subscriber inside PUBLISH: a malformed packet
 * (§2.2.2.2) on which strict clients (Paho Python) drop the connection.
 */

/** deliveredProperties: what a PUBLISH from the broker may carry (§3.3.2.3); the Subscription Identifier
 * is added per subscriber by aedes after this point, and Topic Alias is per connection. */
const deliveredProperties = new Set<string>(messageProperties);

/** clientPublishProperties: what a client's PUBLISH may carry; not a Subscription Identifier [MQTT-3.3.4-6]. */
const clientPublishProperties = new Set([...deliveredProperties, "topicAlias"]);

/** willProperties: the Will Properties of CONNECT (§3.1.3.2). */
const willProperties = new Set([...deliveredProperties, "willDelayInterval"]);

type Properties = Record<string, unknown> | undefined;

function foreign(properties: Properties, allowed: Set<string>): string | undefined {
  if (!properties) return undefined;
  for (const key of Object.keys(properties)) if (properties[key] !== undefined && !allowed.has(key)) return key;
  return undefined;
}

/** foreignPublishProperty: the first property a client's PUBLISH must not carry, if any. */
export const foreignPublishProperty = (properties: Properties) => foreign(properties, clientPublishProperties);

/** foreignWillProperty: the first property a will must not carry, if any. */
export const foreignWillProperty = (properties: Properties) => foreign(properties, willProperties);

/**
 * deliverable: the packet as it may leave the broker: a will loses its Will Delay Interval, anything
 * else a PUBLISH cannot carry goes too. The same object when there is nothing to take away.
 */
export function deliverable<P extends { properties?: Properties }>(packet: P): P {
  if (!foreign(packet.properties, deliveredProperties)) return packet;
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(packet.properties!))
    if (value !== undefined && deliveredProperties.has(key)) properties[key] = value;
  const copy = { ...packet } as P;
  if (Object.keys(properties).length) copy.properties = properties;
  else delete copy.properties;
  return copy;
}
