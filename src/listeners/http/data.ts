import { BusNotStoredError, PayloadTooLargeError } from "../../core/bus.ts";
import type { Core } from "../../core/index.ts";
import { mayPublish, mayRead } from "../../core/permissions.ts";
import { isValidTopicString } from "../../core/topics.ts";
import type { TrafficMeter } from "../../core/traffic.ts";
import type { Integration } from "../../core/types.ts";
import { allowIdle, endIdle } from "../../lib/http.ts";
import type { Logger } from "../../lib/logger.ts";
import type { PollEnd, Presence, Waiter } from "./presence.ts";
import { json, problem, readBody as readBodyUpTo, refusal, unknownKeys } from "./responses.ts";

export interface DataOptions {
  /** largest body of a data request */
  maxBodyBytes: number;
  /** most messages in one batch */
  maxBatch: number;
}

/**
 * topicOf: a data path's rest `/api/v1/data/a/line%201` -> topic `a/line 1`; undefined when malformed or
 * ambiguous (HOSTILE.md: decode once, refuse what two decoders read two ways): a level that decodes to a
 * `/` or `\` (`a%2Fb` is one level to a proxy and two to the broker), a `.` or `..` level (a proxy or URL
 * parser resolves it, the topic would keep it literally), wildcards, `$` topics. A batch's topics are JSON
 * strings, not paths (`fromPath` false): only wildcards and `$` are refused there.
 */
function topicOf(rest: string, fromPath = true): string | undefined {
  try {
    const levels = rest.split("/").map(decodeURIComponent);
    if (fromPath && levels.some((l) => l === "." || l === ".." || /[/\\]/.test(l))) return undefined;
    const topic = levels.join("/");
    return isValidTopicString(topic) && !/[#+]/.test(topic) && !topic.startsWith("$") ? topic : undefined;
  } catch {
    return undefined;
  }
}

function payloadView(topic: string, payload: Buffer, at: number | undefined) {
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    text = undefined;
  }
  return {
    topic,
    payload: text ?? payload.toString("base64"),
    encoding: text === undefined ? "base64" : "utf8",
    timestamp: at === undefined ? null : new Date(at).toISOString(),
  };
}

/**
 * createDataRoutes: HTTP integrations' data, through the core's topic bus and its permissions:
 *
 * - `POST /api/v1/data/{topic}` publishes the body; `POST /api/v1/data` a JSON batch, all or nothing;
 * - `GET /api/v1/data/{topic}` the retained value, `?wait=N` long-polls for the next change, asked the
 *   core's read decision again at the moment it answers and ended by its session's kick.
 */
