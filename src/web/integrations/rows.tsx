import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import { formFields } from "../../lib/bodies.ts";
import { AppError, NotFoundError } from "../../lib/errors.ts";
import { field, htmlResponse, isHtmx, redirect } from "../../lib/http.ts";
import { ConfirmIntegrationPage, EditPage, IntegrationPage } from "../../../views/pages/integration-edit.tsx";
import { DisconnectedNotice, DisconnectedPage } from "../../../views/partials/disconnected.tsx";
import { adminOf } from "../auth.tsx";
import type { OneTimeSecrets } from "../once.tsx";
import { listReturn, parseFilterList, parseId } from "./query.ts";
import type { ListView } from "./view.tsx";

/** rowRoutes: one integration's row: show, edit, save, activate or deactivate, reset its password, delete; disconnect a session. */
export function rowRoutes(core: Core, view: ListView, secrets: OneTimeSecrets) {
  const { credentials, sessions } = core;
  const { row, helpFor, roleOf, sessionsOf } = view;
  /** open: the row's detail was open when the action was sent (its forms carry `detail=1`) */
  const open = (body: unknown) => field(body, "detail") === "1";
  return new Elysia({ name: "integration-rows" })
    .post(
      "/sessions/:id/disconnect",
      ({ request, params }) => {
        const session = sessions.list().find((s) => s.id === params.id);
        if (!session) throw new NotFoundError("session");
        sessions.kickSession(session.id);
        const integration = credentials.get(session.integrationId);
        // the client may come back at once: the answer says so and offers Deactivate or Ban; the
        // Disconnect buttons are in an integration's detail, so its row comes back open
        const csrfToken = adminOf(request).csrfToken;
        if (isHtmx(request) && integration) {
          const notice = <DisconnectedNotice session={session} integration={integration} csrfToken={csrfToken} />;
          // in a <template>: the answer starts with a <tr>, and forms parsed in a table context lose their fields
          return `${row(request, integration, { open: true })}<template><div id="panel" hx-swap-oob="innerHTML">${notice}</div></template>`;
        }
        return (
          <DisconnectedPage
            admin={adminOf(request)}
            session={session}
            integration={integration}
            csrfToken={csrfToken}
          />
        );
      },
      { body: formFields("back", "detail") },
    )
    .get("/integrations/:id", ({ request, params, query }) => {
      const integration = credentials.get(parseId(params.id));
      if (!integration) throw new NotFoundError("integration");
      if (isHtmx(request)) return row(request, integration, { open: query.detail === "1" });
      return (
        <IntegrationPage
          admin={adminOf(request)}
          integration={integration}
          sessions={sessionsOf(integration.id)}
          traffic={core.sessions.trafficOf(integration.id)}
          help={helpFor(request, integration.type, integration.username)}
          role={roleOf(integration)}
          back={listReturn(request)}
        />
      );
    })
    .get("/integrations/:id/edit", ({ request, params }) => {
      const integration = credentials.get(parseId(params.id));
      if (!integration) throw new NotFoundError("integration");
      if (isHtmx(request)) return row(request, integration, { mode: "edit" });
      return <EditPage admin={adminOf(request)} integration={integration} back={listReturn(request)} />;
    })
    .post(
      "/integrations/:id",
      ({ request, params, body }) => {
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
          const body_ = isHtmx(request) ? (
            row(request, integration, { mode: "edit", errors: err.fields, draft })
          ) : (
            <EditPage
              admin={adminOf(request)}
              integration={integration}
              back={listReturn(request, body)}
              errors={err.fields}
              draft={draft}
            />
          );
          return htmlResponse(body_ as string, status);
        }
      },
      {
        body: formFields(
          "back",
          "username",
          "description",
          "publishAcl",
          "subscribeAcl",
          "denyPublishAcl",
          "denySubscribeAcl",
        ),
      },
    )
    .post(
      "/integrations/:id/toggle",
      ({ request, params, body }) => {
        const id = parseId(params.id);
        const current = credentials.get(id);
        if (!current) throw new NotFoundError("integration");
        const integration = credentials.setActive(id, !current.active);
        if (isHtmx(request)) return row(request, integration, { open: open(body) });
        return redirect(listReturn(request, body));
      },
      { body: formFields("back", "detail") },
    )
    .post(
      "/integrations/:id/reset-password",
      async ({ request, params, body }) => {
        if (!isHtmx(request) && field(body, "confirm") !== "yes") {
          // without JS there is no confirm(): the first POST only asks, naming the target
          const target = credentials.get(parseId(params.id));
          if (!target) throw new NotFoundError("integration");
          return (
            <ConfirmIntegrationPage
              admin={adminOf(request)}
              title="Reset password?"
              username={target.username}
              consequence="gets a new password; its connected clients are disconnected and the old password stops working."
              action={`/integrations/${target.id}/reset-password`}
              button="Reset password"
              back={listReturn(request)}
            />
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
      },
      { body: formFields("back", "confirm") },
    )
    .get("/integrations/:id/delete", ({ request, params }) => {
      const integration = credentials.get(parseId(params.id));
      if (!integration) throw new NotFoundError("integration");
      return (
        <ConfirmIntegrationPage
          admin={adminOf(request)}
          title="Delete integration?"
          username={integration.username}
          consequence="will be removed and its connected clients dropped at once."
          action={`/integrations/${integration.id}/delete`}
          button="Delete"
          back={listReturn(request)}
        />
      );
    })
    .post(
      "/integrations/:id/delete",
      ({ request, params, body }) => {
        credentials.remove(parseId(params.id));
        return isHtmx(request) ? htmlResponse("") : redirect(listReturn(request, body));
      },
      { body: formFields("back", "confirm") },
    );
}
