import type { SessionInfo } from "../../src/core/sessions.ts";
import { attr } from "../components/attr.ts";
import type { Integration } from "../../src/core/types.ts";
import { typeLabels } from "../components/type-label.tsx";
import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { Secret } from "../components/secret.tsx";

export interface RowProps {
  integration: Integration;
  /** live sessions of this integration */
  sessions: SessionInfo[];
  csrfToken: string;
  /** a new password to show once (after a reset) */
  secret?: string;
  mode?: "view" | "edit";
  errors?: Record<string, string>;
  /** the appliance's URL as the admin reaches it, for the HTTP integrations' curl examples */
  baseUrl?: string;
  /** what a VRPC integration is seen as, and a refused announcement of it */
  role?: RoleInfo;
  /** values typed into the edit form, when re-shown with errors */
  draft?: PermissionDraft & { username?: string; description?: string };
}

/** RoleInfo: "Agent (Edge Connector), online" once a VRPC integration's agent announced itself, else "Client"; `warning` says why an announcement was refused. */
export interface RoleInfo {
  text?: string;
  warning?: string;
}

/** PermissionDraft: the four filter lists as typed in a form (space or comma separated). */
export interface PermissionDraft {
  publishAcl?: string;
  subscribeAcl?: string;
  denyPublishAcl?: string;
  denySubscribeAcl?: string;
}

const permissionFields = [
  ["publishAcl", "May publish to (topic filters, space separated)"],
  ["subscribeAcl", "May subscribe to"],
  ["denyPublishAcl", "Never publish to (a deny wins)"],
  ["denySubscribeAcl", "Never receive"],
] as const;

/** PermissionFields: the four topic filter lists of an integration, for the row editor and the edit page. */
export function PermissionFields({
  integration: i,
  draft = {},
  errors = {},
}: {
  integration: Integration;
  draft?: PermissionDraft;
  errors?: Record<string, string>;
}) {
  return (
    <>
      {permissionFields.map(([name, label]) => (
        <>
          <label class="acl">
            <span>{label}</span>
            <input name={name} value={attr(draft[name] ?? aclText(i[name]))} maxlength="4096" />
          </label>
          <FieldError message={errors[name]} />
        </>
      ))}
    </>
  );
}

export function StatusBadge({ active, online }: { active: boolean; online: number }) {
  if (!active) return <span class="badge deactivated">deactivated</span>;
  if (online > 0) return <span class="badge online">online{online > 1 ? ` (${online})` : ""}</span>;
  return <span class="badge offline">offline</span>;
}

/** StatusCell: badge plus, when online, the live sessions with a disconnect button each. */
export function StatusCell({
  integration: i,
  sessions,
  csrfToken,
  oob,
}: {
  integration: Integration;
  sessions: SessionInfo[];
  csrfToken: string;
  oob?: boolean;
}) {
  return (
    <td id={`status-${i.id}`} class="status" hx-swap-oob={oob ? "true" : undefined}>
      {i.active && sessions.length > 0 ? (
        <details>
          <summary>
            <StatusBadge active={i.active} online={sessions.length} />{" "}
            <span class="sessions-toggle" safe>{`${sessions.length} session${sessions.length === 1 ? "" : "s"}`}</span>
          </summary>
          <ul class="sessions">
            {sessions.map((s) => (
              <li>
                <code safe>{s.clientId ?? "(no client id)"}</code>{" "}
                <span
                  class="muted"
                  safe
                >{`${s.protocol ?? s.type} from ${s.remote ?? "?"}${s.requests !== undefined ? `, ${s.requests} request${s.requests === 1 ? "" : "s"}` : ""}`}</span>{" "}
                <span class="muted">
                  since <LocalTime at={s.openedAt} />
                </span>{" "}
                <form
                  method="post"
                  action={`/sessions/${s.id}/disconnect`}
                  class="inline"
                  hx-post={`/sessions/${s.id}/disconnect`}
                  hx-target={`#integration-${i.id}`}
                  hx-swap="outerHTML"
                >
                  <input type="hidden" name="_csrf" value={csrfToken} />
                  <button type="submit" class="link danger">
                    Disconnect
                  </button>
                </form>
              </li>
            ))}
          </ul>
        </details>
      ) : (
        <StatusBadge active={i.active} online={sessions.length} />
      )}
    </td>
  );
}

export function LastLoginCell({ integration: i, oob }: { integration: Integration; oob?: boolean }) {
  return (
    <td id={`last-login-${i.id}`} hx-swap-oob={oob ? "true" : undefined}>
      <LocalTime at={i.lastLoginAt} />
    </td>
  );
}

const aclText = (acl: string[]) => acl.join(" ");

/** CurlExamples: how an HTTP integration's device sends and reads data, ready to copy. */
export function CurlExamples({ username, baseUrl }: { username: string; baseUrl: string }) {
  const user = `'${username.replaceAll("'", "'\\''")}:PASSWORD'`;
  return (
    <details class="curl">
      <summary>curl examples</summary>
      <pre
        safe
      >{`curl -u ${user} -H 'content-type: application/json' \\\n  -d '{"value":21.5}' '${baseUrl}/api/v1/data/plant/line1/temp?retain=true'`}</pre>
      <pre safe>{`curl -u ${user} '${baseUrl}/api/v1/data/plant/line1/temp'`}</pre>
      <pre safe>{`curl -u ${user} '${baseUrl}/api/v1/data/plant/line1/setpoint?wait=30'`}</pre>
    </details>
  );
}

