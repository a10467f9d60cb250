import { Elysia } from "elysia";
import { renderSVG } from "uqr";
import type { Core } from "../core/index.ts";
import { AppError } from "../lib/errors.ts";
import { formFields } from "../lib/bodies.ts";
import { field, htmlResponse, redirect } from "../lib/http.ts";
import { SecondFactorPage } from "../../views/pages/second-factor.tsx";
import { adminOf } from "./auth.tsx";

const notices: Record<string, string> = {
  off: "Two-step sign-in is off.",
};

/**
 * secondFactorPages: the signed-in admin's own TOTP (read-only admins too: it is their own sign-in).
 * The QR code is an SVG made here from the otpauth URI (uqr), never an image fetched from elsewhere;
 * the key waits in memory until the first code from the app confirms it.
 */
export function secondFactorPages(core: Core) {
  const page = (
    request: Request,
    extra: { errors?: Record<string, string>; recoveryCodes?: string[]; done?: string } = {},
  ) => {
    const admin = adminOf(request);
    const state = core.admins.secondFactor(admin.username);
    const e = state.enabled ? undefined : core.admins.enrolment(admin.username);
    return (
      <SecondFactorPage
        admin={admin}
        enabled={state.enabled}
        recoveryLeft={state.recoveryLeft}
        enrolment={e && { secret: e.secret, svg: renderSVG(e.uri, { border: 2 }) }}
        {...extra}
      />
    );
  };
  return new Elysia({ name: "second-factor-pages" })
    .get("/settings/2fa", ({ request, query }) => page(request, { done: notices[query.done ?? ""] }))
    .post(
      "/settings/2fa/start",
      ({ request }) => {
        try {
          core.admins.startEnrolment(adminOf(request).username);
        } catch (err) {
          if (!(err instanceof AppError) || err.code !== "conflict") throw err;
        }
        return redirect("/settings/2fa");
      },
      { body: formFields() },
    )
    .post(
      "/settings/2fa/confirm",
      ({ request, body }) => {
        const me = adminOf(request).username;
        let codes: string[];
        try {
          codes = core.admins.confirmEnrolment(me, field(body, "code") ?? "");
        } catch (err) {
          if (!(err instanceof AppError) || err.code === "not_found") throw err;
          return htmlResponse(page(request, { errors: err.fields }), 400);
        }
        core.activity.record("admin.2fa-on", me, "an authenticator app was set up on the page");
        // Shown on this answer only (no-store): a reload asks to post again and gets "already on".
        return htmlResponse(page(request, { recoveryCodes: codes, done: "Two-step sign-in is on." }), 200);
      },
      { body: formFields("code") },
    )
    .post(
      "/settings/2fa/disable",
      ({ request, body }) => {
        const me = adminOf(request).username;
        try {
          core.admins.disableSecondFactor(me, field(body, "code") ?? "");
        } catch (err) {
          if (!(err instanceof AppError) || err.code === "not_found") throw err;
          return htmlResponse(page(request, { errors: err.fields }), 400);
        }
        core.activity.record("admin.2fa-off", me, "turned off on the page");
        return redirect("/settings/2fa?done=off");
      },
      { body: formFields("code") },
    );
}
