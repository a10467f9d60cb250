import type { ConnectHelp, HelpContext } from "../../lib/pages.ts";
import { shellQuote } from "../../lib/quote.ts";

/**
 * httpHelp: an HTTP integration's username is its Basic-auth user name; the data API on the admin
 * page's port (HTTP and, when on, HTTPS) and curl lines to publish, read, and wait for a change.
 */
export function httpHelp(ctx: HelpContext): ConnectHelp {
  const urls: ConnectHelp["urls"] = [{ label: "Device data API", url: `${ctx.baseUrl}/api/v1/data/<topic>` }];
  const https = ctx.port("https");
  if (https && !ctx.baseUrl.startsWith("https:"))
    urls.push({ label: "… over HTTPS", url: `https://${ctx.host}:${https}/api/v1/data/<topic>` });
  const user = shellQuote(`${ctx.username}:PASSWORD`);
  const at = (path: string) => shellQuote(`${ctx.baseUrl}/api/v1/data/${path}`);
  return {
    username:
      "The user name of HTTP Basic auth, sent with every request (curl -u NAME:PASSWORD). Online while it made a " +
      "request lately; reads and writes follow the topic permissions.",
    urls,
    retry:
      "HTTP: a device that sends periodically comes in with its next request; one that asks once can poll POST " +
      "/api/v1/register until it answers 201.",
    examples: [
      {
        label: "Publish a retained value",
        text: `curl -u ${user} -H 'content-type: application/json' \\\n  -d '{"value":21.5}' ${at("plant/line1/temp?retain=true")}`,
      },
      { label: "Read the retained value", text: `curl -u ${user} ${at("plant/line1/temp")}` },
      { label: "Wait up to 30 s for a change", text: `curl -u ${user} ${at("plant/line1/setpoint?wait=30")}` },
    ],
  };
}