/** IntegrationRow: one table row; every htmx action on it swaps this row only. */
export function IntegrationRow({
  integration: i,
  sessions,
  csrfToken,
  secret,
  mode = "view",
  errors = {},
  draft = {},
  baseUrl,
  role,
}: RowProps) {
  const rowId = `integration-${i.id}`;
  if (mode === "edit") {
    return (
      <tr id={rowId} class="editing">
        <td>
          <label class="sr-only" for={`${rowId}-username`}>
            Username
          </label>
          <input
            id={`${rowId}-username`}
            name="username"
            value={attr(draft.username ?? i.username)}
            required
            maxlength="128"
            pattern="[A-Za-z0-9._\-@\/:]{1,128}"
          />
          <FieldError message={errors.username} />
        </td>
        <td safe>{typeLabels[i.type]}</td>
        <td colspan="4">
          <label class="sr-only" for={`${rowId}-description`}>
            Description
          </label>
          <input
            id={`${rowId}-description`}
            name="description"
            value={attr(draft.description ?? i.description)}
            maxlength="1024"
            placeholder="Description"
          />
          <FieldError message={errors.description} />
          <PermissionFields integration={i} draft={draft} errors={errors} />
        </td>
        <td class="actions">
          <input type="hidden" name="_csrf" value={csrfToken} />
          <button
            type="button"
            class="save"
            hx-post={`/integrations/${i.id}`}
            hx-include="closest tr"
            hx-target="closest tr"
            hx-swap="outerHTML"
          >
            Save
          </button>
          <button
            type="button"
            class="link cancel"
            hx-get={`/integrations/${i.id}`}
            hx-target="closest tr"
            hx-swap="outerHTML"
          >
            Cancel
          </button>
        </td>
      </tr>
    );
  }
  return (
    <tr id={rowId} data-username={attr(i.username)}>
      <td>
        <div class="username" safe>
          {i.username}
        </div>
        {i.description ? (
          <div class="description muted" safe>
            {i.description}
          </div>
        ) : (
          ""
        )}
        {aclText(i.publishAcl) !== "#" ||
        aclText(i.subscribeAcl) !== "#" ||
        i.denyPublishAcl.length ||
        i.denySubscribeAcl.length ? (
          <div class="acl muted" safe>
            {`publish: ${aclText(i.publishAcl) || "nothing"} · subscribe: ${aclText(i.subscribeAcl) || "nothing"}` +
              (i.denyPublishAcl.length ? ` · never publish: ${aclText(i.denyPublishAcl)}` : "") +
              (i.denySubscribeAcl.length ? ` · never receive: ${aclText(i.denySubscribeAcl)}` : "")}
          </div>
        ) : (
          ""
        )}
        {i.publishAcl.includes("#") || i.subscribeAcl.includes("#") ? (
          <span class="badge unrestricted" title="its permissions include #: every topic but $ ones and VRPC domains">
            {i.publishAcl.includes("#") && i.subscribeAcl.includes("#")
              ? "all topics"
              : i.publishAcl.includes("#")
                ? "publishes anywhere"
                : "reads everything"}
          </span>
        ) : (
          ""
        )}
        {i.type === "http" && baseUrl ? <CurlExamples username={i.username} baseUrl={baseUrl} /> : ""}
      </td>
      <td>
        <span safe>{typeLabels[i.type]}</span>
        {role?.text ? (
          <span class="muted role" safe>
            {` · ${role.text}`}
          </span>
        ) : (
          ""
        )}
        {role?.warning ? (
          <div class="field-error refused" role="note" safe>
            {role.warning}
          </div>
        ) : (
          ""
        )}
      </td>
      <StatusCell integration={i} sessions={sessions} csrfToken={csrfToken} />
      <LastLoginCell integration={i} />
      <td>
        <LocalTime at={i.createdAt} />
      </td>
      <td>
        {secret ? (
          <Secret label="New password:" value={secret} />
        ) : (
          <span class="masked" title="stored as a hash only">
            ••••••••••
          </span>
        )}
      </td>
      <td class="actions">
        <a
          href={`/integrations/${i.id}/edit`}
          hx-get={`/integrations/${i.id}/edit`}
          hx-target="closest tr"
          hx-swap="outerHTML"
        >
          Edit
        </a>
        <form
          method="post"
          action={`/integrations/${i.id}/toggle`}
          class="inline"
          hx-post={`/integrations/${i.id}/toggle`}
          hx-target="closest tr"
          hx-swap="outerHTML"
        >
          <CsrfField token={csrfToken} />
          <button type="submit" class="link">
            {i.active ? "Deactivate" : "Activate"}
          </button>
        </form>
        <form
          method="post"
          action={`/integrations/${i.id}/reset-password`}
          class="inline"
          hx-post={`/integrations/${i.id}/reset-password`}
          hx-target="closest tr"
          hx-swap="outerHTML"
          hx-confirm={attr(
            `Reset the password of "${i.username}"? Its connected clients are disconnected and the old password stops working.`,
          )}
        >
          <CsrfField token={csrfToken} />
          <button type="submit" class="link">
            Reset password
          </button>
        </form>
        <a
          href={`/integrations/${i.id}/delete`}
          class="danger"
          hx-post={`/integrations/${i.id}/delete`}
          hx-target="closest tr"
          hx-swap="outerHTML"
          hx-confirm={attr(`Delete "${i.username}"? Its clients are disconnected at once and it cannot log in again.`)}
        >
          Delete
        </a>
      </td>
    </tr>
  );
}
