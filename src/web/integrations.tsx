import { Elysia } from "elysia";
import { attr } from "../../views/components/attr.ts";
import type { Core } from "../core/index.ts";
import { integrationStatuses, integrationTypeInfo, integrationTypes, isIntegrationType, type Integration, type IntegrationStatus, type IntegrationType } from "../core/types.ts";
import { AppError, NotFoundError } from "../lib/errors.ts";
import { allowIdle, field, htmlResponse, isHtmx, redirect, safeNext } from "../lib/http.ts";
import { generatedName, randomPassword } from "../lib/ids.ts";
import type { IntegrationNote } from "../lib/pages.ts";
import { FieldError } from "../../views/components/field-error.tsx";
import { typeLabels } from "../../views/components/type-label.tsx";
import { listSorts, type ListSort } from "../core/types.ts";
import { pageSizes } from "../../views/partials/integration-table.tsx";
import { FailedLogins } from "../../views/partials/failed-logins.tsx";
import { Summary, type SummaryCounts } from "../../views/partials/summary.tsx";
import type { OneTimeSecrets } from "./once.tsx";
import { IntegrationsPage } from "../../views/pages/integrations.tsx";
import { SimplePage } from "../../views/pages/simple.tsx";
import { IntegrationCreated } from "../../views/partials/integration-created.tsx";
import { IntegrationForm, type IntegrationFormProps } from "../../views/partials/integration-form.tsx";
import { IntegrationRow, LastLoginCell, PermissionFields, StatusCell, type PermissionDraft, type RoleInfo, type RowProps } from "../../views/partials/integration-row.tsx";
import { IntegrationTable, type TableQuery } from "../../views/partials/integration-table.tsx";
import { OnboardingPanel } from "../../views/partials/onboarding-panel.tsx";
import { adminOf, authOf } from "./auth.tsx";
import { formFields } from "../lib/bodies.ts";


export function parseListQuery(query: Record<string, string | undefined>): TableQuery & { status?: IntegrationStatus; page: number; pageSize?: number } {
  const type = isIntegrationType(query.type) ? query.type : undefined;
  const status = (integrationStatuses as readonly string[]).includes(query.status ?? "") ? (query.status as IntegrationStatus) : undefined;
  const page = Number.parseInt(query.page ?? "1", 10);
  const sort = (listSorts as readonly string[]).includes(query.sort ?? "") ? (query.sort as ListSort) : undefined;
  const dir = query.dir === "asc" || query.dir === "desc" ? query.dir : undefined;
  const size = pageSizes.includes(Number(query.size)) ? Number(query.size) : undefined;
  return { q: query.q?.slice(0, 128) || undefined, type, status, page: Number.isFinite(page) && page > 0 ? page : 1, sort, dir, size, pageSize: size };
}

/**
 * listReturn: where a no-JS action goes back to: the list as the admin left it (filters, sort, page),
 * from the form's `back` field or the Referer; anything else is the plain list.
 */
export function listReturn(request: Request, body?: unknown): string {
  const candidates = [field(body, "back"), request.headers.get("referer") ?? undefined];
  for (const c of candidates) {
    if (!c) continue;
    try {
      const u = new URL(c, "http://x");
      if (u.pathname === "/integrations" && (u.host === "x" || u.host === new URL(request.url).host)) return safeNext(u.pathname + u.search);
    } catch {
      // not a URL: ignored
    }
  }
  return "/integrations";
}

/** BackField: carries the list's address through a no-JS confirmation or edit page. */
function BackField({ request }: { request: Request }) {
  return <input type="hidden" name="back" value={attr(listReturn(request))} />;
}

export function parseId(raw: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id <= 0) throw new NotFoundError("integration");
  return id;
}

/** how many failed logins the page lists (the README promises the last 200) */
const failedLoginsShown = 200;

/** typeList: "MQTT, OPC UA, HTTP or VRPC", from the one definition of the types. */
const typeList = ((labels: string[]) => `${labels.slice(0, -1).join(", ")} or ${labels.at(-1)}`)(integrationTypes.map((t) => integrationTypeInfo[t].label));

