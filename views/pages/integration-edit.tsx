import type { Integration } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import { FieldError } from "../components/field-error.tsx";
import type { LayoutAdmin } from "../layouts/base.tsx";
import { PermissionFields, type PermissionDraft } from "../partials/integration-row.tsx";
import { SimplePage } from "./simple.tsx";

/** BackField: carries the list's address (filters, order, page) through a no-JS confirmation or edit page. */
export function BackField({ back }: { back: string }) {
  return <input type="hidden" name="back" value={attr(back)} />;
}

/** EditPage: an integration's name, description and permissions as a page of its own (no JavaScript). */
export function EditPage({
  admin,
  integration,
  back,
  errors = {},
  draft = {},
}: {
  admin: LayoutAdmin;
  integration: Integration;
  back: string;
  errors?: Record<string, string>;
  draft?: PermissionDraft & { username?: string; description?: string };
}) {
  return (
    <SimplePage title="Edit integration" admin={admin}>
      <form method="post" action={`/integrations/${integration.id}`} class="stack">
        <input type="hidden" name="_csrf" value={admin.csrfToken} />
        <BackField back={back} />
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

/**
 * ConfirmIntegrationPage: without JavaScript there is no confirm(): a destructive action first asks on a
 * page that names its target, then posts again with `confirm=yes`.
 */
export function ConfirmIntegrationPage({
  admin,
  title,
  username,
  consequence,
  action,
  button,
  back,
}: {
  admin: LayoutAdmin;
  title: string;
  username: string;
  /** what happens, after the name ("gets a new password; ...") */
  consequence: string;
  action: string;
  button: string;
  back: string;
}) {
  return (
    <SimplePage title={title} admin={admin}>
      <p>
        <strong safe>{username}</strong> <span safe>{consequence}</span>
      </p>
      <form method="post" action={action}>
        <input type="hidden" name="_csrf" value={admin.csrfToken} />
        <BackField back={back} />
        <input type="hidden" name="confirm" value="yes" />
        <button type="submit" class="danger" safe>
          {button}
        </button>{" "}
        <a href="/integrations">Cancel</a>
      </form>
    </SimplePage>
  );
}
