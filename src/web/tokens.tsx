import { Elysia } from "elysia";
import type { Core } from "../core/index.ts";
import { AppError, NotFoundError } from "../lib/errors.ts";
import { field, htmlResponse, redirect } from "../lib/http.ts";
import { TokensPage } from "../../views/pages/tokens.tsx";
import { ConfirmPage } from "../../views/pages/simple.tsx";
import { adminOf } from "./auth.tsx";
import { parseId } from "./integrations/index.ts";
import type { OneTimeSecrets } from "./once.tsx";
import { formFields } from "../lib/bodies.ts";

/** tokenPages: API tokens for automation; a token's secret is shown once. */
export function tokenPages(core: Core, secrets: OneTimeSecrets) {
  return new Elysia({ name: "token-pages" })
    .get("/settings/tokens", ({ request }) => (
      <TokensPage admin={adminOf(request)} tokens={core.admins.listApiTokens()} />
    ))
    .post(
      "/settings/tokens",
      ({ request, body }) => {
        try {
          const role = field(body, "role") === "read-only" ? "read-only" : "full";
          const { token, row } = core.admins.createApiToken(field(body, "name") ?? "", role);
          return secrets.answer(request, {
            title: "API token created",
            subject: row.name,
            label: "New token:",
            secret: token,
            back: { href: "/settings/tokens", text: "Back to API tokens" },
          });
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          return htmlResponse(
            <TokensPage admin={adminOf(request)} tokens={core.admins.listApiTokens()} error={err.message} />,
            400,
          );
        }
      },
      { body: formFields("name", "role") },
    )
    .post(
      "/settings/tokens/:id/delete",
      ({ request, params, body }) => {
        const id = parseId(params.id);
        if (field(body, "confirmed") !== "yes") {
          // without JavaScript there is no confirm() (app.js adds `confirmed=yes`): ask on a page naming it
          const token = core.admins.listApiTokens().find((t) => t.id === id);
          if (!token) throw new NotFoundError("API token");
          return (
            <ConfirmPage
              admin={adminOf(request)}
              title="Revoke API token?"
              subject={token.name}
              consequence="is revoked: scripts using it are refused at once."
              action={`/settings/tokens/${id}/delete`}
              button="Revoke"
              back="/settings/tokens"
            />
          );
        }
        core.admins.revokeApiToken(id);
        return redirect("/settings/tokens");
      },
      { body: formFields() },
    );
}
