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
  const { row, fullPage } = view;
  /** the add form's fields (a type change posts the same form to /integrations/new) */
  const addForm = formFields("type", "username", "password", "description");
  const newFormValues = (type: IntegrationType): IntegrationFormProps["values"] => ({
    type,
    username: credentials.suggestUsername(type),
    password: randomPassword(),
    description: "",
  });
  return new Elysia({ name: "integration-add" })
    .get("/integrations/new", ({ request, query }) => {
      const type = isIntegrationType(query.type) ? query.type : integrationTypes[0];
      const form = <IntegrationForm csrfToken={adminOf(request).csrfToken} values={newFormValues(type)} />;
      return isHtmx(request) ? form : fullPage(request, {}, form);
    })
    .post(
      "/integrations/new",
      ({ request, body }) => {
        // The type changed in the add form: what the admin typed stays; a still-generated username
        // takes the new type's shape (`mqtt-<words>`, VRPC `<domain>/<words>`; its words stay). A POST so a
        // typed password never lands in a URL.
        const type = isIntegrationType(field(body, "type"))
          ? (field(body, "type") as IntegrationType)
          : integrationTypes[0];
        const typed = field(body, "username") ?? "";
        const words = generatedName(typed);
        const reshaped = (suggested: string) =>
          words ? suggested.replace(/[a-z]+-[a-z]+-[a-z2-9]{4}$/, words) : suggested;
        const values = {
          type,
          username: words || !typed ? reshaped(credentials.suggestUsername(type)) : typed,
          password: field(body, "password") || randomPassword(),
          description: field(body, "description") ?? "",
        };
        return <IntegrationForm csrfToken={adminOf(request).csrfToken} values={values} />;
      },
      { body: addForm },
    )
    .post(
      "/integrations",
      async ({ request, body }) => {
        const rawType = field(body, "type");
        const values = {
          type: (isIntegrationType(rawType) ? rawType : integrationTypes[0]) as IntegrationType,
          username: field(body, "username") ?? "",
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
          // The new row goes to the top of the table out of band; the form becomes the password panel.
          // Table parts cannot stand alone in HTML; htmx 2 takes OOB swaps out of a <template>.
          return htmlResponse(
            `${created}<template><tbody hx-swap-oob="afterbegin:#integration-rows">${row(request, integration)}</tbody></template>`,
            201,
          );
        } catch (err) {
          if (!(err instanceof AppError) || (err.code !== "validation" && err.code !== "conflict")) throw err;
          const form = (
            <IntegrationForm
              csrfToken={adminOf(request).csrfToken}
              values={values}
              errors={Object.keys(err.fields).length ? err.fields : { form: err.message }}
            />
          );
          const status = err.code === "conflict" ? 409 : 400;
          return htmlResponse(isHtmx(request) ? form : await fullPage(request, {}, form), status);
        }
      },
      { body: addForm },
    );
}
