import type { UplinkView } from "../store.ts";
import type { UplinkStatus } from "../uplink.ts";
import { attr } from "../../../../views/components/attr.ts";
import { CsrfField } from "../../../../views/components/csrf.tsx";
import { FieldError } from "../../../../views/components/field-error.tsx";
import { LocalTime } from "../../../../views/components/local-time.tsx";
import { PostButton } from "../../../../views/components/post-button.tsx";
import { Layout, type LayoutAdmin } from "../../../../views/layouts/base.tsx";

/** UplinkRowData: one uplink with its live state (none while the outbox is not open). */
export interface UplinkRowData {
  uplink: UplinkView;
  status?: UplinkStatus;
}

export interface UplinkListProps {
  rows: UplinkRowData[];
  csrfToken: string;
  /** why nothing is queued, if the outbox cannot be used (a full disk) */
  outboxProblem?: string;
}

/** uplinkPath: `/uplinks/<name>` with the name encoded. */
export const uplinkPath = (name: string) => `/uplinks/${encodeURIComponent(name)}`;

/** bytesText: 1.2 MB. */
function bytesText(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** ageText: 0 s, 42 s, 3 min, 5 h, 2 d. */
function ageText(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

function StateCell({ row }: { row: UplinkRowData }) {
  const { uplink: u, status: s } = row;
  if (!u.enabled) return <span class="badge deactivated">disabled</span>;
  if (!s) return <span class="badge">not running</span>;
  if (s.connected)
    return (
      <>
        <span class="badge online">connected</span>{" "}
        <span class="muted">
          to <code safe>{s.url ?? ""}</code> since <LocalTime at={s.connectedSince} />
        </span>
      </>
    );
  return (
    <>
      <span class="badge">disconnected</span>{" "}
      <span class="muted">
        since <LocalTime at={s.disconnectedSince} never="start" />
      </span>
    </>
  );
}

/** UplinkList: every uplink and its live state; refreshed in place through the page's event stream. */
export function UplinkList({ rows, csrfToken, outboxProblem }: UplinkListProps) {
  return (
    <>
      {outboxProblem ? (
        <p class="field-error" role="alert" safe>
          {outboxProblem}
        </p>
      ) : (
        ""
      )}
      {rows.length === 0 ? (
        <p class="muted">
          No uplink yet. Add one to forward this appliance's data to a broker upstream (a cluster's nodes are tried in
          turn).
        </p>
      ) : (
        <table class="uplinks">
          <thead>
            <tr>
              <th scope="col">Uplink</th>
              <th scope="col">State</th>
              <th scope="col">Queued</th>
              <th scope="col">Forwarded</th>
              <th scope="col">Dropped</th>
              <th scope="col">Resent</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => {
              const { uplink: u, status: s } = row;
              return (
                <tr id={`uplink-${u.id}`} data-uplink={attr(u.name)}>
                  <td>
                    <strong safe>{u.name}</strong>
                    <br />
                    <small class="muted" safe>
                      {`${u.forward.join(", ")} → ${u.remotePrefix || "(no prefix)"} · QoS ${u.qos}`}
                    </small>
                  </td>
                  <td>
                    <StateCell row={row} />
                    {s?.lastError ? (
                      <>
                        <br />
                        <small class="field-error" safe>
                          {s.lastError}
                        </small>
                      </>
                    ) : (
                      ""
                    )}
                  </td>
                  <td class="queued">
                    <span safe>{`${s?.queued ?? 0} messages, ${bytesText(s?.queuedBytes ?? 0)}`}</span>
                    {s && s.queued > 0 ? (
                      <small class="muted" safe>{`, oldest ${ageText(s.oldestQueuedAgeS)}`}</small>
                    ) : (
                      ""
                    )}
                  </td>
                  <td class="forwarded" safe>{`${s?.forwarded ?? 0} (${s?.forwardedPerSecond ?? 0}/s)`}</td>
                  <td class="dropped">
                    <span safe>{String(s?.dropped ?? 0)}</span>
                    {s?.refused ? (
                      <>
                        <br />
                        <small class="muted" safe>{`${s.refused} refused to their publishers`}</small>
                      </>
                    ) : (
                      ""
                    )}
                  </td>
                  <td class="resent" safe>
                    {String(s?.resent ?? 0)}
                  </td>
                  <td class="actions">
                    <a href={`${uplinkPath(u.name)}/edit`}>Edit</a>{" "}
                    <PostButton
                      action={`${uplinkPath(u.name)}/${u.enabled ? "disable" : "enable"}`}
                      csrfToken={csrfToken}
                      danger={false}
                    >
                      {u.enabled ? "Disable" : "Enable"}
                    </PostButton>{" "}
                    <PostButton
                      action={`${uplinkPath(u.name)}/remove`}
                      csrfToken={csrfToken}
                      confirm={`Remove the uplink "${u.name}"? Its queue of ${s?.queued ?? 0} messages is deleted.`}
                    >
                      Remove
                    </PostButton>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </>
  );
}

/** UplinksPage: the uplinks, live (the event stream refreshes the list; the ages move every 10 s). */
export function UplinksPage({ admin, flash, ...props }: UplinkListProps & { admin: LayoutAdmin; flash?: string }) {
  return (
    <Layout title="Uplinks" admin={admin} active="/uplinks">
      <div class="page-head">
        <h1>Uplinks</h1>
        <a class="button" href="/uplinks/new">
          Add uplink
        </a>
      </div>
      <p class="muted">
        Local messages that match an uplink's forward filters are kept on disk before their device hears yes, and sent
        upstream in order; nothing is lost across outages, failovers and restarts.
      </p>
      {flash ? (
        <p class="flash" role="status" safe>
          {flash}
        </p>
      ) : (
        ""
      )}
      <div
        id="uplink-list"
        data-live="true"
        hx-get="/uplinks/list"
        hx-trigger="gatehouse:connector from:body, every 10s"
        hx-swap="innerHTML"
        data-keep-while-editing="true"
      >
        <UplinkList {...props} />
      </div>
    </Layout>
  );
}

/** UplinkFormValues: what the form shows (text areas hold one entry per line). */
export interface UplinkFormValues {
  name: string;
  urls: string;
  username: string;
  ca: string;
  clientCert: string;
  clientId: string;
  protocol: string;
  forward: string;
  remotePrefix: string;
  subscribe: string;
  localPrefix: string;
  qos: string;
  inflight: string;
  inventory: boolean;
  enabled: boolean;
}

export interface UplinkFormProps {
  admin: LayoutAdmin;
  values: UplinkFormValues;
  errors?: Record<string, string>;
  /** editing this uplink (absent: adding one) */
  editing?: { name: string; passwordSet: boolean; clientKeySet: boolean };
}

function Area({
  name,
  label,
  value,
  error,
  hint,
  rows = 3,
}: {
  name: string;
  label: string;
  value: string;
  error?: string;
  hint?: string;
  rows?: number;
}) {
  return (
    <label>
      <span safe>{label}</span>
      <textarea name={name} rows={String(rows)} spellcheck="false" safe>
        {value}
      </textarea>
      {hint ? (
        <small class="hint muted" safe>
          {hint}
        </small>
      ) : (
        ""
      )}
      <FieldError message={error} />
    </label>
  );
}

/**
 * UplinkPage: add or edit an uplink. The password and the client key are write-only: never sent to the
 * page; left empty they stay as they are, and a box clears them.
 */
export function UplinkPage({ admin, values, errors = {}, editing }: UplinkFormProps) {
  const action = editing ? uplinkPath(editing.name) : "/uplinks";
  const title = editing ? `Uplink ${editing.name}` : "Add uplink";
  return (
    <Layout title={title} admin={admin} active="/uplinks">
      <form class="card" method="post" action={action} id="uplink-form">
        <h1 safe>{title}</h1>
        <CsrfField token={admin.csrfToken} />
        <div class="grid">
          <label>
            Name
            <input
              name="name"
              value={attr(values.name)}
              required
              maxlength="64"
              pattern="[A-Za-z0-9][A-Za-z0-9._\-]*"
            />
            <FieldError message={errors.name} />
          </label>
          <label>
            Client id
            <input
              name="clientId"
              value={attr(values.clientId)}
              maxlength="128"
              placeholder="gatehouse-<host>-<name>"
            />
            <FieldError message={errors.clientId} />
          </label>
          <label>
            MQTT version
            <select name="protocol">
              <option value="4" selected={values.protocol !== "5"}>
                3.1.1
              </option>
              <option value="5" selected={values.protocol === "5"}>
                5
              </option>
            </select>
            <FieldError message={errors.protocol} />
          </label>
          <label>
            QoS upstream
            <select name="qos">
              <option value="1" selected={values.qos !== "0"}>
                1 (stored and forwarded)
              </option>
              <option value="0" selected={values.qos === "0"}>
                0
              </option>
            </select>
            <FieldError message={errors.qos} />
          </label>
          <label>
            In flight at most
            <input name="inflight" type="number" min="1" max="65535" value={attr(values.inflight)} />
            <FieldError message={errors.inflight} />
          </label>
        </div>
        <Area
          name="urls"
          label="Broker URLs (one per line: the nodes of one cluster)"
          value={values.urls}
          error={errors.urls}
          hint="mqtt://, mqtts://, ws:// or wss://; the first that answers is used, the next on loss"
        />
        <div class="grid">
          <label>
            User name
            <input name="username" value={attr(values.username)} maxlength="512" autocomplete="off" />
            <FieldError message={errors.username} />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              value=""
              maxlength="1024"
              autocomplete="new-password"
              placeholder={editing?.passwordSet ? "stored; leave empty to keep" : "none"}
            />
            <FieldError message={errors.password} />
          </label>
          {editing?.passwordSet ? (
            <label class="inline-form">
              <span>
                <input type="checkbox" name="clearPassword" value="yes" /> Remove the stored password
              </span>
            </label>
          ) : (
            ""
          )}
        </div>
        <div class="grid">
          <Area
            name="forward"
            label="Forward (local topic filters)"
            value={values.forward}
            error={errors.forward}
            hint="$ topics go only when a filter names them"
          />
          <label>
            Remote prefix
            <input name="remotePrefix" value={attr(values.remotePrefix)} maxlength="256" placeholder="site-1/line-2/" />
            <FieldError message={errors.remotePrefix} />
          </label>
        </div>
        <div class="grid">
          <Area
            name="subscribe"
            label="Subscribe (remote topic filters, optional)"
            value={values.subscribe}
            error={errors.subscribe}
          />
          <label>
            Local prefix
            <input name="localPrefix" value={attr(values.localPrefix)} maxlength="256" placeholder="from-cloud/" />
            <small class="hint muted">
              messages from upstream are published here only, under the core's permissions
            </small>
            <FieldError message={errors.localPrefix} />
          </label>
        </div>
        <details>
          <summary>TLS</summary>
          <div class="grid">
            <Area
              name="ca"
              label="CA certificate (PEM, trusted besides the system's)"
              value={values.ca}
              error={errors.ca}
              rows={4}
            />
            <Area
              name="clientCert"
              label="Client certificate (PEM)"
              value={values.clientCert}
              error={errors.clientCert}
              rows={4}
            />
            <label>
              Client key (PEM)
              <textarea
                name="clientKey"
                rows="4"
                spellcheck="false"
                placeholder={editing?.clientKeySet ? "stored; leave empty to keep" : "none"}
              ></textarea>
              <FieldError message={errors.clientKey} />
            </label>
          </div>
        </details>
        <div class="grid">
          <label class="inline-form">
            <span>
              <input type="checkbox" name="inventory" value="yes" checked={values.inventory} /> Publish the integrations
              (fleet presence)
            </span>
          </label>
          <label class="inline-form">
            <span>
              <input type="checkbox" name="enabled" value="yes" checked={values.enabled} /> Enabled
            </span>
          </label>
        </div>
        {errors.form ? (
          <p class="field-error" role="alert" safe>
            {errors.form}
          </p>
        ) : (
          ""
        )}
        <button type="submit">Save uplink</button>{" "}
        <a href="/uplinks" class="link">
          Cancel
        </a>
      </form>
    </Layout>
  );
}

/** RemoveUplinkConfirm: without JS there is no confirm(): the first POST only asks, naming the uplink. */
export function RemoveUplinkConfirm({ name, queued, csrfToken }: { name: string; queued: number; csrfToken: string }) {
  return (
    <>
      <p>
        The uplink <strong safe>{name}</strong> is removed, and its queue of <span safe>{String(queued)}</span> messages
        deleted.
      </p>
      <form method="post" action={`${uplinkPath(name)}/remove`}>
        <CsrfField token={csrfToken} />
        <input type="hidden" name="confirmed" value="yes" />
        <button type="submit" class="danger">
          Remove
        </button>{" "}
        <a href="/uplinks">Cancel</a>
      </form>
    </>
  );
}
