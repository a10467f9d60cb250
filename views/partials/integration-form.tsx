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

/** VrpcUsernameHint: what each shape of a VRPC username does (core/permissions.ts decides by it). */
function VrpcUsernameHint() {
  return (
    <small id="vrpc-username-hint" class="hint muted">
      <code>&lt;domain&gt;/&lt;agent&gt;</code> (e.g. <code>plant/press-1</code>): an agent (edge connector) that
      announces itself as <code>&lt;agent&gt;</code> in <code>&lt;domain&gt;</code>, or a client of that domain; either
      reaches only <code>&lt;domain&gt;/…</code>. Start the agent with this domain and agent name. A name without{" "}
      <code>/</code> is a client: it announces no agent and reaches a VRPC domain only through a topic filter that names
      the domain.
    </small>
  );
}

/**
 * IntegrationForm: pre-filled with a generated username and password, both editable. Changing the
 * type keeps what was typed; a still-generated username takes the new type's shape (VRPC ones are
 * `<domain>/<agent>`, so the agent started with them may announce itself).
 */
export function IntegrationForm({ csrfToken, values, errors = {} }: IntegrationFormProps) {
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
      <div class="grid">
        <label>
          Type
          <select
            name="type"
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
        <label>
          Username
          <input
            name="username"
            value={attr(values.username)}
            required
            maxlength="128"
            pattern="[A-Za-z0-9._\-@\/:]{1,128}"
            autocomplete="off"
            aria-describedby={values.type === "vrpc" ? "vrpc-username-hint" : undefined}
          />
          <FieldError message={errors.username} />
          {values.type === "vrpc" ? <VrpcUsernameHint /> : ""}
        </label>
        <label>
          Password
          <input
            name="password"
            value={attr(values.password)}
            required
            minlength="8"
            maxlength="256"
            autocomplete="off"
            spellcheck="false"
          />
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