/** integrationPages: the admin page; each action answers htmx with one row, browsers with a page. */
export function integrationPages(core: Core, secrets: OneTimeSecrets, describe: (i: Integration) => IntegrationNote | undefined) {
  const { credentials, sessions } = core;
  const summaryCounts = (): SummaryCounts => {
    const byType = Object.fromEntries(Object.entries(credentials.countByType()).map(([t, total]) => [t, { total, online: 0 }])) as SummaryCounts["byType"];
    for (const id of sessions.onlineIds()) {
      const i = credentials.peek(id);
      if (i) byType[i.type].online++;
    }
    const recent = core.loginLog.recent(failedLoginsShown);
    const hourAgo = Date.now() - 3_600_000;
    const failedLastHour = recent.filter((f) => f.at >= hourAgo).length;
    return { byType, failedLastHour, capped: failedLastHour === failedLoginsShown };
  };
  const sessionsOf = (id: number) => sessions.list({ integrationId: id });
  /** roleOf: what the parts say of an integration (a VRPC agent's role, a refused announcement) */
  const roleOf = (i: Integration): RoleInfo | undefined => describe(i);

  const row = (request: Request, integration: Integration, extra: Omit<RowProps, "integration" | "sessions" | "csrfToken"> = {}) => (
    <IntegrationRow integration={integration} sessions={sessionsOf(integration.id)} csrfToken={adminOf(request).csrfToken} baseUrl={new URL(request.url).origin} role={roleOf(integration)} {...extra} />
  );

  /** listPage: the query as typed in the URL and the page of integrations it selects. */
  const listPage = (query: Record<string, string | undefined>) => {
    const q = parseListQuery(query);
    return { q, result: credentials.list(q, sessions.onlineIds()) };
  };

  const fullPage = (request: Request, query: Record<string, string | undefined>, panel?: JSX.Element, flash?: string) => {
    const { q, result } = listPage(query);
    return (
      <IntegrationsPage
        admin={adminOf(request)}
        rows={result.rows}
        total={result.total}
        page={result.page}
        pages={result.pages}
        query={q}
        sessionsOf={sessionsOf}
        csrfToken={adminOf(request).csrfToken}
        baseUrl={new URL(request.url).origin}
        roleOf={roleOf}
        failedLogins={core.loginLog.recent(failedLoginsShown)}
        summary={summaryCounts()}
        onboarding={<OnboardingPanel status={core.onboarding.status()} requests={core.onboarding.list()} csrfToken={adminOf(request).csrfToken} now={Date.now()} />}
        panel={panel}
        flash={flash}
      />
    );
  };

  /** the add form's fields (a type change posts the same form to /integrations/new) */
  const addForm = formFields("type", "username", "password", "description");
  const newFormValues = (type: IntegrationType): IntegrationFormProps["values"] => ({ type, username: credentials.suggestUsername(type), password: randomPassword(), description: "" });

  return new Elysia({ name: "integration-pages" })
    .get("/", () => redirect("/integrations", 302))
    .get("/integrations", ({ request, query }) => {
      if (isHtmx(request) && request.headers.get("hx-target") === "integration-table") {
        const { q, result } = listPage(query);
        return <IntegrationTable rows={result.rows} total={result.total} page={result.page} pages={result.pages} query={q} sessionsOf={sessionsOf} csrfToken={adminOf(request).csrfToken} baseUrl={new URL(request.url).origin} roleOf={roleOf} />;
      }
      return fullPage(request, query);
    })
    .get("/integrations/new", ({ request, query }) => {
      const type = isIntegrationType(query.type) ? query.type : integrationTypes[0];
      const form = <IntegrationForm csrfToken={adminOf(request).csrfToken} values={newFormValues(type)} />;
      return isHtmx(request) ? form : fullPage(request, {}, form);
    })
    .post("/integrations/new", ({ request, body }) => {
      // The type changed in the add form: what the admin typed stays; a still-generated username
      // takes the new type's shape (`mqtt-<words>`, VRPC `<domain>/<words>`; its words stay). A POST so a
      // typed password never lands in a URL.
      const type = isIntegrationType(field(body, "type")) ? (field(body, "type") as IntegrationType) : integrationTypes[0];
      const typed = field(body, "username") ?? "";
      const words = generatedName(typed);
      const reshaped = (suggested: string) => (words ? suggested.replace(/[a-z]+-[a-z]+-[a-z2-9]{4}$/, words) : suggested);
      const values = {
        type,
        username: words || !typed ? reshaped(credentials.suggestUsername(type)) : typed,
        password: field(body, "password") || randomPassword(),
        description: field(body, "description") ?? "",
      };
      return <IntegrationForm csrfToken={adminOf(request).csrfToken} values={values} />;
    }, { body: addForm })
    .post("/integrations", async ({ request, body }) => {
      const rawType = field(body, "type");
      const values = {
        type: (isIntegrationType(rawType) ? rawType : integrationTypes[0]) as IntegrationType,
        username: field(body, "username") ?? "",
        password: field(body, "password") ?? "",
        description: field(body, "description") ?? "",
      };
      try {
        if (!isIntegrationType(rawType)) throw new AppError("validation", "type", { type: `choose a type: ${typeList}` });
        const { integration, password } = await credentials.create(values);
        const created = <IntegrationCreated integration={integration} password={password} />;
        if (!isHtmx(request)) {
          // post/redirect/get: a reload of the answer cannot create or reveal anything twice
          return secrets.answer(request, {
            title: "Integration saved",
            subject: `${integration.username} (${typeLabels[integration.type]})`,
            label: "Password:",
            secret: password,
            back: { href: "/integrations", text: "Done" },
            more: { href: "/integrations/new", text: "Add another" },
          });
        }
        // The new row goes to the top of the table out of band; the form becomes the password panel.
        // Table parts cannot stand alone in HTML; htmx 2 takes OOB swaps out of a <template>.
        return htmlResponse(`${created}<template><tbody hx-swap-oob="afterbegin:#integration-rows">${row(request, integration)}</tbody></template>`, 201);
      } catch (err) {
        if (!(err instanceof AppError) || (err.code !== "validation" && err.code !== "conflict")) throw err;
        const form = <IntegrationForm csrfToken={adminOf(request).csrfToken} values={values} errors={Object.keys(err.fields).length ? err.fields : { form: err.message }} />;
        const status = err.code === "conflict" ? 409 : 400;
        return htmlResponse(isHtmx(request) ? form : await fullPage(request, {}, form), status);
      }
    }, { body: addForm })
    .get("/integrations/summary", () => <Summary counts={summaryCounts()} />)
    .get("/integrations/failed-logins", ({ query }) => <FailedLogins entries={core.loginLog.recent(failedLoginsShown)} open={query.open === "1"} />)
    .get("/integrations/live", ({ request, query }) => {
      // Out-of-band swaps of the status and last-login cells of the rows on screen.
      const ids = (query.ids ?? "").split(",").slice(0, 200).map(Number).filter((n) => Number.isSafeInteger(n) && n > 0);
      const csrfToken = adminOf(request).csrfToken;
      let out = "";
      for (const id of ids) {
        const i = credentials.get(id);
        if (!i) continue;
        out += `<template>${withOob(<StatusCell integration={i} sessions={sessionsOf(id)} csrfToken={csrfToken} /> as string)}${withOob(<LastLoginCell integration={i} /> as string)}</template>`;
      }
      return htmlResponse(out);
    })
    .post("/sessions/:id/disconnect", ({ request, params }) => {
      const session = sessions.list().find((s) => s.id === params.id);
      if (!session) throw new NotFoundError("session");
      sessions.kickSession(session.id);
      const integration = credentials.get(session.integrationId);
      return isHtmx(request) && integration ? row(request, integration) : redirect(listReturn(request));
    }, { body: formFields("back") })
    .get("/integrations/:id", ({ request, params }) => {
      const integration = credentials.get(parseId(params.id));
      if (!integration) throw new NotFoundError("integration");
      return isHtmx(request) ? row(request, integration) : redirect(`/integrations?q=${encodeURIComponent(integration.username)}`, 302);
    })
    .get("/integrations/:id/edit", ({ request, params }) => {
      const integration = credentials.get(parseId(params.id));
      if (!integration) throw new NotFoundError("integration");
      if (isHtmx(request)) return row(request, integration, { mode: "edit" });
      return <EditPage request={request} integration={integration} />;
    })
    .post("/integrations/:id", ({ request, params, body }) => {
      const id = parseId(params.id);
      const draft = {
        username: field(body, "username"),
        description: field(body, "description"),
        publishAcl: field(body, "publishAcl"),
        subscribeAcl: field(body, "subscribeAcl"),
        denyPublishAcl: field(body, "denyPublishAcl"),
        denySubscribeAcl: field(body, "denySubscribeAcl"),
      };
      try {
        const integration = credentials.update(id, {
          username: draft.username,
          description: draft.description,
          publishAcl: parseFilterList(draft.publishAcl),
          subscribeAcl: parseFilterList(draft.subscribeAcl),
          denyPublishAcl: parseFilterList(draft.denyPublishAcl),
          denySubscribeAcl: parseFilterList(draft.denySubscribeAcl),
        });
        return isHtmx(request) ? row(request, integration) : redirect(listReturn(request, body));
      } catch (err) {
        if (!(err instanceof AppError) || (err.code !== "validation" && err.code !== "conflict")) throw err;
        const integration = credentials.get(id)!;
        const status = err.code === "conflict" ? 409 : 400;
        const body_ = isHtmx(request)
          ? row(request, integration, { mode: "edit", errors: err.fields, draft })
          : <EditPage request={request} integration={integration} errors={err.fields} draft={draft} />;
        return htmlResponse(body_ as string, status);
      }
    }, { body: formFields("back", "username", "description", "publishAcl", "subscribeAcl", "denyPublishAcl", "denySubscribeAcl") })
    .post("/integrations/:id/toggle", ({ request, params }) => {
      const id = parseId(params.id);
      const current = credentials.get(id);
      if (!current) throw new NotFoundError("integration");
      const integration = credentials.setActive(id, !current.active);
      return isHtmx(request) ? row(request, integration) : redirect(listReturn(request));
    }, { body: formFields("back") })
    .post("/integrations/:id/reset-password", async ({ request, params, body }) => {
      if (!isHtmx(request) && field(body, "confirm") !== "yes") {
        // without JS there is no confirm(): the first POST only asks, naming the target
        const target = credentials.get(parseId(params.id));
        if (!target) throw new NotFoundError("integration");
        return (
          <SimplePage title="Reset password?" admin={adminOf(request)}>
            <p>
              <strong safe>{target.username}</strong> gets a new password; its connected clients are disconnected and the old password stops working.
            </p>
            <form method="post" action={`/integrations/${target.id}/reset-password`}>
              <input type="hidden" name="_csrf" value={adminOf(request).csrfToken} />
              <BackField request={request} />
              <input type="hidden" name="confirm" value="yes" />
              <button type="submit" class="danger">
                Reset password
              </button>{" "}
              <a href="/integrations">Cancel</a>
            </form>
          </SimplePage>
        );
      }
      const { integration, password } = await credentials.resetPassword(parseId(params.id));
      if (isHtmx(request)) return row(request, integration, { secret: password });
      return secrets.answer(request, {
        title: "Password reset",
        subject: integration.username,
        label: "New password:",
        secret: password,
        back: { href: listReturn(request, body), text: "Back to integrations" },
      });
    }, { body: formFields("back", "confirm") })
    .get("/integrations/:id/delete", ({ request, params }) => {
      const integration = credentials.get(parseId(params.id));
      if (!integration) throw new NotFoundError("integration");
      return (
        <SimplePage title="Delete integration?" admin={adminOf(request)}>
          <p>
            <strong safe>{integration.username}</strong> will be removed and its connected clients dropped at once.
          </p>
          <form method="post" action={`/integrations/${integration.id}/delete`}>
            <input type="hidden" name="_csrf" value={adminOf(request).csrfToken} />
            <BackField request={request} />
            <button type="submit" class="danger">
              Delete
            </button>{" "}
            <a href="/integrations">Cancel</a>
          </form>
        </SimplePage>
      );
    })
    .post("/integrations/:id/delete", ({ request, params, body }) => {
      credentials.remove(parseId(params.id));
      return isHtmx(request) ? htmlResponse("") : redirect(listReturn(request, body));
    }, { body: formFields("back") });
}

