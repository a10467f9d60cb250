import type { ApiTokenRow } from "../../src/core/admins.ts";
import { CsrfField } from "../components/csrf.tsx";
import { PostButton } from "../components/post-button.tsx";
import { FieldError } from "../components/field-error.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

export interface TokensPageProps {
  admin: LayoutAdmin;
  tokens: ApiTokenRow[];
  error?: string;
}

export function TokensPage({ admin, tokens, error }: TokensPageProps) {
  // A read-only admin sees which tokens exist, not even their first characters, and no forms.
  const full = !admin.readOnly;
  return (
    <Layout title="API tokens" admin={admin} active="/settings/tokens">
      <h1>API tokens</h1>
      <p class="muted">
        For scripts and automation: send <code>Authorization: Bearer &lt;token&gt;</code> to <code>/api/v1</code>. The
        OpenAPI document is at <a href="/api/v1/openapi/json">/api/v1/openapi/json</a>.
      </p>
      {full ? (
        <form method="post" action="/settings/tokens" class="card inline-form">
          <CsrfField token={admin.csrfToken} />
          <label>
            Name <input name="name" required maxlength="64" placeholder="e.g. provisioning script" />
          </label>
          <label>
            Access{" "}
            <select name="role">
              <option value="full">Full: reads and changes</option>
              <option value="read-only">Read-only: monitoring, /metrics</option>
            </select>
          </label>
          <button type="submit">Create token</button>
          <FieldError message={error} />
        </form>
      ) : (
        ""
      )}
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Token</th>
            <th>Access</th>
            <th>Created</th>
            <th>Last used</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {tokens.length === 0 ? (
            <tr>
              <td colspan="6" class="muted">
                No API tokens yet. Create one above for a provisioning script (full) or Prometheus (read-only); it is
                shown once.
              </td>
            </tr>
          ) : (
            ""
          )}
          {tokens.map((t) => (
            <tr>
              <td safe>{t.name}</td>
              <td>{full ? <code safe>{`${t.prefix}…`}</code> : <span class="muted">hidden</span>}</td>
              <td>{t.role === "full" ? "full" : "read-only"}</td>
              <td>
                <LocalTime at={t.createdAt} />
              </td>
              <td>
                <LocalTime at={t.lastUsedAt} />
              </td>
              <td>
                {full ? (
                  <PostButton
                    action={`/settings/tokens/${t.id}/delete`}
                    csrfToken={admin.csrfToken}
                    confirm={`Revoke the API token "${t.name}"? Scripts using it are refused at once.`}
                  >
                    Revoke
                  </PostButton>
                ) : (
                  ""
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  );
}
