import { Elysia, t } from "elysia";
import type { Core } from "../core/index.ts";
import { integrationTypes } from "../core/types.ts";
import { isHtmx, redirect } from "../lib/http.ts";
import { ActivityPage } from "../../views/pages/activity.tsx";
import { OnboardingPanel } from "../../views/partials/onboarding-panel.tsx";
import { adminOf, authOf } from "./auth.tsx";
import { formFields, noFields } from "../lib/bodies.ts";

/** list: a form field that may come once, several times, or not at all. */
function list(body: unknown, name: string): string[] {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === "string");
}

const filters = (text: string | undefined) =>
  text === undefined
    ? undefined
    : text
        .split(/[\s,]+/)
        .filter(Boolean)
        .slice(0, 100);

/** onboardingRoutes: the onboarding panel's actions, the Activity page, and their JSON API. */
export function onboardingRoutes(core: Core, retryNotes: (request: Request) => string[] = () => []) {
  const { onboarding, activity } = core;
  const by = (request: Request) => {
    const a = authOf(request);
    return a.kind === "session" ? `admin:${a.session.username}` : `token:${a.name}`;
  };
  const panel = (request: Request, message?: string) => (
    <OnboardingPanel
      status={onboarding.status()}
      requests={onboarding.list()}
      csrfToken={adminOf(request).csrfToken}
      now={Date.now()}
      message={message}
      retryNotes={retryNotes(request)}
    />
  );
  const approveForm = formFields("ids", "description", "publishAcl", "subscribeAcl");
  /** answer: htmx gets the panel in place; a browser without JS is sent back to the page (post/redirect/get). */
  const answer = (request: Request, message?: string) =>
    isHtmx(request) ? panel(request, message) : redirect("/integrations");

  return (
    new Elysia({ name: "onboarding-routes" })
      .get("/onboarding/panel", ({ request }) => panel(request))
      .post(
        "/onboarding/open",
        ({ request, body }) => {
          const minutes = Number((body as Record<string, unknown>)?.minutes ?? 10);
          onboarding.open({ minutes, types: list(body, "types"), by: by(request) });
          return answer(request, `Onboarding is open for ${minutes} minutes.`);
        },
        { body: formFields("minutes", "types") },
      )
      .post(
        "/onboarding/close",
        ({ request }) => {
          onboarding.close("closed");
          return answer(request, "Onboarding is closed.");
        },
        { body: formFields() },
      )
      .post(
        "/onboarding/approve",
        ({ request, body }) => {
          const ids = list(body, "ids").map(Number).filter(Number.isSafeInteger);
          if (ids.length === 0) return answer(request, "Select a request to approve.");
          const b = body as Record<string, string | undefined>;
          const { approved, failed } = onboarding.approve(ids, {
            description: b.description || undefined,
            publishAcl: filters(b.publishAcl),
            subscribeAcl: filters(b.subscribeAcl),
          });
          const message = [
            approved.length ? `Approved ${approved.map((i) => i.username).join(", ")}: its next retry gets in.` : "",
            ...failed.map((f) => f.message),
          ]
            .filter(Boolean)
            .join(" ");
          return answer(request, message);
        },
        { body: approveForm },
      )
      // Reject is a button inside the approve form (formaction / hx-post): it posts that form's fields.
      .post(
        "/onboarding/:id/reject",
        ({ request, params }) => {
          onboarding.reject(Number(params.id));
          return answer(request, "Rejected; that username is ignored until the window closes.");
        },
        { body: approveForm },
      )
      .get("/activity", ({ request, query }) => {
        const q = {
          action: query.action || undefined,
          actor: query.actor || undefined,
          q: query.q?.slice(0, 128) || undefined,
        };
        return <ActivityPage admin={adminOf(request)} rows={activity.list({ ...q, limit: 200 })} query={q} />;
      })
      .get("/api/v1/onboarding", () => ({ ...onboarding.status(), requests: onboarding.list() }), {
        detail: { summary: "The onboarding window and its pending requests", tags: ["onboarding"] },
      })
      .post(
        "/api/v1/onboarding/open",
        ({ request, body }) => onboarding.open({ minutes: body?.minutes, types: body?.types, by: by(request) }),
        {
          body: t.Optional(
            t.Object(
              {
                minutes: t.Optional(t.Integer({ minimum: 1, maximum: 60 })),
                types: t.Optional(t.Array(t.Union(integrationTypes.map((x) => t.Literal(x))))),
              },
              { additionalProperties: false },
            ),
          ),
          detail: {
            summary: "Open onboarding for 1-60 minutes (default 10), optionally for some types",
            tags: ["onboarding"],
          },
        },
      )
      .post("/api/v1/onboarding/close", () => (onboarding.close("closed"), onboarding.status()), {
        body: noFields,
        detail: { summary: "Close onboarding; pending requests are dropped", tags: ["onboarding"] },
      })
      .post(
        "/api/v1/onboarding/approve",
        ({ body, set }) => {
          const result = onboarding.approve(body.ids, body);
          if (result.approved.length === 0 && result.failed.length)
            set.status = result.failed.some((f) => /not found/.test(f.message)) ? 404 : 409;
          return result;
        },
        {
          body: t.Object(
            {
              ids: t.Array(t.Integer(), { minItems: 1, maxItems: 100 }),
              description: t.Optional(t.String({ maxLength: 1024 })),
              publishAcl: t.Optional(t.Array(t.String({ maxLength: 1024 }), { maxItems: 100 })),
              subscribeAcl: t.Optional(t.Array(t.String({ maxLength: 1024 }), { maxItems: 100 })),
            },
            { additionalProperties: false },
          ),
          detail: {
            summary: "Approve requests: each becomes an integration with the password its client presented",
            tags: ["onboarding"],
          },
        },
      )
      .post(
        "/api/v1/onboarding/:id/reject",
        ({ params, set }) => {
          onboarding.reject(Number(params.id));
          set.status = 204;
          return "";
        },
        {
          body: noFields,
          detail: {
            summary: "Reject a request; its username is ignored until the window closes",
            tags: ["onboarding"],
          },
        },
      )
      .get(
        "/api/v1/activity",
        ({ query }) => ({
          items: activity.list({
            action: query.action,
            actor: query.actor,
            q: query.q,
            before: query.before ? Number(query.before) : undefined,
            limit: query.limit ? Number(query.limit) : undefined,
          }),
        }),
        {
          query: t.Object({
            action: t.Optional(t.String({ maxLength: 64 })),
            actor: t.Optional(t.String({ maxLength: 200 })),
            q: t.Optional(t.String({ maxLength: 128 })),
            before: t.Optional(t.String({ pattern: "^[0-9]{1,12}$" })),
            limit: t.Optional(t.String({ pattern: "^[0-9]{1,3}$" })),
          }),
          detail: { summary: "Activity log, newest first (`before` = an id, for paging)", tags: ["activity"] },
        },
      )
  );
}
