import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import { integrationTypes, isIntegrationType, type IntegrationType } from "../../core/types.ts";
import { formFields } from "../../lib/bodies.ts";
import { AppError } from "../../lib/errors.ts";
import { field, htmlResponse, isHtmx } from "../../lib/http.ts";
import { generatedName, randomPassword } from "../../lib/ids.ts";
import { typeLabels } from "../../../views/components/type-label.tsx";
import { IntegrationCreated } from "../../../views/partials/integration-created.tsx";
import { IntegrationForm, type IntegrationFormProps } from "../../../views/partials/integration-form.tsx";
import { adminOf } from "../auth.tsx";
import type { OneTimeSecrets } from "../once.tsx";
import { typeList } from "./query.ts";
import type { ListView } from "./view.tsx";

/** addRoutes: the add form (its type switch keeps what was typed) and the creation, whose password shows once. */
export function addRoutes(core: Core, view: ListView, secrets: OneTimeSecrets) {
  const { credentials } = core;
  const { row, fullPage, helpFor } = view;
  /** the add form's fields (a type change posts the same form to /integrations/new) */
  const addForm = formFields("type", "username", "password", "description", "suggested");
  /**
   * usernameFor: what the username field holds for `type`: what the admin typed stays; a name the
   * appliance suggested and nobody changed takes the new type's shape (`mqtt-<words>`, VRPC
   * `<domain>/<words>`; its words stay).
   */
  const usernameFor = (type: IntegrationType, typed: string, suggested: string | undefined) => {
    const words = generatedName(typed);
    const untouched = !typed || typed === suggested || (suggested === undefined && words !== undefined);
    if (!untouched) return typed;
    const fresh = credentials.suggestUsername(type);
    return words ? fresh.replace(/[a-z]+-[a-z]+-[a-z2-9]{4}$/, words) : fresh;
  };
  const form = (request: Request, values: IntegrationFormProps["values"], errors?: Record<string, string>) => (
    <IntegrationForm
      csrfToken={adminOf(request).csrfToken}
      values={values}
      errors={errors}
      help={helpFor(request, values.type, values.username)}
    />
  );
  return new Elysia({ name: "integration-add" })
    .get("/integrations/new", ({ request, query }) => {
      const type = isIntegrationType(query.type) ? query.type : integrationTypes[0];
      const username = credentials.suggestUsername(type);
      const values = { type, username, suggested: username, password: randomPassword(), description: "" };
      return isHtmx(request) ? form(request, values) : fullPage(request, {}, form(request, values));
    })
    .post(
      "/integrations/new",
      ({ request, body }) => {
        // The type changed in the add form (a POST so a typed password never lands in a URL).
        const type = isIntegrationType(field(body, "type"))
          ? (field(body, "type") as IntegrationType)
          : integrationTypes[0];
        const typed = field(body, "username") ?? "";
        const username = usernameFor(type, typed, field(body, "suggested"));
        const values = {
          type,
          username,
          suggested: username !== typed || typed === field(body, "suggested") ? username : undefined,
          password: field(body, "password") || randomPassword(),
          description: field(body, "description") ?? "",
        };
        return isHtmx(request) ? form(request, values) : fullPage(request, {}, form(request, values));
      },
      { body: addForm },
    )
    .post(
      "/integrations",
      async ({ request, body }) => {
        const rawType = field(body, "type");
        const type = (isIntegrationType(rawType) ? rawType : integrationTypes[0]) as IntegrationType;
        const typed = field(body, "username") ?? "";
        const suggested = field(body, "suggested");
        // Without JavaScript the type select changes nothing until the form is sent: an untouched
        // suggestion (`mqtt-brave-otter-7f3k`) is given the chosen type's shape here.
        const values = {
          type,
          username: suggested !== undefined && typed === suggested ? usernameFor(type, typed, suggested) : typed,
          password: field(body, "password") ?? "",
          description: field(body, "description") ?? "",
        };
        try {
          if (!isIntegrationType(rawType))
            throw new AppError("validation", "type", { type: `choose a type: ${typeList}` });
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
          // The new row goes to the top of the table out of band (after its head; the table element
          // carries it: htmx inserts the children of an out-of-band element). Table parts cannot
          // stand alone in HTML; htmx 2 takes OOB swaps out of a <template>.
          return htmlResponse(
            `${created}<template><table hx-swap-oob="afterend:#integration-head">${row(request, integration)}</table></template>`,
            201,
          );
        } catch (err) {
          if (!(err instanceof AppError) || (err.code !== "validation" && err.code !== "conflict")) throw err;
          const again = form(
            request,
            { ...values, suggested: values.username === typed ? suggested : values.username },
            Object.keys(err.fields).length ? err.fields : { form: err.message },
          );
          const status = err.code === "conflict" ? 409 : 400;
          return htmlResponse(isHtmx(request) ? again : await fullPage(request, {}, again), status);
        }
      },
      { body: addForm },
    );
}
