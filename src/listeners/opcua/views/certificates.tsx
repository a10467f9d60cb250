import type { CertificateInfo } from "../trust.ts";
import { PostButton } from "../../../../views/components/post-button.tsx";
import { LocalTime } from "../../../../views/components/local-time.tsx";
import { Layout, type LayoutAdmin } from "../../../../views/layouts/base.tsx";

export interface CertificatesPageProps {
  admin: LayoutAdmin;
  certificates: CertificateInfo[];
  running: boolean;
}

function Action({
  c,
  action,
  label,
  csrf,
  danger,
}: {
  c: CertificateInfo;
  action: string;
  label: string;
  csrf: string;
  danger?: boolean;
}) {
  return (
    <PostButton
      action={`/certificates/${c.thumbprint}/${action}`}
      csrfToken={csrf}
      danger={danger ?? false}
      confirm={
        danger
          ? `${label} the certificate of "${c.applicationUri || c.subject}"? Its client is refused from its next connection.`
          : undefined
      }
    >
      <span safe>{label}</span>
    </PostButton>
  );
}

/** CertificatesPage: OPC UA client application certificates seen by the server. */
export function CertificatesPage({ admin, certificates, running }: CertificatesPageProps) {
  return (
    <Layout title="OPC UA certificates" admin={admin} active="/certificates">
      <h1>OPC UA client certificates</h1>
      <p class="muted">
        A client that opens a signed or encrypted channel with an unknown application certificate is refused and listed
        here as rejected. Trust it and its next attempt gets in; revoke a trusted one to refuse it again.
      </p>
      {running ? "" : <p class="flash">The OPC UA listener is not running.</p>}
      <table>
        <thead>
          <tr>
            <th>Status</th>
            <th>Subject</th>
            <th>Application URI</th>
            <th>Thumbprint (SHA-1)</th>
            <th>First seen</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {certificates.map((c) => (
            <tr data-thumbprint={c.thumbprint}>
              <td>
                <span class={`badge ${c.status === "trusted" ? "online" : "deactivated"}`}>{c.status}</span>
              </td>
              <td safe>{c.subject}</td>
              <td safe>{c.applicationUri}</td>
              <td>
                <code safe>{c.thumbprint}</code>
              </td>
              <td>
                <LocalTime at={c.firstSeen} />
              </td>
              <td class="actions">
                {c.status === "rejected" ? (
                  <>
                    <Action c={c} action="trust" label="Trust" csrf={admin.csrfToken} />
                    <Action c={c} action="remove" label="Remove" csrf={admin.csrfToken} danger />
                  </>
                ) : (
                  <Action c={c} action="revoke" label="Revoke" csrf={admin.csrfToken} danger />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {certificates.length === 0 ? <p class="muted">No client certificates seen yet.</p> : ""}
    </Layout>
  );
}
