import { SimplePage } from "../../views/pages/simple.tsx";
import { timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import { enterActor } from "../core/activity.ts";
import type { AdminRole, AdminSession } from "../core/admins.ts";
import type { Core } from "../core/index.ts";
import { AppError } from "../lib/errors.ts";
import { field, htmlResponse, isHtmx, problem, redirect, remoteOf, safeNext } from "../lib/http.ts";
import { formFields } from "../lib/bodies.ts";
import { randomToken } from "../lib/ids.ts";
import type { NavItem, PageAdmin } from "../lib/pages.ts";
import { CodePage, LoginPage, SetupPage } from "../../views/pages/login.tsx";

export const sessionCookie = "gh_session";

/** Cookies: the request's cookie jar as Elysia hands it to a handler. */
// biome-ignore lint/suspicious/noExplicitAny: Elysia's jar type is generic over the route's schema
type Cookies = Record<string, any>;
/** preauthCookie: double-submit CSRF token for the two forms used before there is a session. */
const preauthCookie = "gh_preauth";
/** pendingCookie: the sign-in that passed the password and waits for a code (httpOnly, this path's form only). */
const pendingCookie = "gh_2fa";

export type Auth =
  | { kind: "session"; token: string; session: AdminSession; nav: readonly NavItem[] }
  | { kind: "token"; name: string; role: AdminRole };

const authByRequest = new WeakMap<Request, Auth>();

/** authOf: the admin behind a request that passed the guard. */
export function authOf(request: Request): Auth {
  const auth = authByRequest.get(request);
  if (!auth) throw new AppError("unauthorized", "sign in first");
  return auth;
}

/** adminOf: the signed-in admin for page rendering (API-token requests have no page identity). */
export function adminOf(request: Request): PageAdmin {
  const auth = authOf(request);
  if (auth.kind !== "session") throw new AppError("forbidden", "pages need a signed-in admin, not an API token");
  return {
    username: auth.session.username,
    csrfToken: auth.session.csrfToken,
    nav: auth.nav,
    readOnly: auth.session.role !== "full",
  };
}

/** isReadOnly: a read-only admin's session or a read-only API token. */
export function isReadOnly(request: Request): boolean {
  const auth = authOf(request);
  return (auth.kind === "session" ? auth.session.role : auth.role) !== "full";
}

/** actorOf: who made a request that passed the guard, as the log names it. */
export function actorOf(request: Request): string {
  const a = authOf(request);
  return a.kind === "session" ? `admin ${a.session.username}` : `API token ${a.name}`;
}

const publicPaths = [
  /^\/login(?:\/code)?$/,
  /^\/setup$/,
  /^\/assets\//,
  /^\/healthz$/,
  /^\/readyz$/,
  /^\/favicon\.ico$/,
];
const safeMethods = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * readOnlyMayPost: the only state-changing routes a read-only admin may call: its own sign-in (sign out,
 * its password, its second factor) and the JSON export without secrets (a POST only for its CSRF token;
 * the handler refuses the secrets). Everything else that is not GET/HEAD/OPTIONS is refused (403) in
 * the guard, before the route runs: deny by default, so a route added later is refused too until it is
 * named here. test/web/read-only.test.ts enumerates every route of the app to hold this.
 */
export const readOnlyMayPost: ReadonlySet<string> = new Set([
  "/logout",
  "/settings/password",
  "/settings/2fa/start",
  "/settings/2fa/confirm",
  "/settings/2fa/disable",
  "/settings/backup/export",
]);

/** readOnlyHidden: GET routes that show a secret (a one-time password or token): never to a read-only admin. */
const readOnlyHidden = [/^\/once\//];

function equalTokens(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** cookieOptions: the session cookie's flags (Secure behind HTTPS or a TLS-terminating proxy). */
export function cookieOptions(request: Request, maxAge?: number) {
  const secure = new URL(request.url).protocol === "https:" || request.headers.get("x-forwarded-proto") === "https";
  return {
    httpOnly: true,
    sameSite: "strict" as const,
    path: "/",
    secure,
    ...(maxAge !== undefined ? { maxAge } : {}),
  };
}

/**
 * crossSite: a state-changing request with a session or sign-in cookie that does not show it comes from
 * this appliance's own pages. Its `Origin` must name this host (browsers send Origin with every POST,
 * form or fetch, since 2020: Chromium, Firefox, Safari; `null` from a sandboxed frame is refused); with no
 * Origin at all, a `Referer` naming this host is taken instead (OWASP's fallback: the pages send
 * `Referrer-Policy: same-origin`, so their own requests carry one); with neither, the request is refused.
 * API tokens (Bearer) need none of this: browsers never send one on their own.
 */
export function crossSite(request: Request): boolean {
  const origin = request.headers.get("origin");
  const from = origin ?? request.headers.get("referer");
  if (!from || from === "null") return true;
  try {
    const host = new URL(from).host;
    return host !== new URL(request.url).host && host !== request.headers.get("host");
  } catch {
    return true;
  }
}

/** notFromHere: what a cookie request without an Origin or Referer of this host is told. */
const notFromHere =
  "This request did not come from the appliance's own page (no Origin or Referer header naming this host): nothing was changed. Use the page in a browser, or an API token.";

function deny(request: Request, status: 401 | 403, message: string): never {
  throw new Denied(denial(request, status, message));
}

function denial(request: Request, status: 401 | 403, message: string): Response {
  if (new URL(request.url).pathname.startsWith("/api/"))
    return problem(status, status === 401 ? "unauthorized" : "forbidden", message);
  if (status === 401) {
    const next = new URL(request.url);
    const login = `/login?next=${encodeURIComponent(next.pathname + next.search)}`;
    return isHtmx(request)
      ? new Response(null, { status: 401, headers: { "hx-redirect": "/login" } })
      : redirect(login);
  }
  // htmx shows the message in its toast (app.js): a short fragment, no page around it
  if (isHtmx(request))
    return htmlResponse(`<p class="field-error" role="alert">${Bun.escapeHTML(message)}</p>`, 403, {
      "hx-reswap": "none",
    });
  // no async component inside: the page renders to a string
  const page = (
    <SimplePage title="Not allowed">
      <p safe>{message}</p>
      <p>
        <a href="/integrations">Reload the Integrations page</a>
      </p>
    </SimplePage>
  ) as string;
  return htmlResponse(page, 403);
}

/**
 * staleSession: what a page's request with an out-of-date CSRF token is told: the usual cause is a
 * sign-in since the page loaded (another tab, or after the session expired), which gave a new token.
 */
export const staleSession =
  "This page is from an earlier sign-in (you signed in again, perhaps in another tab): nothing was changed. Reload the page and try again.";

/** Denied: thrown by the guard (transform hooks cannot answer); the app's onError returns `response`. */
export class Denied extends Error {
  constructor(readonly response: Response) {
    super("denied");
  }
}

/**
 * authGuard: every route but the public ones needs an admin session cookie or an API token; every
 * state-changing request with a session cookie needs the session's CSRF token (form field `_csrf`
 * or header `X-CSRF-Token`). Bearer tokens are not sent by browsers on their own, so they need none.
 */
export function authGuard(core: Core, nav: readonly NavItem[] = []) {
  // onTransform runs after parsing and before schema validation: an anonymous client learns nothing
  // about a route's schema, and the CSRF field of a form body is already readable.
  return new Elysia({ name: "auth-guard" }).onTransform({ as: "global" }, ({ request, cookie, body, path }) => {
    if (publicPaths.some((p) => p.test(path))) return;
    const unsafe = !safeMethods.has(request.method);
    const bearer = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (bearer) {
      // Tokens are for the API: a page route refuses one before it acts (and tokens cannot manage
      // tokens or trust certificates, which live on pages only).
      if (!path.startsWith("/api/") && path !== "/metrics")
        return deny(request, 403, "API tokens work on /api/ routes and /metrics only");
      const token = core.admins.resolveApiToken(bearer);
      if (!token) return deny(request, 401, "invalid API token");
      // a read-only token (monitoring, Prometheus) reads everything the API shows and changes nothing
      if (token.role !== "full" && unsafe) return deny(request, 403, "a read-only API token changes nothing");
      authByRequest.set(request, { kind: "token", name: token.name, role: token.role });
      enterActor(`token:${token.name}`); // the activity log attributes what this request changes
      return;
    }
    const token = cookie[sessionCookie]?.value;
    const session = typeof token === "string" ? core.admins.resolveSession(token) : undefined;
    if (!session || typeof token !== "string") return deny(request, 401, "sign in first");
    if (unsafe) {
      const sent = request.headers.get("x-csrf-token") ?? field(body, "_csrf");
      if (!equalTokens(sent ?? undefined, session.csrfToken)) return deny(request, 403, staleSession);
      if (crossSite(request)) return deny(request, 403, notFromHere);
    }
    if (session.role !== "full") {
      if (unsafe ? !readOnlyMayPost.has(path) : readOnlyHidden.some((p) => p.test(path)))
        return deny(request, 403, "a read-only admin changes nothing and sees no secrets");
    }
    authByRequest.set(request, { kind: "session", token, session, nav });
    enterActor(`admin:${session.username}`);
  });
}

/** authRoutes: sign-in, sign-out and first-admin setup. */
export function authRoutes(core: Core) {
  const issuePreauth = (request: Request, cookie: Cookies) => {
    const t = randomToken();
    cookie[preauthCookie].set({ value: t, ...cookieOptions(request, 3600) });
    return t;
  };
  const checkPreauth = (request: Request, cookie: Cookies, body: unknown) => {
    if (crossSite(request) || !equalTokens(field(body, "_csrf"), cookie[preauthCookie]?.value)) {
      throw new AppError("forbidden", "the form expired or came from another site; reload the page and try again");
    }
  };
  const startSession = (request: Request, cookie: Cookies, token: string) => {
    cookie[sessionCookie].set({ value: token, ...cookieOptions(request, Math.floor(core.admins.sessionTtlMs / 1000)) });
    cookie[preauthCookie].remove();
  };

  return (
    new Elysia({ name: "auth-routes" })
      .get("/login", ({ request, cookie, query }) => {
        if (!core.admins.hasAdmin()) {
          return (
            <SimplePage title="No admin yet">
              <p>
                No admin exists yet. Open the setup link printed in the appliance's log (
                <code>journalctl -u gatehouse</code>), or run <code>gatehouse admin set-password --username NAME</code>{" "}
                on the device.
              </p>
            </SimplePage>
          );
        }
        return <LoginPage csrfToken={issuePreauth(request, cookie)} next={safeNext(query.next)} />;
      })
      .post(
        "/login",
        async ({ request, cookie, body }) => {
          checkPreauth(request, cookie, body);
          const username = field(body, "username") ?? "";
          try {
            const step = await core.admins.beginSignIn(
              username,
              field(body, "password") ?? "",
              remoteOf(request),
              request.signal,
              request.headers.get("user-agent") ?? "",
            );
            if ("pending" in step) {
              cookie[pendingCookie]!.set({ value: step.pending, ...cookieOptions(request, 300) });
              return <CodePage csrfToken={issuePreauth(request, cookie)} next={safeNext(field(body, "next"))} />;
            }
            startSession(request, cookie, step.token);
            return redirect(safeNext(field(body, "next")));
          } catch (err) {
            if (!(err instanceof AppError)) throw err;
            const status = err.code === "rate_limited" ? 429 : 401;
            return htmlResponse(
              <LoginPage
                csrfToken={issuePreauth(request, cookie)}
                error={err.message}
                username={username}
                next={safeNext(field(body, "next"))}
              />,
              status,
            );
          }
        },
        { body: formFields("next", "username", "password") },
      )
      // The second step: a code from the authenticator app or a recovery code, for the sign-in in the
      // pending cookie (set only by a right password). Throttled in the core like the password.
      .post(
        "/login/code",
        ({ request, cookie, body }) => {
          checkPreauth(request, cookie, body);
          const next = safeNext(field(body, "next"));
          const pending = cookie[pendingCookie]?.value;
          let result;
          try {
            result = core.admins.completeSignIn(
              typeof pending === "string" ? pending : undefined,
              field(body, "code") ?? "",
              remoteOf(request),
            );
          } catch (err) {
            if (!(err instanceof AppError) || err.code !== "rate_limited") throw err;
            return htmlResponse(
              <CodePage csrfToken={issuePreauth(request, cookie)} next={next} error={err.message} />,
              429,
            );
          }
          if ("token" in result) {
            cookie[pendingCookie]!.remove();
            startSession(request, cookie, result.token);
            return redirect(next);
          }
          if (!result.retry) {
            cookie[pendingCookie]!.remove();
            return htmlResponse(
              <LoginPage csrfToken={issuePreauth(request, cookie)} error={result.message} next={next} />,
              401,
            );
          }
          return htmlResponse(
            <CodePage csrfToken={issuePreauth(request, cookie)} next={next} error={result.message} />,
            401,
          );
        },
        { body: formFields("next", "code") },
      )
      .post(
        "/logout",
        ({ request, cookie }) => {
          const auth = authOf(request);
          if (auth.kind === "session") core.admins.signOut(auth.token);
          cookie[sessionCookie]?.remove();
          return isHtmx(request) ? new Response(null, { headers: { "hx-redirect": "/login" } }) : redirect("/login");
        },
        { body: formFields() },
      )
      .get("/setup", ({ request, cookie, query }) => {
        if (!core.admins.setupTokenValid(query.token)) {
          return htmlResponse(
            <SimplePage title="Setup link not valid">
              <p>
                This setup link is invalid, used or expired. If an admin exists, <a href="/login">sign in</a>; otherwise
                restart the appliance for a new link, or run <code>gatehouse admin set-password --username NAME</code>{" "}
                on the device.
              </p>
            </SimplePage>,
            403,
          );
        }
        return <SetupPage csrfToken={issuePreauth(request, cookie)} token={query.token!} />;
      })
      .post(
        "/setup",
        async ({ request, cookie, body }) => {
          checkPreauth(request, cookie, body);
          const token = field(body, "token") ?? "";
          const password = field(body, "password") ?? "";
          const again = (error: string, status = 400) =>
            htmlResponse(<SetupPage csrfToken={issuePreauth(request, cookie)} token={token} error={error} />, status);
          if (password !== field(body, "confirm")) return again("the two passwords differ");
          try {
            const { token: sessionToken } = await core.admins.completeSetup(
              token,
              field(body, "username") ?? "",
              password,
              { remote: remoteOf(request), userAgent: request.headers.get("user-agent") ?? "" },
            );
            startSession(request, cookie, sessionToken);
            return redirect("/integrations");
          } catch (err) {
            if (err instanceof AppError) return again(err.message, err.code === "forbidden" ? 403 : 400);
            throw err;
          }
        },
        { body: formFields("token", "username", "password", "confirm") },
      )
  );
}