/** parseFilterList: topic filters typed space- or comma-separated; absent means unchanged. */
function parseFilterList(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : text.split(/[\s,]+/).filter(Boolean).slice(0, 100);
}

/** withOob: marks a rendered cell for an htmx out-of-band swap by its id. */
function withOob(cell: string): string {
  return cell.replace(/^<td /, '<td hx-swap-oob="true" ');
}

function EditPage({ request, integration, errors = {}, draft = {} }: { request: Request; integration: Integration; errors?: Record<string, string>; draft?: PermissionDraft & { username?: string; description?: string } }) {
  const admin = adminOf(request);
  return (
    <SimplePage title="Edit integration" admin={admin}>
      <form method="post" action={`/integrations/${integration.id}`} class="stack">
        <input type="hidden" name="_csrf" value={admin.csrfToken} />
        <BackField request={request} />
        <label>
          Username
          <input name="username" value={attr(draft.username ?? integration.username)} required maxlength="128" />
        </label>
        <FieldError message={errors.username} />
        <label>
          Description
          <input name="description" value={attr(draft.description ?? integration.description)} maxlength="1024" />
        </label>
        <FieldError message={errors.description} />
        <PermissionFields integration={integration} draft={draft} errors={errors} />
        <button type="submit">Save</button>
        <a href="/integrations">Cancel</a>
      </form>
    </SimplePage>
  );
}

