import type { Core } from "../../core/index.ts";
import { mayPublish, mayRead } from "../../core/permissions.ts";
import { kickReasons, type SessionHandle } from "../../core/sessions.ts";
import { isValidTopicString } from "../../core/topics.ts";
import { fingerprintOf } from "../../core/onboarding.ts";
import { integrationTypes, isIntegrationType, type Integration, type LoginFailure } from "../../core/types.ts";
import { StaleLoginError } from "../../lib/errors.ts";
import { allowIdle, endIdle, type HttpMount } from "../../lib/http.ts";
import type { Logger } from "../../lib/logger.ts";
import { parseBasicAuth } from "./basic-auth.ts";
import { createForwardAuth, type ForwardAuthProxy } from "./forward-auth.ts";

export interface DeviceApiOptions {
  /** an integration is online while it made an authenticated request this recently */
  onlineWindowMs: number;
  /** largest body of a data request */
  maxBodyBytes: number;
  /** most messages in one batch */
  maxBatch: number;
  /** the reverse proxy that asks `/auth/http` (its headers are the only ones read); off: every check is 403 */
  forwardAuthProxy: ForwardAuthProxy | "off";
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers } });
const problem = (status: number, error: string, message: string, headers: Record<string, string> = {}) => json({ error, message }, status, headers);
const challenge = { "www-authenticate": 'Basic realm="gatehouse", charset="UTF-8"' };

/** statusFor: what each refusal tells a device to do. */
const statusFor: Record<LoginFailure, 401 | 403 | 429 | 503> = {
  "unknown-user": 401,
  "wrong-password": 401,
  deactivated: 403,
  "wrong-type": 403,
  stale: 403,
  throttled: 429,
  "unsupported-protocol": 401,
  "client-id-in-use": 403,
  "connection-limit": 503,
  anonymous: 401,
  "certificate-user": 401,
  "insecure-token": 401,
  "certificate-rejected": 403,
};

function refusal(reason: LoginFailure): Response {
  const status = statusFor[reason];
  if (status === 401) return problem(401, "unauthorized", "missing, unknown or wrong credentials (HTTP Basic auth of an HTTP integration)", challenge);
  if (status === 429) return problem(429, "rate_limited", "too many failed logins; try again later", { "retry-after": "60" });
  return problem(status, "forbidden", reason === "deactivated" ? "this integration is deactivated" : "this integration may not use HTTP");
}

