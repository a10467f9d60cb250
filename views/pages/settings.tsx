import type { DefaultPermissions } from "../../src/core/settings.ts";
import { integrationTypeInfo, integrationTypes, type IntegrationType } from "../../src/core/types.ts";
import type { ActivityRow } from "../../src/db/schema.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { Layout } from "../layouts/base.tsx";

export interface SettingsPageProps {
  admin: { username: string; csrfToken: string };
  admins: { username: string; createdAt: number }[];
  signIns: ActivityRow[];
  defaults: Record<IntegrationType, DefaultPermissions>;
  errors?: Record<string, string>;
  saved?: boolean;
  /** the TLS certificate MQTT over TLS and HTTPS serve */
  tls?: { fingerprint: string; source: string; certFile: string };
}

/** SettingsPage: admins and their recent sign-ins, and the permissions new integrations start with. */
export function SettingsPage({ admin, admins, signIns, defaults, errors = {}, saved, tls }: SettingsPageProps) {
  return (
    <Layout title="Settings" admin={admin} active="settings">
      <h1>Settings</h1>
      <section class="card">
        <h2>TLS certificate</h2>
        {tls ? (
          <p>
            <span>{tls.source === "self-signed" ? "Self-signed, made by the appliance" : "From the files you named"}</span> (
            <code safe>{tls.certFile}</code>). SHA-256 fingerprint, to compare on a client:{" "}
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
          Topic filters (space separated, <code>+</code> and <code>#</code>) each new integration of a type starts with; <code>#</code> is every topic
          but <code>$</code> ones. Existing integrations keep theirs.
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
                    <input name={`${t}.publishAcl`} value={attr(defaults[t].publishAcl.join(" "))} maxlength="4096" aria-label={`${integrationTypeInfo[t].label}: may publish to`} />
                    <FieldError message={errors[`${t}.publishAcl`]} />
                  </td>
                  <td>
                    <input name={`${t}.subscribeAcl`} value={attr(defaults[t].subscribeAcl.join(" "))} maxlength="4096" aria-label={`${integrationTypeInfo[t].label}: may subscribe to`} />
                    <FieldError message={errors[`${t}.subscribeAcl`]} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <button type="submit">Save defaults</button>
        </form>
      </section>
      <section class="card">
        <h2>Admins</h2>
        <ul>
          {admins.map((a) => (
            <li>
              <strong safe>{a.username}</strong> <span class="muted">since </span>
              <LocalTime at={a.createdAt} />
            </li>
          ))}
        </ul>
        <p class="muted">
          Add one or set a password with <code>gatehouse admin set-password --username NAME</code>.
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
