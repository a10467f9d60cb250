import type { Core } from "../../core/index.ts";
import { mayPublish, mayRead } from "../../core/permissions.ts";
import type { Integration } from "../../core/types.ts";
import type { Logger } from "../../lib/logger.ts";
import { canonicalPath, type PathRefusal } from "./canonical-path.ts";

/**
 * forwardAuthProxies: the reverse proxies whose forward-auth request Gatehouse knows. The name decides
 * the ONE place the original method and URI are read from; nothing is guessed at run time, because a
 * client can send any header it likes and most proxies pass the client's headers on to the auth
 * request, overwriting only the ones they set themselves.
 */
export const forwardAuthProxies = ["nginx", "caddy", "traefik", "envoy", "generic"] as const;
export type ForwardAuthProxy = (typeof forwardAuthProxies)[number];

/** headerFamilies: the header pairs proxies use for the original request. */
const headerFamilies = {
  /** nginx `auth_request` with `proxy_set_header X-Original-URI $request_uri` (the name nginx's docs use) */
  original: { uri: "x-original-uri", method: "x-original-method" },
  /** Caddy `forward_auth` and Traefik `forwardAuth` set these themselves, replacing the client's */
  forwarded: { uri: "x-forwarded-uri", method: "x-forwarded-method" },
  /** the `generic` proxy's: names no proxy sets on its own, so only a deliberate `set header` line can produce them */
  gatehouse: { uri: "x-gatehouse-uri", method: "x-gatehouse-method" },
} as const;

/**
 * source: where each proxy's original method and URI are read. `envoy`: Envoy's ext_authz HTTP service
 * sends the check request with the original method and the original path appended to `path_prefix`
 * (no client header unless `allowed_headers` names it); with `path_prefix: /auth/http?uri=` the
 * original path arrives in our query string, untouched by our own server's URL parsing (which
 * resolves `..` and `\` in a request's path before any handler sees it).
 */
const source: Record<ForwardAuthProxy, keyof typeof headerFamilies | "check-request"> = {
  nginx: "original",
  caddy: "forwarded",
  traefik: "forwarded",
  envoy: "check-request",
  generic: "gatehouse",
};

/** standardFamilies: a request that carries one of these the named proxy does not set is refused (403). */
const standardFamilies = ["original", "forwarded"] as const;

const readMethods = new Set(["GET", "HEAD", "OPTIONS"]);

/** ForwardAuthRefusal: why a check was refused before credentials were looked at (the metric's `reason` label). */
export type ForwardAuthRefusal = PathRefusal | "proxy-not-named" | "foreign-header" | "missing-uri" | "missing-method";

/** Responses: the device API's JSON problem answers, so both speak one format. */
interface Responses {
  problem(status: number, error: string, message: string, headers?: Record<string, string>): Response;
}

/**
 * createForwardAuth: the `/auth/http` check. Order: the proxy must be named (403 otherwise), the
 * original request must come from the named proxy's headers alone (403 when another family is
 * present, 400 when they are missing), its path must have one canonical reading (403), and only then
 * are credentials checked (401; throttled 403 with Retry-After), then permissions (403). Refusing
 * before the credential check costs no password hash.
 */
