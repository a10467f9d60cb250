import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

export interface BackupPageProps {
  admin: LayoutAdmin;
  /** the data dir, for the restore instructions */
  dataDir: string;
  errors?: Record<string, string>;
}

/** BackupPage: download a backup or an export; restore stays on the device's command line. */
export function BackupPage({ admin, dataDir, errors = {} }: BackupPageProps) {
  const full = !admin.readOnly;
  return (
    <Layout title="Backup" admin={admin} active="/settings">
      <h1>Backup</h1>
      <section class="card">
        <h2>Backup of the database</h2>
        <p>
          A consistent copy of everything (integrations with their password hashes, admins, API tokens, settings,
          activity), made while the appliance runs, as <code>gatehouse backup FILE</code> makes it. It holds password
          hashes and the admins' two-step keys: keep it like a password.
        </p>
        {full ? (
          <form method="post" action="/settings/backup/database" class="stack">
            <CsrfField token={admin.csrfToken} />
            <FieldError message={errors.database} />
            <button type="submit">Download backup (.db)</button>
          </form>
        ) : (
          <p class="muted">Read-only admins cannot download backups: they hold password hashes.</p>
        )}
      </section>
      <section class="card">
        <h2>Export as JSON</h2>
        <p>
          Integrations with their permissions, the default permissions and the trusted OPC UA certificates, as{" "}
          <code>gatehouse export</code> writes them. Without password hashes unless you ask for them; only an export
          with them can be imported into another appliance (<code>gatehouse import --full FILE</code>).
        </p>
        <form method="post" action="/settings/backup/export" class="stack">
          <CsrfField token={admin.csrfToken} />
          {full ? (
            <label class="check">
              <input type="checkbox" name="secrets" value="1" /> Include the password hashes
            </label>
          ) : (
            ""
          )}
          {full ? (
            <label>
              To include them, type <code>include hashes</code>
              <input name="confirm" maxlength="32" autocomplete="off" spellcheck="false" />
              <FieldError message={errors.confirm} />
            </label>
          ) : (
            ""
          )}
          <button type="submit">Download export (.json)</button>
        </form>
      </section>
      <section class="card">
        <h2>Restore</h2>
        <p>Restoring replaces the whole database, so it runs on the device with the appliance stopped:</p>
        <pre>
          <code safe>{`sudo systemctl stop gatehouse
sudo -u gatehouse gatehouse restore --data-dir ${dataDir} FILE.db
sudo systemctl start gatehouse`}</code>
        </pre>
        <p class="muted">
          The file is checked before anything changes (integrity, schema, values); the database it replaces is kept
          beside it as <code>gatehouse.db.previous</code> until the appliance has started on the new one. An export goes
          in with <code>gatehouse import --full FILE.json</code>.
        </p>
      </section>
    </Layout>
  );
}
