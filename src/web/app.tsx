import { html } from "@elysiajs/html";
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import type { Core } from "../core/index.ts";
import { AppError, httpStatusOf, isBusy, isDiskFull } from "../lib/errors.ts";
import { htmlResponse, isHtmx, jsonResponse, problem, remoteOf, type HttpMount } from "../lib/http.ts";
import type { Logger } from "../lib/logger.ts";
import type { AdminPages, ConnectHelp, HelpContext, IntegrationNote, NavItem, PageKit } from "../lib/pages.ts";
import type { Integration, IntegrationType } from "../core/types.ts";
import { SimplePage } from "../../views/pages/simple.tsx";
import { apiRoutes } from "./api.ts";
import { banRoutes } from "./bans.tsx";
import { onboardingRoutes } from "./onboarding.tsx";
import { settingsPages } from "./settings.tsx";
import { assetRoutes } from "./assets.ts";
import { unknownFields } from "../lib/bodies.ts";
import { actorOf, adminOf, authGuard, authRoutes, Denied } from "./auth.tsx";
import { eventStream, integrationPages, retryNotesFor } from "./integrations/index.ts";
import { tokenPages } from "./tokens.tsx";
import { OneTimeSecrets, oneTimePages } from "./once.tsx";
import { secondFactorPages } from "./second-factor.tsx";
import { backupPages } from "./backup.tsx";

export interface WebOptions {
  /** requests with a larger declared body are refused before parsing (Bun.serve enforces it too) */
  maxBodyBytes?: number;
  version?: string;
  /** listeners that share this port (HTTP integrations), with their own authentication */
  mounts?: HttpMount[];
  /** /readyz: every listener serving and the database writable; what each connector says of its far end */
  readiness?: () => { ready: boolean; reasons: string[]; connectors?: Record<string, unknown> };
  /** the parts' admin pages (a nav entry and routes each), mounted behind the admin guard */
  pages?: AdminPages[];
  /** what the parts add to an integration's row */
  describe?: (integration: Integration) => IntegrationNote | undefined;
  /** how a device of a type connects, from that type's part (none: the page says only what the core knows) */
  help?: (type: IntegrationType, context: Omit<HelpContext, "port">) => ConnectHelp | undefined;
}

export const defaultMaxBodyBytes = 64 * 1024;

const securityHeaders: Record<string, string> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts.
  "referrer-policy": "same-origin",
  "cache-control": "no-store",
};

function errorResponse(
  request: Request,
  status: number,
  code: string,
  message: string,
  fields?: Record<string, string>,
): Response | Promise<Response> {
  if (new URL(request.url).pathname.startsWith("/api/")) return problem(status, code, message, {}, fields);
  if (isHtmx(request)) {
    return htmlResponse(`<p class="field-error" role="alert">${Bun.escapeHTML(message)}</p>`, status, {
      "hx-reswap": "none",
    });
  }
  return htmlResponse(
    <SimplePage title={status === 404 ? "Not found" : "Something went wrong"}>
      <p safe>{message}</p>
      <p>
        <a href="/integrations">Back to integrations</a>
      </p>
    </SimplePage>,
    status,
  );
}

