/*
 * VRPC naming the core decides on (npm `vrpc` 3.5: RPC over MQTT, agents under `<domain>/<agent>/`): which
 * integrations are agents of which domain. The directory of agents and calls belong to the VRPC listener
 * (listeners/vrpc/).
 */
/** vrpcAgentIdentity: the `<domain>/<agent>` an integration's username names, if it has that shape. */
export function vrpcAgentIdentity(username: string): { domain: string; agent: string } | undefined {
  const m = /^([^/+#$]+)\/([^/+#]+)$/.exec(username);
  return m ? { domain: m[1]!, agent: m[2]! } : undefined;
}
