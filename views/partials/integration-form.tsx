import type { IntegrationType } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { typeLabels } from "../components/type-label.tsx";

export interface IntegrationFormProps {
  csrfToken: string;
  values: { type: IntegrationType; username: string; password: string; description: string };
  errors?: Record<string, string>;
}

/**
 * IntegrationForm: pre-filled with a generated username and password, both editable. Changing the
 * type keeps what was typed; a still-generated username takes the new type's prefix.
 */
export function IntegrationForm({ csrfToken, values, errors = {} }: IntegrationFormProps) {
  return (
    <form id="integration-form" class="card" method="post" action="/integrations" hx-post="/integrations" hx-target="#integration-form" hx-swap="outerHTML">
      <h2>Add integration</h2>
      <CsrfField token={csrfToken} />
      <div class="grid">
        <label>
          Type
          <select name="type" hx-post="/integrations/new" hx-target="#integration-form" hx-swap="outerHTML" hx-include="closest form" hx-trigger="change">
            {(Object.keys(typeLabels) as IntegrationType[]).map((t) => (
              <option value={t} selected={t === values.type} safe>
                {typeLabels[t]}
              </option>
            ))}
          </select>
          <FieldError message={errors.type} />
        </label>
        <label>
          Username
          <input name="username" value={attr(values.username)} required maxlength="128" pattern="[A-Za-z0-9._\-@\/:]{1,128}" autocomplete="off" />
          <FieldError message={errors.username} />
        </label>
        <label>
          Password
          <input name="password" value={attr(values.password)} required minlength="8" maxlength="256" autocomplete="off" spellcheck="false" />
          <FieldError message={errors.password} />
        </label>
        <label>
          Description
          <input name="description" value={attr(values.description)} maxlength="1024" placeholder="optional" />
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
      <button type="submit">Save integration</button>{" "}
      <a href="/integrations" class="link">
        Cancel
      </a>
    </form>
  );
}
