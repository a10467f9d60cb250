import { ConfigError, parseCount } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import { createDeviceApi, type DeviceApiOptions } from "./device-api.ts";
import { forwardAuthProxies, type ForwardAuthProxy } from "./forward-auth.ts";

function parseProxy(raw: string): ForwardAuthProxy | "off" {
  if (raw === "off" || (forwardAuthProxies as readonly string[]).includes(raw)) return raw as ForwardAuthProxy | "off";
  throw new ConfigError(`--forward-auth-proxy must be off, ${forwardAuthProxies.join(", ")}, got "${raw}"`);
}

/** httpListener: HTTP integrations on the admin page's port: device data and forward auth for reverse proxies. */
export const httpListener = defineListener<DeviceApiOptions>()({
  type: "http",
  accepts: ["http"],
  configKeys: {
    "http-online-window": { flag: "--http-online-window SECONDS", env: "GATEHOUSE_HTTP_ONLINE_WINDOW", help: "an HTTP integration is online this long after a request", default: "60" },
    "http-max-body": { flag: "--http-max-body BYTES", env: "GATEHOUSE_HTTP_MAX_BODY", help: "largest body of an HTTP data request", default: "1048576" },
    "forward-auth-proxy": {
      flag: "--forward-auth-proxy NAME",
      env: "GATEHOUSE_FORWARD_AUTH_PROXY",
      help: "nginx | caddy | traefik | envoy | generic: the proxy asking /auth/http, whose headers alone are read (off: 403)",
      default: "off",
    },
  },
  parseConfig: (get) => ({
    onlineWindowMs: parseCount("http-online-window", get("http-online-window")!, 1, 86_400) * 1000,
    maxBodyBytes: parseCount("http-max-body", get("http-max-body")!, 64, 64 * 1024 * 1024),
    maxBatch: 1000,
    forwardAuthProxy: parseProxy(get("forward-auth-proxy")!),
  }),
  create(deps, options) {
    const api = createDeviceApi(deps.core, deps.log, options);
    return {
      type: "http",
      http: api.mount,
      async start() {
        api.start();
      },
      async stop() {
        api.stop();
      },
      address: () => undefined,
    };
  },
});
