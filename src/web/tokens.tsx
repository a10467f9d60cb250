import { Elysia } from "elysia";
import type { Core } from "../core/index.ts";
import { AppError } from "../lib/errors.ts";
import { field, htmlResponse, redirect } from "../lib/http.ts";
import { TokensPage } from "../../views/pages/tokens.tsx";
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
          const { token, row } = core.admins.createApiToken(field(body, "name") ?? "");
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
      { body: formFields("name") },
    )
    .post(
      "/settings/tokens/:id/delete",
      ({ params }) => {
        core.admins.revokeApiToken(parseId(params.id));
        return redirect("/settings/tokens");
      },
      { body: formFields() },
    );
}