/** topicOf: a data path's rest `/api/v1/data/a/b%2Fc` -> `a/b/c`-style topic; undefined when malformed. */
function topicOf(rest: string): string | undefined {
  try {
    const topic = rest.split("/").map(decodeURIComponent).join("/");
    return isValidTopicString(topic) && !/[#+]/.test(topic) && !topic.startsWith("$") ? topic : undefined;
  } catch {
    return undefined;
  }
}

/** unknownKeys: the keys of a JSON object a route does not take (named in its 400, at most 10, each cut to 64). */
function unknownKeys(value: object, allowed: readonly string[]): string | undefined {
  const extra = Object.keys(value).filter((k) => !allowed.includes(k));
  if (extra.length === 0) return undefined;
  const names = extra.slice(0, 10).map((k) => (k.length > 64 ? `${k.slice(0, 64)}…` : k));
  return `${names.join(", ")}${extra.length > 10 ? " and more" : ""}`;
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

/** PollEnd: why a long poll stopped waiting (a value, a refusal decided by a kick, or its time is over). */
type PollEnd = { kind: "value"; payload: Buffer; at: number } | { kind: "refused"; response: () => Response } | { kind: "over" };

/** Waiter: one long poll in flight, found by its topic (a value) and by its session (a kick). */
interface Waiter {
  topic: string;
  end(e: PollEnd): void;
}

/** LiveSession: an HTTP integration's session from one address, and the long polls it has in flight. */
interface LiveSession {
  handle: SessionHandle;
  last: number;
  waiters: Set<Waiter>;
}

/**
 * createDeviceApi: the HTTP integrations' share of the HTTP port. Every request authenticates with
 * Basic auth through the core's `verify` for type HTTP (a repeat request costs a cached HMAC, not a
 * hash); every topic and path decision is the core's `mayPublish` / `mayRead`.
 *
 * - `POST /api/v1/data/{topic}` publishes the body; `POST /api/v1/data` a JSON batch, all or nothing;
 * - `GET /api/v1/data/{topic}` the retained value, `?wait=N` long-polls for the next change;
 * - `/auth/http` answers reverse proxies' forward-auth subrequests for the original URI;
 * - `POST /api/v1/register` lets a device ask for onboarding explicitly.
 *
 * HTTP has no connections: an integration is online while it made a request within the online
 * window; a session per (integration, address) counts the requests and ends when the window passes.
 */
export function createDeviceApi(core: Core, log: Logger, opts: DeviceApiOptions) {
  const { credentials, sessions, bus } = core;
  const live = new Map<string, LiveSession>();
  /** when each retained topic last changed (the broker keeps no timestamps) */
  const retainedAt = new Map<string, number>();
  /** long polls by topic; each is also in its session's `waiters`, where a kick finds it */
  const waiters = new Map<string, Set<Waiter>>();
  const sessionKey = (integrationId: number, remote: string) => `${integrationId}\0${remote}`;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  let stopBus: (() => void) | undefined;

  const touch = (integration: Integration, remote: string, agent: string | undefined) => {
    const key = sessionKey(integration.id, remote);
    const now = Date.now();
    const existing = live.get(key);
    if (existing) {
      existing.last = now;
      existing.handle.touch();
      return;
    }
    try {
      const polls = new Set<Waiter>();
      const handle = sessions.open({
        integration,
        type: "http",
        clientId: agent?.slice(0, 128),
        remote,
        // Stateless: the next request is refused by verify. A long poll in flight is a request that
        // already passed: it ends now, with a password change's 401 or, once it is judged again, what
        // the integration may do now (see getTopic).
        kick: (reason) => {
          if (live.get(key)?.waiters === polls) live.delete(key);
          const end: PollEnd = reason === kickReasons.passwordChanged ? { kind: "refused", response: () => refusal("wrong-password") } : { kind: "over" };
          for (const w of [...polls]) w.end(end);
        },
      });
      handle.touch();
      live.set(key, { handle, last: now, waiters: polls });
    } catch (err) {
      if (!(err instanceof StaleLoginError)) throw err;
    }
  };

  const authenticate = async (request: Request, remote: string): Promise<Integration | Response> => {
    const creds = parseBasicAuth(request.headers.get("authorization"));
    const meta = { remote, clientId: request.headers.get("user-agent")?.slice(0, 128) };
    if (!creds) {
      credentials.loginRefused("http", "", "unknown-user", meta);
      return refusal("unknown-user");
    }
    const result = await credentials.verify("http", creds.username, creds.password, meta);
    if (!result.ok) return refusal(result.reason);
    touch(result.integration, remote, meta.clientId);
    return result.integration;
  };

  const readBody = async (request: Request): Promise<Buffer | Response> => {
    const declared = Number(request.headers.get("content-length") ?? 0);
    const tooLarge = () => problem(413, "payload_too_large", `body larger than ${opts.maxBodyBytes} bytes`);
    if (declared > opts.maxBodyBytes) return tooLarge();
    const body = Buffer.from(await request.arrayBuffer());
    return body.length > opts.maxBodyBytes ? tooLarge() : body;
  };

  const publishOne = async (integration: Integration, topic: string, payload: Buffer, retain: boolean, qos: 0 | 1) => {
    await bus.publish({ topic, payload, retain, qos });
    log.debug("http publish", { username: integration.username, topic: topic.slice(0, 256) });
  };

  const postTopic = async (request: Request, integration: Integration, topic: string, url: URL) => {
    const retain = url.searchParams.get("retain") === "true";
    const qos = url.searchParams.get("qos") ?? "0";
    if (qos !== "0" && qos !== "1") return problem(400, "invalid_request", "qos must be 0 or 1");
    if (!mayPublish(credentials.peek(integration.id), topic, core.topicSpace)) return problem(403, "forbidden", "this integration may not publish to this topic");
    const body = await readBody(request);
    if (body instanceof Response) return body;
    await publishOne(integration, topic, body, retain, qos === "1" ? 1 : 0);
    return json({ published: 1 }, 202);
  };

  const postBatch = async (request: Request, integration: Integration) => {
    const body = await readBody(request);
    if (body instanceof Response) return body;
    let items: unknown;
    try {
      items = JSON.parse(body.toString("utf8"));
    } catch {
      return problem(400, "malformed_body", "the body must be a JSON array of {topic, payload, retain?}");
    }
    if (!Array.isArray(items) || items.length === 0) return problem(400, "invalid_request", "the body must be a non-empty JSON array of {topic, payload, retain?}");
    if (items.length > opts.maxBatch) return problem(413, "payload_too_large", `a batch holds at most ${opts.maxBatch} messages`);
    const messages: { topic: string; payload: Buffer; retain: boolean }[] = [];
    const current = credentials.peek(integration.id);
    for (const [i, item] of items.entries()) {
      const it = item as { topic?: unknown; payload?: unknown; retain?: unknown };
      const topic = typeof it?.topic === "string" ? topicOf(it.topic.split("/").map(encodeURIComponent).join("/")) : undefined;
      if (!topic) return problem(400, "invalid_request", `item ${i + 1}: topic must be an MQTT topic name without wildcards`);
      if (it.payload === undefined) return problem(400, "invalid_request", `item ${i + 1}: payload is missing`);
      if (it.retain !== undefined && typeof it.retain !== "boolean") return problem(400, "invalid_request", `item ${i + 1}: retain must be true or false`);
      // a field it does not take (`qos`, a misspelt `retained`) is refused, not silently dropped
      const extra = unknownKeys(it, ["topic", "payload", "retain"]);
      if (extra) return problem(400, "invalid_request", `item ${i + 1}: unknown field ${extra}; an item takes topic, payload, retain`);
      if (!mayPublish(current, topic, core.topicSpace)) return problem(403, "forbidden", `item ${i + 1}: this integration may not publish to ${topic}`);
      const payload = Buffer.from(typeof it.payload === "string" ? it.payload : JSON.stringify(it.payload));
      messages.push({ topic, payload, retain: it.retain === true });
    }
    for (const m of messages) await publishOne(integration, m.topic, m.payload, m.retain, 0);
    return json({ published: messages.length }, 202);
  };

  const retainedNow = async (topic: string) => {
    for await (const m of bus.retained(topic)) if (m.topic === topic && m.payload.length > 0) return m.payload;
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
    if (!mayRead(now, topic, core.topicSpace)) return problem(403, "forbidden", "this integration may not read this topic");
    return undefined;
  };

  /**
   * getTopic: the retained value, or with `?wait=N` the next one. A long poll is asked the core's read
   * decision again at the moment it answers (HOSTILE.md "ask at delivery"), and its session's kick
   * (deactivate, delete, password change, permission change, an admin's disconnect) ends it at once.
   */
  const getTopic = async (request: Request, integration: Integration, topic: string, url: URL, remote: string) => {
    const refused = readRefusal(integration.id, topic);
    if (refused) return refused;
    const wait = url.searchParams.get("wait");
    if (wait !== null) {
      if (!/^\d{1,2}$/.test(wait) || Number(wait) > 60) return problem(400, "invalid_request", "wait must be 0-60 seconds");
      // No session means the integration changed between its login check and now (StaleLoginError):
      // a kick for that change ran before this poll existed and could not end it.
      const session = live.get(sessionKey(integration.id, remote));
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
      if (end.kind === "value") return json(payloadView(topic, end.payload, end.at));
    }
    const payload = await retainedNow(topic);
    // asked again after the read of the retained store, which may have waited on the broker
    const now = readRefusal(integration.id, topic);
    if (now) return now;
    if (!payload) return problem(404, "not_found", "no retained message on this topic");
    return json(payloadView(topic, payload, retainedAt.get(topic)));
  };

  /** forwardAuth: nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy `ext_authz` (forward-auth.ts). */
  const forwardAuth = createForwardAuth(core, log, { proxy: opts.forwardAuthProxy, authenticate, responses: { problem } });

  /**
   * register: explicit registration for devices that prefer asking to guessing: 423 while onboarding is
   * closed, 202 while the request is pending (poll again), 201 once approved, 409 when the username
   * belongs to an integration with another password.
   */
  const register = async (request: Request, remote: string) => {
    if (request.method !== "POST") return problem(405, "method_not_allowed", "POST {username, password, type}", { allow: "POST" });
    const body = await readBody(request);
    if (body instanceof Response) return body;
    let input: { username?: unknown; password?: unknown; type?: unknown };
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return problem(400, "malformed_body", "the body must be JSON: {username, password, type}");
    }
    const extra = input && typeof input === "object" ? unknownKeys(input, ["username", "password", "type"]) : undefined;
    if (extra) return problem(400, "invalid_request", `unknown field ${extra}; this route takes username, password, type`);
    const { username, password, type } = input ?? {};
    if (typeof username !== "string" || typeof password !== "string" || typeof type !== "string" || !isIntegrationType(type)) {
      return problem(400, "invalid_request", `username and password are strings; type is one of ${integrationTypes.join(", ")}`);
    }
    const meta = { remote, clientId: request.headers.get("user-agent")?.slice(0, 128) };
    // the window or the name may have just been opened or made by the CLI
    const catchingUp = core.fresh();
    if (catchingUp) await catchingUp;
    if (credentials.findByUsername(username)) {
      const result = await credentials.verify(type, username, password, meta);
      if (result.ok) return json({ status: "approved", username }, 201);
      if (result.reason === "throttled") return refusal("throttled");
      return problem(409, "conflict", "this username belongs to an integration already");
    }
    const outcome = await core.onboarding.consider(type, username, password, meta, type);
    switch (outcome) {
      case "recorded":
      case "pending":
        return json({ status: "pending", username, fingerprint: fingerprintOf(username, password) }, 202);
      case "closed":
      case "type-not-open":
        return problem(423, "locked", "onboarding is closed; ask the admin to open it and try again");
      case "rejected":
        return problem(403, "forbidden", "this request was rejected");
      case "conflict":
        return problem(409, "conflict", "a request for this username with another password is pending");
      case "invalid":
        return problem(400, "invalid_request", "the username or password cannot become an integration");
      default:
        return problem(429, "rate_limited", "too many requests pending; try again later", { "retry-after": "30" });
    }
  };

  const mount: HttpMount = {
    maxBodyBytes: opts.maxBodyBytes,
    claims: (path) => path === "/api/v1/data" || path.startsWith("/api/v1/data/") || path === "/auth/http" || path === "/api/v1/register",
    // `remote` is the client as the web server resolved it (behind a trusted proxy, its X-Forwarded-For)
    async fetch(request, remote) {
      const url = new URL(request.url);
      try {
        if (url.pathname === "/auth/http") return await forwardAuth(request, remote);
        if (url.pathname === "/api/v1/register") return await register(request, remote);
        const method = request.method;
        const rest = url.pathname === "/api/v1/data" ? undefined : url.pathname.slice("/api/v1/data/".length);
        if (method !== "GET" && method !== "POST" && method !== "HEAD") return problem(405, "method_not_allowed", "use GET or POST", { allow: "GET, POST" });
        const who = await authenticate(request, remote);
        if (who instanceof Response) return who;
        if (rest === undefined) return method === "POST" ? await postBatch(request, who) : problem(405, "method_not_allowed", "POST a batch here", { allow: "POST" });
        const topic = topicOf(rest);
        if (!topic) return problem(400, "invalid_request", "the path must name an MQTT topic without wildcards or a leading $");
        if (!bus.available) return problem(503, "unavailable", "the MQTT broker is not running");
        return method === "POST" ? await postTopic(request, who, topic, url) : await getTopic(request, who, topic, url, remote);
      } catch (err) {
        log.error("http device request failed", { path: url.pathname.slice(0, 256), err });
        return problem(500, "internal", "internal error; nothing was published");
      }
    },
  };

  return {
    mount,
    start() {
      stopBus = bus.onMessage(({ topic, payload, retain }) => {
        const at = Date.now();
        if (retain) {
          if (payload.length === 0) retainedAt.delete(topic);
          else retainedAt.set(topic, at);
        }
        for (const w of [...(waiters.get(topic) ?? [])]) w.end({ kind: "value", payload, at });
      });
      sweeper = setInterval(() => {
        const cutoff = Date.now() - opts.onlineWindowMs;
        for (const [key, e] of live) {
          // A session with a long poll in flight is online: its kick must still reach that poll.
          if (e.last >= cutoff || e.waiters.size > 0) continue;
          live.delete(key);
          e.handle.close();
        }
      }, Math.max(100, Math.min(5_000, opts.onlineWindowMs / 4)));
      sweeper.unref?.();
    },
    stop() {
      stopBus?.();
      if (sweeper) clearInterval(sweeper);
      const stopping: PollEnd = { kind: "refused", response: () => problem(503, "unavailable", "the appliance is stopping") };
      for (const e of live.values()) {
        e.handle.close();
        for (const w of [...e.waiters]) w.end(stopping);
      }
      live.clear();
    },
  };
}
