import type { IntegrationType } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import { ConnectHelp, type HelpProps } from "../components/connect-help.tsx";
import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { typeLabels } from "../components/type-label.tsx";

export interface IntegrationFormProps {
  csrfToken: string;
  values: {
    type: IntegrationType;
    username: string;
    password: string;
    description: string;
    /** the username as the appliance suggested it, while the admin has not changed it */
    suggested?: string;
  };
  errors?: Record<string, string>;
  /** how a device of the chosen type connects, from that type's part */
  help?: HelpProps;
}

/**
 * IntegrationForm: pre-filled with a generated username and password, both editable. Changing the
 * type keeps what was typed; a still-generated username takes the new type's shape (VRPC ones are
 * `<domain>/<agent>`, so the agent started with them may announce itself), with JavaScript at once,
 * without it when saved (the untouched suggestion travels in `suggested`). Under the fields: what the
 * username means for this type, where devices connect, and a ready example. The fields have ids, so
 * htmx gives the focus back to the Type select after a type change swaps the form.
 */
export function IntegrationForm({ csrfToken, values, errors = {}, help }: IntegrationFormProps) {
  // the focus goes to the first field with an error, else to the Type select (htmx honours autofocus on a swap)
  const focus = (["username", "password", "description"] as const).find((f) => errors[f]) ?? "type";
  return (
    <form
      id="integration-form"
      class="card"
      method="post"
      action="/integrations"
      hx-post="/integrations"
      hx-target="#integration-form"
      hx-swap="outerHTML"
    >
      <h2>Add integration</h2>
      <CsrfField token={csrfToken} />
      {values.suggested ? <input type="hidden" name="suggested" value={attr(values.suggested)} /> : ""}
      <div class="grid">
        <label for="integration-type">
          Type
          <select
            id="integration-type"
            name="type"
            autofocus={focus === "type"}
            hx-post="/integrations/new"
            hx-target="#integration-form"
            hx-swap="outerHTML"
            hx-include="closest form"
            hx-trigger="change"
          >
            {(Object.keys(typeLabels) as IntegrationType[]).map((t) => (
              <option value={t} selected={t === values.type} safe>
                {typeLabels[t]}
              </option>
            ))}
          </select>
          <FieldError message={errors.type} />
        </label>
        <label for="integration-username">
          Username
          <input
            id="integration-username"
            name="username"
            autofocus={focus === "username"}
            value={attr(values.username)}
            required
            maxlength="128"
            pattern="[A-Za-z0-9._\-@\/:]{1,128}"
            autocomplete="off"
            aria-describedby={help ? "integration-username-hint" : undefined}
          />
          <FieldError message={errors.username} />
        </label>
        <label for="integration-password">
          Password
          <input
            id="integration-password"
            name="password"
            autofocus={focus === "password"}
            value={attr(values.password)}
            required
            minlength="8"
            maxlength="256"
            autocomplete="off"
            spellcheck="false"
          />
          <FieldError message={errors.password} />
        </label>
        <label for="integration-description">
          Description
          <input
            id="integration-description"
            name="description"
            autofocus={focus === "description"}
            value={attr(values.description)}
            maxlength="1024"
            placeholder="optional"
          />
          <FieldError message={errors.description} />
        </label>
      </div>
      {errors.form ? (
        <p class="field-error" role="alert" safe>
          {errors.form}
        </p>
      ) : (
        ""
      )}
      <div class="row-actions">
        <button type="submit">Save integration</button>
        <a href="/integrations" class="link cancel">
          Cancel
        </a>
      </div>
      {help ? (
        <details class="type-help" open>
          <summary safe>{`How a ${typeLabels[values.type]} device connects`}</summary>
          <ConnectHelp help={help} hintId="integration-username-hint" />
        </details>
      ) : (
        ""
      )}
    </form>
  );
}