/** how often /events sends a comment when nothing happens, and how long its connection may be silent */
const pingSeconds = 20;
const streamIdleSeconds = 3 * pingSeconds;

/**
 * eventStream: `/events`, server-sent events for the open pages: `changed` (debounced) whenever an
 * integration, a session, a failed login or onboarding changes; a comment every 20 s keeps the server's
 * idle timeout (60 s for this route: a stream whose comments stop going out is closed) and proxies
 * (nginx's proxy_read_timeout is 60 s) from closing it. The page decides what to reload.
 */
export function eventStream(core: Core) {
  return new Elysia({ name: "event-stream" }).get("/events", ({ request }) => {
    allowIdle(request, streamIdleSeconds);
    const encoder = new TextEncoder();
    let cleanup = () => {};
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const auth = authOf(request);
        const send = (text: string) => {
          // a signed-out, removed or expired admin's stream ends with its session
          if (auth.kind === "session" && !core.admins.resolveSession(auth.token)) {
            cleanup();
            try {
              controller.close();
            } catch {
              // already closed
            }
            return;
          }
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            cleanup();
          }
        };
        const changed = () => {
          if (timer) return;
          timer = setTimeout(() => {
            timer = undefined;
            send("event: changed\ndata: {}\n\n");
          }, 300);
        };
        const offs = (
          ["integration.created", "integration.updated", "integration.deleted", "integration.activated", "integration.deactivated", "session.opened", "session.closed", "login.failed", "onboarding.changed"] as const
        ).map((name) => core.events.on(name, changed));
        const ping = setInterval(() => send(": ping\n\n"), pingSeconds * 1000);
        send("retry: 2000\n\n");
        cleanup = () => {
          for (const off of offs) off();
          clearInterval(ping);
          if (timer) clearTimeout(timer);
          cleanup = () => {};
        };
        request.signal.addEventListener("abort", () => {
          cleanup();
          try {
            controller.close();
          } catch {
            // already closed
          }
        });
      },
      cancel() {
        cleanup();
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" } });
  });
}
