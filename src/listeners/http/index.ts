import { option } from "../../lib/options.ts";
import { defineListener } from "../listener.ts";
import { createDeviceApi, type DeviceApiOptions } from "./device-api.ts";
import { forwardAuthProxies, type ForwardAuthProxy } from "./forward-auth.ts";
import { httpHelp } from "./help.ts";

/** httpListener: HTTP integrations on the admin page's port: device data and forward auth for reverse proxies. */
export const httpListener = defineListener<DeviceApiOptions>()({
  type: "http",
  accepts: ["http"],
  options: {
    httpOnlineWindow: option.count(
      "an HTTP integration is online this long after a request",
      "60",
      1,
      86_400,
      "SECONDS",
    ),
    httpMaxBody: option.count("largest body of an HTTP data request", "1048576", 64, 64 * 1024 * 1024, "BYTES"),
    forwardAuthProxy: option.oneOf(
      "the proxy asking /auth/http; only its headers are read (off: 403)",
      ["off", ...forwardAuthProxies] as const,
      "off",
    ),
  },
  parseConfig: (o) => ({
    onlineWindowMs: o.httpOnlineWindow * 1000,
    maxBodyBytes: o.httpMaxBody,
    maxBatch: 1000,
    forwardAuthProxy: o.forwardAuthProxy as ForwardAuthProxy | "off",
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
      help: httpHelp,
    };
  },
});
