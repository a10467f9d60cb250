import type { Integration } from "../../src/core/types.ts";
import { Secret } from "../components/secret.tsx";
import { typeLabels } from "../components/type-label.tsx";

/** IntegrationCreated: replaces the form after saving; the password is shown here and never again. */
export function IntegrationCreated({ integration, password }: { integration: Integration; password: string }) {
  return (
    <section id="integration-form" class="card created">
      <h2>Integration saved</h2>
      <p>
        <strong safe>{integration.username}</strong>{" "}
        <span class="muted" safe>
          ({typeLabels[integration.type]})
        </span>
      </p>
      <Secret label="Password:" value={password} autofocus />
      <p>
        <a href="/integrations/new" hx-get="/integrations/new" hx-target="#integration-form" hx-swap="outerHTML">
          Add another
        </a>{" "}
        ·{" "}
        <a href="/integrations" class="cancel">
          Done
        </a>
      </p>
    </section>
  );
}
