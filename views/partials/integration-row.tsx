import type { SessionInfo } from "../../src/core/sessions.ts";
import { attr } from "../components/attr.ts";
import type { Integration, Traffic } from "../../src/core/types.ts";
import { TrafficBrief, TrafficFacts, trafficLine } from "../components/traffic.tsx";
import { typeLabels } from "../components/type-label.tsx";
import { CsrfField } from "../components/csrf.tsx";
import { ConnectHelp, type HelpProps } from "../components/connect-help.tsx";
import { FieldError } from "../components/field-error.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { Secret } from "../components/secret.tsx";

export interface RowProps {
  integration: Integration;
  /** live sessions of this integration */
  sessions: SessionInfo[];
  /** what its sessions moved since the appliance started */
  traffic?: Traffic;
  csrfToken: string;
  /** a new password to show once (after a reset); it opens the detail */
  secret?: string;
  mode?: "view" | "edit";
  errors?: Record<string, string>;
  /** the detail under the row (permissions, sessions, how a device connects) is shown */
  open?: boolean;
  /** how a device of its type connects, for the detail (from the type's part) */
  help?: HelpProps;
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

/** rowColumns: the cells of a row, for the detail's and the editor's colspan. */
export const rowColumns = 9;

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
  placeholder,
}: {
  integration?: Integration;
  draft?: PermissionDraft;
  errors?: Record<string, string>;
  /** shown in empty fields (the bulk form: "unchanged") */
  placeholder?: string;
}) {
  return (
    <>
      {permissionFields.map(([name, label]) => (
        <>
          <label class="acl">
            <span>{label}</span>
            <input
              name={name}
              value={attr(draft[name] ?? (i ? aclText(i[name]) : ""))}
              maxlength="4096"
              placeholder={placeholder}
            />
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

/** StatusCell: the status badge; the live sessions themselves are in the row's detail. Refreshed out of band. */
export function StatusCell({
  integration: i,
  sessions,
  traffic,
  oob,
}: {
  integration: Integration;
  sessions: SessionInfo[];
  traffic?: Traffic;
  /** kept for the live refresh's callers; the cell has no form */
  csrfToken?: string;
  oob?: boolean;
}) {
  return (
    <td id={`status-${i.id}`} class="status" data-label="Status" hx-swap-oob={oob ? "true" : undefined}>
      <StatusBadge active={i.active} online={sessions.length} /> <TrafficBrief traffic={traffic} />
    </td>
  );
}

export function LastLoginCell({ integration: i, oob }: { integration: Integration; oob?: boolean }) {
  return (
    <td id={`last-login-${i.id}`} class="time" data-label="Last login" hx-swap-oob={oob ? "true" : undefined}>
      <LocalTime at={i.lastLoginAt} />
    </td>
  );
}

const aclText = (acl: string[]) => acl.join(" ");

/** permissionSummary: the topic permissions in a few words, for a one-line row. */
function permissionSummary(i: Integration): { text: string; wide: boolean } {
  const pub = i.publishAcl.includes("#");
  const sub = i.subscribeAcl.includes("#");
  if (pub && sub) return { text: "all topics", wide: true };
  if (pub) return { text: "publishes anywhere", wide: true };
  if (sub) return { text: "reads everything", wide: true };
  if (i.publishAcl.length === 0 && i.subscribeAcl.length === 0) return { text: "no topics", wide: false };
  return { text: "restricted", wide: false };
}

/** permissionLines: every list, for the detail and the permissions cell's tooltip. */
function permissionLines(i: Integration): [string, string][] {
  const lines: [string, string][] = [
    ["May publish to", aclText(i.publishAcl) || "nothing"],
    ["May subscribe to", aclText(i.subscribeAcl) || "nothing"],
  ];
  if (i.denyPublishAcl.length) lines.push(["Never publish to", aclText(i.denyPublishAcl)]);
  if (i.denySubscribeAcl.length) lines.push(["Never receive", aclText(i.denySubscribeAcl)]);
  return lines;
}

/** longName: names past this many characters are cut with an ellipsis and shown whole on hover or focus. */
const longName = 24;

/**
 * IntegrationDetail: what does not fit on one line: description, permissions, last login and where it
 * came from, the live sessions (each with Disconnect), a new password once, how a device connects.
 * Under the row (htmx) and on the integration's own page (without JavaScript).
 */
export function IntegrationDetail({
  integration: i,
  sessions,
  traffic,
  csrfToken,
  secret,
  help,
  role,
  target,
}: Pick<RowProps, "integration" | "sessions" | "traffic" | "csrfToken" | "secret" | "help" | "role"> & {
  /** where a Disconnect's answer goes: the row (htmx), or nowhere (the detail page posts plainly) */
  target?: string;
}) {
  return (
    <div class="detail-grid">
      {secret ? <Secret label="New password:" value={secret} /> : ""}
      <section aria-label="Integration">
        <dl class="facts">
          <dt>Description</dt>
          <dd safe>{i.description || "none"}</dd>
          {permissionLines(i).map(([label, value]) => (
            <>
              <dt safe>{label}</dt>
              <dd>
                <code safe>{value}</code>
              </dd>
            </>
          ))}
          <dt>Created</dt>
          <dd>
            <LocalTime at={i.createdAt} />
          </dd>
          <dt>Last login</dt>
          <dd>
            <LocalTime at={i.lastLoginAt} />
            {i.lastLoginRemote || i.lastLoginClientId ? (
              <span
                class="muted"
                safe
              >{` from ${i.lastLoginRemote ?? "?"}${i.lastLoginClientId ? `, client id ${i.lastLoginClientId}` : ""}`}</span>
            ) : (
              ""
            )}
          </dd>
          {role?.text ? (
            <>
              <dt>Seen as</dt>
              <dd safe>{role.text}</dd>
            </>
          ) : (
            ""
          )}
          {role?.warning ? (
            <>
              <dt>Warning</dt>
              <dd class="field-error" role="note" safe>
                {role.warning}
              </dd>
            </>
          ) : (
            ""
          )}
        </dl>
      </section>
      {traffic ? (
        <section aria-label="Traffic since start">
          <h3>Traffic since start</h3>
          <TrafficFacts traffic={traffic} />
        </section>
      ) : (
        ""
      )}
      <section aria-label="Live sessions">
        <h3 safe>{`Live sessions (${sessions.length})`}</h3>
        {sessions.length === 0 ? (
          <p class="muted">{i.active ? "None: no client is connected now." : "None: it is deactivated."}</p>
        ) : (
          <ul class="sessions">
            {sessions.map((s) => (
              <li>
                <code safe>{s.clientId ?? "(no client id)"}</code>{" "}
                <span
                  class="muted"
                  safe
                >{`${s.protocol ?? typeLabels[s.type]} from ${s.remote ?? "?"}${s.requests !== undefined ? `, ${s.requests} request${s.requests === 1 ? "" : "s"}` : ""}`}</span>{" "}
                <span class="muted">
                  since <LocalTime at={s.openedAt} />
                </span>{" "}
                {s.traffic ? (
                  <span class="muted session-traffic" safe>
                    {`· ${trafficLine(s.traffic)}`}
                  </span>
                ) : (
                  ""
                )}{" "}
                {s.subscriptions ? <Subscriptions topics={s.subscriptions} /> : ""}
                <form
                  method="post"
                  action={`/sessions/${s.id}/disconnect`}
                  class="inline"
                  hx-post={target ? `/sessions/${s.id}/disconnect` : undefined}
                  hx-target={target}
                  hx-swap={target ? "outerHTML" : undefined}
                >
                  <CsrfField token={csrfToken} />
                  <input type="hidden" name="detail" value="1" />
                  <button type="submit" class="link danger">
                    Disconnect{" "}
                    <span class="sr-only" safe>
                      {s.clientId ?? "the client"}
                    </span>
                  </button>
                </form>
              </li>
            ))}
          </ul>
        )}
      </section>
      {help ? (
        <section aria-label="How a device connects" class="connect">
          <h3>How a device connects</h3>
          <ConnectHelp help={help} />
        </section>
      ) : (
        ""
      )}
    </div>
  );
}

/** shownSubscriptions: a session's filters listed at most; the count says how many more. */
const shownSubscriptions = 50;

/** Subscriptions: the topic filters a live session subscribes to now (what a device typed: escaped). */
function Subscriptions({ topics }: { topics: string[] }) {
  if (topics.length === 0) return <span class="muted subscriptions">· no subscriptions</span>;
  const more = topics.length - shownSubscriptions;
  return (
    <span class="subscriptions">
      <span class="muted" safe>{`· subscribes to ${topics.length}: `}</span>
      {topics.slice(0, shownSubscriptions).map((t) => (
        <>
          <code safe>{t}</code>{" "}
        </>
      ))}
      {more > 0 ? <span class="muted" safe>{`and ${more} more`}</span> : ""}
    </span>
  );
}

/**
 * IntegrationRow: one integration as a `<tbody>`: its one-line row, and the detail under it when open.
 * Every htmx action on it swaps this `<tbody>` only. Long text is cut to keep one line per row; the
 * detail (a click on the name, or the integration's page without JavaScript) has the rest.
 */
export function IntegrationRow({
  integration: i,
  sessions,
  traffic,
  csrfToken,
  secret,
  mode = "view",
  errors = {},
  draft = {},
  open = false,
  help,
  role,
}: RowProps) {
  const bodyId = `integration-${i.id}`;
  if (mode === "edit") {
    return (
      <tbody id={bodyId} class="integration editing">
        <tr class="editing">
          <td class="select"></td>
          <td>
            <label class="sr-only" for={`${bodyId}-username`}>
              Username
            </label>
            <input
              id={`${bodyId}-username`}
              name="username"
              value={attr(draft.username ?? i.username)}
              required
              maxlength="128"
              pattern="[A-Za-z0-9._\-@\/:]{1,128}"
            />
            <FieldError message={errors.username} />
          </td>
          <td colspan={String(rowColumns - 3)}>
            <label class="sr-only" for={`${bodyId}-description`}>
              Description
            </label>
            <input
              id={`${bodyId}-description`}
              name="description"
              value={attr(draft.description ?? i.description)}
              maxlength="1024"
              placeholder="Description"
            />
            <FieldError message={errors.description} />
            <PermissionFields integration={i} draft={draft} errors={errors} />
          </td>
          <td class="actions">
            <div class="row-actions">
              <input type="hidden" name="_csrf" value={csrfToken} />
              <button
                type="button"
                class="save"
                hx-post={`/integrations/${i.id}`}
                hx-include="closest tr"
                hx-target="closest tbody"
                hx-swap="outerHTML"
              >
                Save
              </button>
              <button
                type="button"
                class="link cancel"
                hx-get={`/integrations/${i.id}`}
                hx-target="closest tbody"
                hx-swap="outerHTML"
              >
                Cancel
              </button>
            </div>
          </td>
        </tr>
      </tbody>
    );
  }
  const shown = open || secret !== undefined;
  const perms = permissionSummary(i);
  const long = i.username.length > longName;
  return (
    <tbody id={bodyId} class={shown ? "integration open" : "integration"}>
      <tr data-username={attr(i.username)}>
        <td class="select">
          <input
            type="checkbox"
            name="ids"
            value={String(i.id)}
            form="bulk"
            aria-label={attr(`Select ${i.username}`)}
          />
        </td>
        <td class={long ? "name long" : "name"}>
          <a
            class="expand"
            href={`/integrations/${i.id}`}
            hx-get={shown ? `/integrations/${i.id}` : `/integrations/${i.id}?detail=1`}
            hx-target="closest tbody"
            hx-swap="outerHTML"
            aria-expanded={shown ? "true" : "false"}
          >
            <span class="username" safe>
              {i.username}
            </span>
          </a>
          {long ? (
            <span class="full" aria-hidden="true" safe>
              {i.username}
            </span>
          ) : (
            ""
          )}
        </td>
        <td class="description" data-label={i.description ? "Description" : undefined}>
          {i.description ? (
            <span class="clip" title={attr(i.description)} safe>
              {i.description}
            </span>
          ) : (
            ""
          )}
        </td>
        <td class="type" data-label="Type">
          <span safe>{typeLabels[i.type]}</span>
          {role?.text ? (
            <span class="muted role" safe>
              {` · ${role.text.replace(/ \(Edge Connector\)/, "")}`}
            </span>
          ) : (
            ""
          )}
          {role?.warning ? (
            <span class="warn" title={attr(role.warning)}>
              {" "}
              ⚠<span class="sr-only" safe>{` ${role.warning}`}</span>
            </span>
          ) : (
            ""
          )}
        </td>
        <td class="permissions" data-label="Topics">
          <span
            class={perms.wide ? "badge unrestricted" : "muted"}
            title={attr(
              permissionLines(i)
                .map(([l, v]) => `${l}: ${v}`)
                .join("\n"),
            )}
            safe
          >
            {perms.text}
          </span>
        </td>
        <StatusCell integration={i} sessions={sessions} traffic={traffic} />
        <LastLoginCell integration={i} />
        <td class="time" data-label="Created">
          <LocalTime at={i.createdAt} />
        </td>
        <td class="actions">
          <div class="row-actions">
            <a
              href={`/integrations/${i.id}/edit`}
              hx-get={`/integrations/${i.id}/edit`}
              hx-target="closest tbody"
              hx-swap="outerHTML"
            >
              Edit
            </a>
            <form
              method="post"
              action={`/integrations/${i.id}/toggle`}
              class="inline"
              hx-post={`/integrations/${i.id}/toggle`}
              hx-target="closest tbody"
              hx-swap="outerHTML"
            >
              <CsrfField token={csrfToken} />
              {shown ? <input type="hidden" name="detail" value="1" /> : ""}
              <button type="submit" class="link">
                {i.active ? "Deactivate" : "Activate"}
              </button>
            </form>
            <form
              method="post"
              action={`/integrations/${i.id}/reset-password`}
              class="inline"
              hx-post={`/integrations/${i.id}/reset-password`}
              hx-target="closest tbody"
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
              hx-target="closest tbody"
              hx-swap="outerHTML"
              hx-confirm={attr(
                `Delete "${i.username}"? Its clients are disconnected at once and it cannot log in again.`,
              )}
            >
              Delete
            </a>
          </div>
        </td>
      </tr>
      {shown ? (
        <tr class="detail">
          <td colspan={String(rowColumns)}>
            <IntegrationDetail
              integration={i}
              sessions={sessions}
              traffic={traffic}
              csrfToken={csrfToken}
              secret={secret}
              help={help}
              role={role}
              target={`#${bodyId}`}
            />
          </td>
        </tr>
      ) : (
        ""
      )}
    </tbody>
  );
}
