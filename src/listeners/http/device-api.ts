import type { Core } from "../../core/index.ts";
import type { HttpMount } from "../../lib/http.ts";
import type { Logger } from "../../lib/logger.ts";
import { createDataRoutes } from "./data.ts";
import { createForwardAuth, type ForwardAuthProxy } from "./forward-auth.ts";
import { createPresence } from "./presence.ts";
import { createRegistration } from "./register.ts";
import { problem } from "./responses.ts";

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

/** isDevicePath: what the HTTP listener answers on the shared port, before the admin guard. */
const isDevicePath = (path: string) =>
  path === "/api/v1/data" || path.startsWith("/api/v1/data/") || path === "/auth/http" || path === "/api/v1/register";

/**
 * createDeviceApi: the HTTP integrations' share of the HTTP port, put together from its parts:
 * presence.ts (Basic auth and who is online), data.ts (publish, retained values, long polls),
 * forward-auth.ts (`/auth/http` for reverse proxies) and register.ts (onboarding on request).
 */
export function createDeviceApi(core: Core, log: Logger, opts: DeviceApiOptions) {
  const presence = createPresence(core, opts.onlineWindowMs);
  const data = createDataRoutes(core, log, presence, opts);
  const forwardAuth = createForwardAuth(core, log, {
    proxy: opts.forwardAuthProxy,
    authenticate: presence.authenticate,
    responses: { problem },
  });
  const register = createRegistration(core, opts.maxBodyBytes);

  const mount: HttpMount = {
    maxBodyBytes: opts.maxBodyBytes,
    routeClass: "device",
    claims: isDevicePath,
    // `remote` is the client as the web server resolved it (behind a trusted proxy, its X-Forwarded-For)
    async fetch(request, remote) {
      const url = new URL(request.url);
      try {
        if (url.pathname === "/auth/http") return await forwardAuth(request, remote);
        if (url.pathname === "/api/v1/register") return await register(request, remote);
        const method = request.method;
        if (method !== "GET" && method !== "POST" && method !== "HEAD")
          return problem(405, "method_not_allowed", "use GET or POST", { allow: "GET, POST" });
        const who = await presence.authenticate(request, remote);
        if (who instanceof Response) return who;
        const rest = url.pathname === "/api/v1/data" ? undefined : url.pathname.slice("/api/v1/data/".length);
        return await data.handle(request, who, rest, url, remote);
      } catch (err) {
        log.error("http device request failed", { path: url.pathname.slice(0, 256), err });
        return problem(500, "internal", "internal error; nothing was published");
      }
    },
  };

  return {
    mount,
    start() {
      data.start();
      presence.start();
    },
    stop() {
      data.stop();
      presence.stop({ kind: "refused", response: () => problem(503, "unavailable", "the appliance is stopping") });
    },
  };
}
