import type { DefaultPermissions } from "../../src/core/settings.ts";
import { integrationTypeInfo, integrationTypes, type IntegrationType } from "../../src/core/types.ts";
import type { ActivityRow } from "../../src/core/activity.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { PostButton } from "../components/post-button.tsx";
import { FieldError } from "../components/field-error.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

export interface SettingsPageProps {
  admin: LayoutAdmin;
  admins: { username: string; createdAt: number; role: "full" | "read-only"; secondFactor: boolean }[];
  /** whether the signed-in admin has two-step sign-in on */
  secondFactor?: boolean;
  /** open admin sessions (`client`: browser and system, `remote`: address at sign-in); `currentSession` marks this browser's */
  adminSessions: {
    id: string;
    username: string;
    createdAt: number;
    expiresAt: number;
    client: string;
    remote: string;
  }[];
  currentSession?: string;
  /** what the last admin action did */
  done?: string;
  signIns: ActivityRow[];
  defaults: Record<IntegrationType, DefaultPermissions>;
  errors?: Record<string, string>;
  saved?: boolean;
  /** the TLS certificate MQTT over TLS and HTTPS serve */
  tls?: { fingerprint: string; source: string; certFile: string };
}

/** SettingsPage: admins and their recent sign-ins, and the permissions new integrations start with. */
export function SettingsPage({
  admin,
  admins,
  secondFactor,
  adminSessions,
  currentSession,
  done,
  signIns,
  defaults,
  errors = {},
  saved,
  tls,
}: SettingsPageProps) {
  const full = !admin.readOnly;
  return (
    <Layout title="Settings" admin={admin} active="/settings">
      <h1>Settings</h1>
      <section class="card">
        <h2>Your sign-in and backups</h2>
        <ul class="links">
          <li>
            <a href="/settings/2fa">Two-step sign-in</a> (authenticator app): {secondFactor ? "on" : "off"}
          </li>
          <li>
            <a href="/settings/backup">Backup, export and restore</a>
          </li>
        </ul>
        {full ? "" : <p class="muted">You are a read-only admin: you see every page and change nothing.</p>}
      </section>
      <section class="card">
        <h2>TLS certificate</h2>
        {tls ? (
          <p>
            <span>
              {tls.source === "self-signed" ? "Self-signed, made by the appliance" : "From the files you named"}
            </span>{" "}
            (<code safe>{tls.certFile}</code>). SHA-256 fingerprint, to compare on a client:{" "}
            <code class="fingerprint" safe>
              {tls.fingerprint}
            </code>
          </p>
        ) : (
          <p class="muted">TLS is off (no HTTPS or MQTT over TLS port).</p>
        )}
      </section>
      <section class="card">
        <h2>Permissions of new integrations</h2>
        <p class="muted">
          Topic filters (space separated, <code>+</code> and <code>#</code>) each new integration of a type starts with;{" "}
          <code>#</code> is every topic but <code>$</code> ones. Existing integrations keep theirs.
        </p>
        {saved ? (
          <p class="flash" role="status">
            Saved.
          </p>
        ) : (
          ""
        )}
        <form method="post" action="/settings/defaults" class="stack">
          <CsrfField token={admin.csrfToken} />
          <fieldset class="plain" disabled={!full}>
            <table>
              <thead>
                <tr>
                  <th>Type</th>
                  <th>May publish to</th>
                  <th>May subscribe to</th>
                </tr>
              </thead>
              <tbody>
                {integrationTypes.map((t) => (
                  <tr>
                    <th scope="row">{integrationTypeInfo[t].label}</th>
                    <td>
                      <input
                        name={`${t}.publishAcl`}
                        value={attr(defaults[t].publishAcl.join(" "))}
                        maxlength="4096"
                        aria-label={`${integrationTypeInfo[t].label}: may publish to`}
                      />
                      <FieldError message={errors[`${t}.publishAcl`]} />
                    </td>
                    <td>
                      <input
                        name={`${t}.subscribeAcl`}
                        value={attr(defaults[t].subscribeAcl.join(" "))}
                        maxlength="4096"
                        aria-label={`${integrationTypeInfo[t].label}: may subscribe to`}
                      />
                      <FieldError message={errors[`${t}.subscribeAcl`]} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </fieldset>
          {full ? <button type="submit">Save defaults</button> : ""}
        </form>
      </section>
      <section class="card" id="admins">
        <h2>Admins</h2>
        {done ? (
          <p class="flash" role="status" safe>
            {done}
          </p>
        ) : (
          ""
        )}
        <FieldError message={errors.admin} />
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Since</th>
              <th>Role</th>
              <th>Two-step</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {admins.map((a) => (
              <tr>
                <td>
                  <strong safe>{a.username}</strong>
                  {a.username === admin.username ? <span class="muted"> (you)</span> : ""}
                </td>
                <td>
                  <LocalTime at={a.createdAt} />
                </td>
                <td>
                  {a.role === "full" ? "full" : "read-only"}
                  {full && a.username !== admin.username ? (
                    <PostButton
                      action="/settings/admins/role"
                      csrfToken={admin.csrfToken}
                      fields={{ username: a.username, role: a.role === "full" ? "read-only" : "full" }}
                      confirm={`Make "${a.username}" ${a.role === "full" ? "read-only" : "a full admin"}?`}
                      danger={false}
                    >
                      {a.role === "full" ? "Make read-only" : "Make full"}
                    </PostButton>
                  ) : (
                    ""
                  )}
                </td>
                <td>{a.secondFactor ? "on" : "off"}</td>
                <td>
                  {full && a.username !== admin.username && admins.length > 1 ? (
                    <PostButton
                      action="/settings/admins/remove"
                      csrfToken={admin.csrfToken}
                      fields={{ username: a.username }}
                      confirm={`Remove the admin "${a.username}"? Its sessions end at once.`}
                    >
                      Remove
                    </PostButton>
                  ) : (
                    ""
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <div class="grid admin-forms">
          <form method="post" action="/settings/password" class="stack">
            <h3>Change your password</h3>
            <CsrfField token={admin.csrfToken} />
            <input type="text" name="username" value={attr(admin.username)} autocomplete="username" hidden />
            <label>
              Current password
              <input type="password" name="current" required autocomplete="current-password" />
              <FieldError message={errors.current} />
            </label>
            <label>
              New password
              <input
                type="password"
                name="password"
                required
                minlength="8"
                maxlength="256"
                autocomplete="new-password"
              />
              <FieldError message={errors.password} />
            </label>
            <label>
              New password again
              <input
                type="password"
                name="confirm"
                required
                minlength="8"
                maxlength="256"
                autocomplete="new-password"
              />
            </label>
            <button type="submit">Change password</button>
          </form>
          {full ? (
            <form method="post" action="/settings/admins" class="stack">
              <h3>Add an admin</h3>
              <CsrfField token={admin.csrfToken} />
              <label>
                Name
                <input name="username" required maxlength="64" pattern="[A-Za-z0-9._\-@]{1,64}" autocomplete="off" />
                <FieldError message={errors["new.username"]} />
              </label>
              <label>
                Password
                <input
                  type="password"
                  name="password"
                  required
                  minlength="8"
                  maxlength="256"
                  autocomplete="new-password"
                />
                <FieldError message={errors["new.password"]} />
              </label>
              <label class="check">
                <input type="checkbox" name="role" value="read-only" /> Read-only (sees everything, changes nothing)
              </label>
              <button type="submit">Add admin</button>
            </form>
          ) : (
            ""
          )}
        </div>
        <h3>Signed-in sessions</h3>
        <table>
          <thead>
            <tr>
              <th>Admin</th>
              <th>Browser</th>
              <th>Address</th>
              <th>Signed in</th>
              <th>Expires</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {adminSessions.map((x) => (
              <tr>
                <td>
                  <span safe>{x.username}</span>
                  {x.id === currentSession ? <span class="muted"> (this browser)</span> : ""}
                </td>
                <td safe>{x.client}</td>
                <td safe>{x.remote || "unknown"}</td>
                <td>
                  <LocalTime at={x.createdAt} />
                </td>
                <td>
                  <LocalTime at={x.expiresAt} />
                </td>
                <td>
                  {x.id === currentSession || !full ? (
                    ""
                  ) : (
                    <PostButton
                      action="/settings/sessions/end"
                      csrfToken={admin.csrfToken}
                      fields={{ id: x.id }}
                      confirm={`Sign out this session of "${x.username}"?`}
                    >
                      Sign out
                    </PostButton>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <p class="muted">
          From the device: <code>gatehouse admin set-password --username NAME [--read-only]</code>,{" "}
          <code>gatehouse admin set-role NAME full|read-only</code>, <code>gatehouse admin reset-2fa NAME</code>.
        </p>
        <h3>Recent sign-ins</h3>
        {signIns.length === 0 ? (
          <p class="muted">None recorded.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th>Time</th>
                <th>Name</th>
                <th>Outcome</th>
                <th>From</th>
              </tr>
            </thead>
            <tbody>
              {signIns.map((r) => (
                <tr>
                  <td>
                    <LocalTime at={r.at} />
                  </td>
                  <td safe>{r.subject}</td>
                  <td safe>{r.action.replace("admin.", "")}</td>
                  <td safe>{r.detail.replace(/^from /, "")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </Layout>
  );
}