export function createForwardAuth(
  core: Core,
  log: Logger,
  opts: {
    proxy: ForwardAuthProxy | "off";
    /** Basic auth through the core (the device API's): an integration, or the refusal to send */
    authenticate(request: Request, remote: string): Promise<Integration | Response>;
    responses: Responses;
  },
) {
  const { problem } = opts.responses;
  const refusals = core.metrics.counter(
    "gatehouse_forward_auth_refusals_total",
    "forward-auth checks refused before credentials, by reason",
  );
  let offLogged = false;
  /** logged at most once per reason every 10 s, with how many were not logged */
  const lastLog = new Map<ForwardAuthRefusal, { at: number; suppressed: number }>();

  const refuse = (
    reason: ForwardAuthRefusal,
    remote: string,
    uri: string | null,
    status: 400 | 403,
    message: string,
  ) => {
    refusals.inc({ reason });
    const now = Date.now();
    const last = lastLog.get(reason);
    if (!last || now - last.at >= 10_000) {
      log.warn("forward auth refused", {
        reason,
        remote,
        uri: uri ?? undefined,
        suppressed: last?.suppressed || undefined,
      });
      lastLog.set(reason, { at: now, suppressed: 0 });
    } else last.suppressed++;
    return problem(status, status === 400 ? "invalid_request" : "forbidden", message);
  };

  /** original: the method and URI of the request the proxy asks about, or the refusal. */
  const original = (
    request: Request,
    proxy: ForwardAuthProxy,
    remote: string,
  ): { method: string; uri: string } | Response => {
    const from = source[proxy];
    for (const family of standardFamilies) {
      if (family === from) continue;
      const { uri, method } = headerFamilies[family];
      if (request.headers.has(uri) || request.headers.has(method)) {
        return refuse(
          "foreign-header",
          remote,
          null,
          403,
          `--forward-auth-proxy is ${proxy}: ${uri} and ${method} are not read and must not be sent (the proxy passed a client's header on)`,
        );
      }
    }
    let uri: string | null;
    let method: string | null;
    if (from === "check-request") {
      // Envoy: path_prefix `/auth/http?uri=` makes the check request `/auth/http?uri=<original path and query>`
      const url = request.url;
      const q = url.indexOf("?");
      uri = q >= 0 && url.startsWith("uri=", q + 1) ? url.slice(q + 5) : null;
      method = request.method;
    } else {
      uri = request.headers.get(headerFamilies[from].uri);
      method = request.headers.get(headerFamilies[from].method);
    }
    const where = from === "check-request" ? "the check request's ?uri=" : headerFamilies[from].uri;
    if (!uri)
      return refuse(
        "missing-uri",
        remote,
        null,
        400,
        `no original URI (${where}); the proxy is not configured as the README shows`,
      );
    const whereMethod = from === "check-request" ? "the check request's method" : headerFamilies[from].method;
    // a method is a token; anything else (two headers joined, a space) is a proxy we do not understand
    if (!method || !/^[A-Za-z]{1,32}$/.test(method))
      return refuse(
        "missing-method",
        remote,
        uri.slice(0, 256),
        400,
        `no original method (${whereMethod}), or not a method`,
      );
    return { method, uri };
  };

  return async function forwardAuth(request: Request, remote: string): Promise<Response> {
    if (opts.proxy === "off") {
      refusals.inc({ reason: "proxy-not-named" });
      if (!offLogged) {
        offLogged = true;
        log.warn(
          "forward auth is off: start with --forward-auth-proxy nginx|caddy|traefik|envoy|generic to name the proxy in front; every check answers 403 until then",
        );
      }
      return problem(
        403,
        "forward_auth_off",
        "forward auth is off: the admin must name the reverse proxy in front (--forward-auth-proxy nginx|caddy|traefik|envoy|generic)",
      );
    }
    const asked = original(request, opts.proxy, remote);
    if (asked instanceof Response) return asked;
    const canonical = canonicalPath(asked.uri);
    if (!canonical.ok)
      return refuse(
        canonical.reason,
        remote,
        asked.uri.slice(0, 256),
        403,
        `the original URI is refused (${canonical.reason}): it could name more than one path`,
      );

    const who = await opts.authenticate(request, remote);
    if (who instanceof Response) {
      if (who.status === 401) return who;
      // nginx auth_request turns any status but 2xx, 401 and 403 into a 500 for the client: a throttled
      // client, or one refused because the password-check line is full, gets 403 with Retry-After here
      // (the device data API keeps its 429 and 503).
      if (who.status === 429)
        return problem(403, "rate_limited", "too many failed logins from this address for this name; try again later", {
          "retry-after": who.headers.get("retry-after") ?? "60",
        });
      if (who.status === 503)
        return problem(403, "unavailable", "too many logins are being checked now; try again in a moment", {
          "retry-after": who.headers.get("retry-after") ?? "10",
        });
      return who.status === 403 ? who : problem(403, "forbidden", "this integration may not use forward auth now");
    }
    // Methods are case-sensitive (RFC 9110 §9.1): only these exact spellings are reads; `get` is judged as a write.
    const integration = core.credentials.peek(who.id);
    const allowed = readMethods.has(asked.method)
      ? mayRead(integration, canonical.path, core.topicSpace)
      : mayPublish(integration, canonical.path, core.topicSpace);
    if (!allowed) return problem(403, "forbidden", "this integration may not open this path");
    return new Response(null, {
      status: 200,
      headers: { "x-gatehouse-integration": who.username, "cache-control": "no-store" },
    });
  };
}
