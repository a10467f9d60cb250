/**
 * MQTT topic filters (MQTT 3.1.1 §4.7), shared by the MQTT and OPC UA listeners' permission checks.
 */

/** topicMatches: does a topic name match a filter? [MQTT-4.7.2-1] `#` and `+` never match a `$` topic's first level. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("#") || filter.startsWith("+"))) return false;
  if (filter === "#") return true; // the default permission: no split on the per-message path
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * filterCovers: is every topic matched by `requested` also matched by `allowed`? Used so a
 * subscription is granted only inside the integration's permitted filters.
 */
export function filterCovers(allowed: string, requested: string): boolean {
  if (requested.startsWith("$") && (allowed.startsWith("#") || allowed.startsWith("+"))) return false;
  const a = allowed.split("/");
  const r = requested.split("/");
  for (let i = 0; i < a.length; i++) {
    const level = a[i];
    if (level === "#") return true;
    if (i >= r.length) return false;
    const req = r[i];
    if (req === "#") return false; // requested reaches deeper levels than `allowed` permits
    if (level === "+") continue;
    if (req === "+" || req !== level) return false;
  }
  return a.length === r.length;
}

export function anyMatches(filters: readonly string[], topic: string): boolean {
  // a plain loop: asked twice per message and delivery
  for (let i = 0; i < filters.length; i++) if (topicMatches(filters[i]!, topic)) return true;
  return false;
}

/** vrpcInfoTopics: retained discovery topics only VRPC agents may publish. */
export const vrpcInfoTopics = ["+/+/__agentInfo__", "+/+/+/__classInfo__", "+/+/+/__classInfoConcise__"];

/** isVrpcInfoTopic: cheap test first, since it runs for every published message (and VRPC calls contain `__static__`). */
export function isVrpcInfoTopic(topic: string): boolean {
  if (!topic.endsWith("__")) return false;
  if (
    !topic.endsWith("/__agentInfo__") &&
    !topic.endsWith("/__classInfo__") &&
    !topic.endsWith("/__classInfoConcise__")
  )
    return false;
  return anyMatches(vrpcInfoTopics, topic);
}

/**
 * filtersOverlap: is there a topic both filters match? Level by level: `#` matches the rest, `+`
 * any one level, literals must be equal.
 */
export function filtersOverlap(a: string, b: string): boolean {
  if ((a.startsWith("$") && /^[#+]/.test(b)) || (b.startsWith("$") && /^[#+]/.test(a))) return false;
  const x = a.split("/");
  const y = b.split("/");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const p = x[i];
    const q = y[i];
    if (p === "#" || q === "#") return true;
    if (p === undefined || q === undefined) return false;
    if (p !== "+" && q !== "+" && p !== q) return false;
  }
  return true;
}

/**
 * isValidTopicString: [MQTT-1.5.3-1/2] a topic or filter must be well-formed UTF-8 without U+0000. The
 * packet parser decodes bad UTF-8 to U+FFFD, so that (and any unpaired surrogate) counts as bad.
 */
export function isValidTopicString(topic: string): boolean {
  return (
    topic.length > 0 &&
    topic.length <= 65535 &&
    !/[\u0000\uFFFD]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(topic)
  );
}
