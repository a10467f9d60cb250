import type { SessionInfo } from "../../src/core/sessions.ts";
import type { Integration, Traffic } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import type { HelpProps } from "../components/connect-help.tsx";
import { FieldError } from "../components/field-error.tsx";
import { typeLabels } from "../components/type-label.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";
import {
  IntegrationDetail,
  PermissionFields,
  StatusBadge,
  type PermissionDraft,
  type RoleInfo,
} from "../partials/integration-row.tsx";
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
        <div class="row-actions">
          <button type="submit">Save</button>
          <a href={attr(back)}>Cancel</a>
        </div>
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
        <div class="row-actions">
          <button type="submit" class="danger" safe>
            {button}
          </button>
          <a href={attr(back)}>Cancel</a>
        </div>
      </form>
    </SimplePage>
  );
}

/**
 * IntegrationPage: one integration on a page of its own: what its row's detail shows (permissions, last
 * login, live sessions with Disconnect, how a device connects), with its actions as plain forms.
 */
export function IntegrationPage({
  admin,
  integration: i,
  sessions,
  traffic,
  help,
  role,
  back,
}: {
  admin: LayoutAdmin;
  integration: Integration;
  sessions: SessionInfo[];
  /** what its sessions moved since the appliance started */
  traffic?: Traffic;
  help?: HelpProps;
  role?: RoleInfo;
  back: string;
}) {
  return (
    <Layout title={i.username} admin={admin} active="/integrations">
      <div class="page-head">
        <h1>
          <span safe>{i.username}</span>{" "}
          <span class="muted" safe>
            {typeLabels[i.type]}
          </span>{" "}
          <StatusBadge active={i.active} online={sessions.length} />
        </h1>
      </div>
      <div class="row-actions card">
        <a href={`/integrations/${i.id}/edit`}>Edit</a>
        <form method="post" action={`/integrations/${i.id}/toggle`} class="inline">
          <input type="hidden" name="_csrf" value={admin.csrfToken} />
          <BackField back={back} />
          <button type="submit" class="link">
            {i.active ? "Deactivate" : "Activate"}
          </button>
        </form>
        <form method="post" action={`/integrations/${i.id}/reset-password`} class="inline">
          <input type="hidden" name="_csrf" value={admin.csrfToken} />
          <BackField back={back} />
          <button type="submit" class="link">
            Reset password
          </button>
        </form>
        <a href={`/integrations/${i.id}/delete`} class="danger">
          Delete
        </a>
        <a href={attr(back)}>Back to integrations</a>
      </div>
      <section class="card">
        <IntegrationDetail
          integration={i}
          sessions={sessions}
          traffic={traffic}
          csrfToken={admin.csrfToken}
          help={help}
          role={role}
        />
      </section>
    </Layout>
  );
}