export function createDataRoutes(core: Core, log: Logger, presence: Presence, opts: DataOptions) {
  const { credentials, bus } = core;
  /** when each retained topic last changed (the broker keeps no timestamps) */
  const retainedAt = new Map<string, number>();
  /** long polls by topic; each is also in its session's `waiters`, where a kick finds it */
  const waiters = new Map<string, Set<Waiter>>();
  let stopBus: (() => void) | undefined;
  const readBody = (request: Request) => readBodyUpTo(request, opts.maxBodyBytes);

  const publishOne = async (integration: Integration, topic: string, payload: Buffer, retain: boolean, qos: 0 | 1) => {
    // charged to this integration's share of the broker's store
    await bus.publish({ topic, payload, retain, qos, by: { id: integration.id, created: integration.createdAt } });
    log.debug("http publish", { username: integration.username, topic: topic.slice(0, 256) });
  };

  /**
   * notStored: the broker's store, or an uplink's outbox, refused the write (a full disk): nothing more was
   * acknowledged; try later. Of a batch, it names the items that were published (found from outside: "2 of
   * the batch were published" left a client to guess which to send again).
   */
  const notStored = (published: number[] = []) =>
    problem(
      503,
      "not_stored",
      `the appliance could not store the message; ${published.length ? `items ${published.join(", ")} of the batch were published (the others were not), ` : ""}try again later`,
      { "retry-after": "5" },
    );

  const postTopic = async (
    request: Request,
    integration: Integration,
    topic: string,
    url: URL,
    meter?: TrafficMeter,
  ) => {
    const retain = url.searchParams.get("retain") === "true";
    const qos = url.searchParams.get("qos") ?? "0";
    if (qos !== "0" && qos !== "1") return problem(400, "invalid_request", "qos must be 0 or 1");
    if (!mayPublish(credentials.peek(integration.id), topic, core.topicSpace)) {
      meter?.refused();
      return problem(403, "forbidden", "this integration may not publish to this topic");
    }
    const body = await readBody(request);
    if (body instanceof Response) return body;
    try {
      await publishOne(integration, topic, body, retain, qos === "1" ? 1 : 0);
    } catch (err) {
      // 202 means stored (a retained value, a message queued for persistent sessions): never when it is not
      if (err instanceof BusNotStoredError) return notStored();
      // within the body limit, past what an MQTT packet of the broker holds with its topic (found from
      // outside: a 500 "internal error" for bodies of the last kilobyte below --http-max-body)
      if (err instanceof PayloadTooLargeError)
        return problem(413, "payload_too_large", `payload larger than ${err.limit} bytes (the broker's packet limit)`);
      throw err;
    }
    meter?.received(body.length);
    return json({ published: 1 }, 202);
  };

  const postBatch = async (request: Request, integration: Integration, meter?: TrafficMeter) => {
    const body = await readBody(request);
    if (body instanceof Response) return body;
    let items: unknown;
    try {
      items = JSON.parse(body.toString("utf8"));
    } catch {
      return problem(400, "malformed_body", "the body must be a JSON array of {topic, payload, retain?}");
    }
    if (!Array.isArray(items) || items.length === 0)
      return problem(400, "invalid_request", "the body must be a non-empty JSON array of {topic, payload, retain?}");
    if (items.length > opts.maxBatch)
      return problem(413, "payload_too_large", `a batch holds at most ${opts.maxBatch} messages`);
    const messages: { topic: string; payload: Buffer; retain: boolean }[] = [];
    const current = credentials.peek(integration.id);
    for (const [i, item] of items.entries()) {
      const it = item as { topic?: unknown; payload?: unknown; retain?: unknown };
      const topic =
        typeof it?.topic === "string"
          ? topicOf(it.topic.split("/").map(encodeURIComponent).join("/"), false)
          : undefined;
      if (!topic)
        return problem(400, "invalid_request", `item ${i + 1}: topic must be an MQTT topic name without wildcards`);
      if (it.payload === undefined) return problem(400, "invalid_request", `item ${i + 1}: payload is missing`);
      if (it.retain !== undefined && typeof it.retain !== "boolean")
        return problem(400, "invalid_request", `item ${i + 1}: retain must be true or false`);
      // a field it does not take (`qos`, a misspelt `retained`) is refused, not silently dropped
      const extra = unknownKeys(it, ["topic", "payload", "retain"]);
      if (extra)
        return problem(
          400,
          "invalid_request",
          `item ${i + 1}: unknown field ${extra}; an item takes topic, payload, retain`,
        );
      if (!mayPublish(current, topic, core.topicSpace)) {
        meter?.refused(); // the batch is refused whole: one refused publish
        return problem(403, "forbidden", `item ${i + 1}: this integration may not publish to ${topic}`);
      }
      const payload = Buffer.from(typeof it.payload === "string" ? it.payload : JSON.stringify(it.payload));
      messages.push({ topic, payload, retain: it.retain === true });
    }
    // all at once, in order: retained values of one batch are stored in one commit, not one each, and a
    // durable tap (an uplink's outbox) holds the batch in one write; acknowledged together
    const results = await Promise.allSettled(
      messages.map((m) => publishOne(integration, m.topic, m.payload, m.retain, 0)),
    );
    for (const [i, r] of results.entries()) if (r.status === "fulfilled") meter?.received(messages[i]!.payload.length);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) {
      const published = results.flatMap((r, i) => (r.status === "fulfilled" ? [i + 1] : []));
      if (failed.reason instanceof BusNotStoredError) return notStored(published);
      if (failed.reason instanceof PayloadTooLargeError)
        return problem(
          413,
          "payload_too_large",
          `a payload larger than ${failed.reason.limit} bytes (the broker's packet limit)${published.length ? `; items ${published.join(", ")} of the batch were published` : ""}`,
        );
      throw failed.reason;
    }
    return json({ published: messages.length }, 202);
  };

  const retainedNow = async (topic: string) => {
    for await (const m of bus.retained(topic)) if (m.topic === topic && m.payload.length > 0) return m;
    return undefined;
  };

  /**
   * readRefusal: what a read of `topic` by this integration gets now, if not the value: the integration
   * as it is at this moment (deleted: 401 like an unknown user; deactivated: 403; the topic no longer
   * readable: 403), whatever it was when the request authenticated.
   */
  const readRefusal = (integrationId: number, topic: string): Response | undefined => {
    const now = credentials.peek(integrationId);
    if (!now) return refusal("unknown-user");
    if (!now.active) return refusal("deactivated");
    if (!mayRead(now, topic, core.topicSpace))
      return problem(403, "forbidden", "this integration may not read this topic");
    return undefined;
  };

  /**
   * getTopic: the retained value, or with `?wait=N` the next one. A long poll is asked the core's read
   * decision again at the moment it answers (HOSTILE.md "ask at delivery"), and its session's kick
   * (deactivate, delete, password change, permission change, an admin's disconnect) ends it at once.
   */
  const getTopic = async (
    request: Request,
    integration: Integration,
    topic: string,
    url: URL,
    remote: string,
    meter?: TrafficMeter,
  ) => {
    const refused = readRefusal(integration.id, topic);
    if (refused) return refused;
    const wait = url.searchParams.get("wait");
    if (wait !== null) {
      if (!/^\d{1,2}$/.test(wait) || Number(wait) > 60)
        return problem(400, "invalid_request", "wait must be 0-60 seconds");
      // No session means the integration changed between its login check and now (StaleLoginError):
      // a kick for that change ran before this poll existed and could not end it.
      const session = presence.sessionOf(integration.id, remote);
      if (!session) return readRefusal(integration.id, topic) ?? refusal("wrong-password");
      allowIdle(request, Number(wait) + 10); // silent until the answer, which comes at `wait` at the latest
      const end = await new Promise<PollEnd>((resolve) => {
        let set = waiters.get(topic);
        if (!set) waiters.set(topic, (set = new Set()));
        const waiter: Waiter = {
          topic,
          end: (e) => {
            clearTimeout(timer);
            set!.delete(waiter);
            if (set!.size === 0 && waiters.get(topic) === set) waiters.delete(topic);
            if (!session.waiters.delete(waiter)) return; // ended already
            session.last = Date.now(); // online until the window passes after its last poll
            resolve(e);
          },
        };
        set.add(waiter);
        session.waiters.add(waiter);
        const timer = setTimeout(() => waiter.end({ kind: "over" }), Number(wait) * 1000);
        request.signal.addEventListener("abort", () => waiter.end({ kind: "over" }), { once: true });
      });
      endIdle(request);
      if (end.kind === "refused") return end.response();
      const now = readRefusal(integration.id, topic);
      if (now) return now;
      if (end.kind === "value") {
        meter?.delivered(end.payload.length);
        return json(payloadView(topic, end.payload, end.at));
      }
    }
    const retained = await retainedNow(topic);
    // asked again after the read of the retained store, which may have waited on the broker
    const now = readRefusal(integration.id, topic);
    if (now) return now;
    if (!retained) return problem(404, "not_found", "no retained message on this topic");
    meter?.delivered(retained.payload.length);
    // the broker's stored time (kept across restarts) where it has one; else when this part saw it change
    return json(payloadView(topic, retained.payload, retained.at ?? retainedAt.get(topic)));
  };

  return {
    /** handle: a data request of an authenticated HTTP integration; `rest` is the path after `/api/v1/data/` */
    async handle(
      request: Request,
      who: Integration,
      rest: string | undefined,
      url: URL,
      remote: string,
    ): Promise<Response> {
      const method = request.method;
      // its session's traffic (the page, the API): the request authenticated, so the session is open
      const meter = presence.sessionOf(who.id, remote)?.handle.traffic;
      if (rest === undefined)
        return method === "POST"
          ? await postBatch(request, who, meter)
          : problem(405, "method_not_allowed", "POST a batch here", { allow: "POST" });
      const topic = topicOf(rest);
      if (!topic)
        return problem(
          400,
          "invalid_request",
          "the path must name an MQTT topic without wildcards, a leading $, `.` or `..` levels, or an encoded / or \\",
        );
      if (!bus.available) return problem(503, "unavailable", "the MQTT broker is not running");
      return method === "POST"
        ? await postTopic(request, who, topic, url, meter)
        : await getTopic(request, who, topic, url, remote, meter);
    },
    start() {
      stopBus = bus.onMessage(({ topic, payload, retain }) => {
        const at = Date.now();
        if (retain) {
          if (payload.length === 0) retainedAt.delete(topic);
          else retainedAt.set(topic, at);
        }
        for (const w of [...(waiters.get(topic) ?? [])]) w.end({ kind: "value", payload, at });
      });
    },
    stop() {
      stopBus?.();
    },
  };
}