/** createWebApp: the Elysia app (admin pages, JSON API, assets), testable through `app.handle`. */
export function createWebApp(core: Core, log: Logger, opts: WebOptions = {}) {
  const maxBody = opts.maxBodyBytes ?? defaultMaxBodyBytes;
  const mounts = opts.mounts ?? [];
  const pages = opts.pages ?? [];
  // The navigation: the core's pages around the parts' own (a protocol's page arrives with its part).
  const nav: NavItem[] = [
    { href: "/integrations", label: "Integrations" },
    ...pages.flatMap((p) => (p.nav ? [p.nav] : [])),
    { href: "/topics", label: "Topics" },
    { href: "/bans", label: "Bans" },
    { href: "/activity", label: "Activity" },
    { href: "/settings", label: "Settings" },
    { href: "/settings/tokens", label: "API tokens" },
  ];
  const kit: PageKit = { adminOf, actorOf };
  const secrets = new OneTimeSecrets();
  // normalize: false: a field a route does not declare is a 400 naming it, never silently dropped (bodies.ts).
  return (
    new Elysia({ name: "gatehouse-web", normalize: false })
      // 8 KB of request headers is plenty for devices, proxies and this page; more is a probe or an attack.
      .onRequest(({ request }) => {
        let headerBytes = 0;
        request.headers.forEach((v, k) => void (headerBytes += k.length + v.length + 4));
        if (headerBytes > 8 * 1024) return problem(431, "headers_too_large", "request headers larger than 8 KB");
      })
      // A listener's routes (device data, forward auth) never meet the admin guard, pages or cookies.
      .onRequest(({ request }) => {
        if (mounts.length === 0) return;
        const path = new URL(request.url).pathname;
        const mount = mounts.find((m) => m.claims(path));
        if (mount) return mount.fetch(request, remoteOf(request));
      })
      // html() gives handlers ctx.html(); its autoDetect would turn any string that looks like HTML
      // into a page, the API's too. Only page routes get text/html here.
      .use(html({ autoDetect: false }))
      .mapResponse({ as: "global" }, ({ responseValue, path, set }) => {
        if (typeof responseValue === "string" && !path.startsWith("/api/")) {
          return htmlResponse(responseValue, typeof set.status === "number" ? set.status : 200);
        }
      })
      .onRequest(({ request, set }) => {
        Object.assign(set.headers, securityHeaders);
        const length = Number(request.headers.get("content-length") ?? 0);
        if (length > maxBody)
          return errorResponse(request, 413, "payload_too_large", `request body larger than ${maxBody} bytes`);
        // A body without a declared length (chunked) would be read whole, up to the server's limit (the
        // device routes' 1 MB), before anything could judge it: these routes want it declared. Browsers,
        // htmx, curl and every HTTP library send Content-Length for a body they hold.
        if (request.headers.has("transfer-encoding"))
          return errorResponse(request, 411, "length_required", "send the body with a Content-Length (not chunked)");
      })
      .onError(({ code, error, request }) => {
        if (error instanceof Denied) return error.response;
        if (error instanceof AppError)
          return errorResponse(request, httpStatusOf[error.code], error.code, error.message, error.fields);
        // found from outside: on a full disk signing in (a session is a row) answered 500 "internal error",
        // when the admin most needs the page; now it says what is wrong
        if (isDiskFull(error)) {
          log.error("request failed: the disk is full", {
            method: request.method,
            path: new URL(request.url).pathname,
          });
          return errorResponse(
            request,
            503,
            "disk_full",
            "the data dir's disk is full: nothing was changed (signing in writes to it too); free some space, /readyz says how much is left",
          );
        }
        if (isBusy(error)) {
          log.warn("database busy", { method: request.method, path: new URL(request.url).pathname });
          return errorResponse(
            request,
            503,
            "unavailable",
            "the database is locked by another process (a CLI command?); nothing was changed, try again in a moment",
          );
        }
        switch (code) {
          case "VALIDATION": {
            const extra = unknownFields(error);
            if (extra) {
              const names = `${extra.unknown.join(", ")}${extra.more ? " and more" : ""}`;
              const takes = extra.accepted.length ? `; it takes ${extra.accepted.join(", ")}` : "; it takes no fields";
              const fields = Object.fromEntries(extra.unknown.map((n) => [n, "unknown field"]));
              return errorResponse(
                request,
                400,
                "invalid_request",
                `invalid request: this route does not take ${names}${takes}`,
                fields,
              );
            }
            return errorResponse(request, 400, "invalid_request", `invalid request: ${summarizeValidation(error)}`);
          }
          case "PARSE":
            return errorResponse(request, 400, "malformed_body", "the request body could not be parsed");
          case "NOT_FOUND":
            return errorResponse(request, 404, "not_found", "no such page");
          default:
            log.error("request failed", { method: request.method, path: new URL(request.url).pathname, err: error });
            return errorResponse(
              request,
              500,
              "internal",
              "internal error; the appliance keeps running and nothing was changed",
            );
        }
      })
      .get("/healthz", () => jsonResponse({ status: "ok", version: opts.version ?? "dev" }))
      .get("/readyz", () => {
        const r = opts.readiness?.() ?? { ready: true, reasons: [] };
        const body = { status: r.ready ? "ready" : "not ready", reasons: r.reasons, connectors: r.connectors };
        return jsonResponse(body, r.ready ? 200 : 503);
      })

      .use(assetRoutes())
      .use(authGuard(core, nav))
      // The API's description needs what the API needs (a token or a signed-in admin): it tells an
      // unauthenticated stranger nothing, and the README says every /api/ route is guarded.
      .use(
        openapi({
          path: "/api/v1/openapi",
          provider: null, // the UI would load from a CDN; the JSON document is what tools need
          documentation: {
            info: {
              title: "Gatehouse API",
              version: opts.version ?? "dev",
              description:
                "Integrations and sessions. Authenticate with `Authorization: Bearer <token>` (create one under API tokens).",
            },
            components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
            security: [{ bearer: [] }],
          },
          exclude: { paths: [/^\/(?!api\/v1\/)/] },
        }),
      )
      // Prometheus: an API token (Authorization: Bearer) or a signed-in admin. After the guard: a route
      // registered before it is not guarded (Elysia applies hooks to the routes that follow them).
      .get(
        "/metrics",
        async () =>
          new Response(await core.metrics.render(), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          }),
      )
      .use(authRoutes(core))
      .use(integrationPages(core, secrets, opts.describe ?? (() => undefined), opts.help))
      .use(oneTimePages(secrets))
      .use(eventStream(core))
      .use(tokenPages(core, secrets))
      .use(partRoutes(pages, kit))
      .use(onboardingRoutes(core, (request) => retryNotesFor(opts.help ?? (() => undefined), request)))
      .use(settingsPages(core))
      .use(banRoutes(core))
      .use(secondFactorPages(core))
      .use(backupPages(core))
      .use(apiRoutes(core))
  );
}

/** partRoutes: every part's pages and API routes as one plugin, in registry order. */
function partRoutes(pages: AdminPages[], kit: PageKit) {
  const all = new Elysia({ name: "part-routes" });
  for (const p of pages) all.use(p.routes(kit));
  return all;
}

function summarizeValidation(error: unknown): string {
  const e = error as { all?: { path?: string; message?: string }[]; message?: string };
  const first = e.all?.[0];
  if (first) return `${first.path || "body"}: ${first.message ?? "invalid"}`;
  return "does not match the schema";
}

export type WebApp = ReturnType<typeof createWebApp>;
