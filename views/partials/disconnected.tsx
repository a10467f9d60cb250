import type { Integration, SessionInfo } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

/**
 * DisconnectedNotice: what the Disconnect button leads to. A disconnected client whose credentials still
 * work connects again at once (most retry every few seconds), so the notice says so and offers what keeps
 * it out: deactivating its integration, or banning its client id or address for an hour.
 */
export function DisconnectedNotice({
  session: s,
  integration,
  csrfToken,
}: {
  session: SessionInfo;
  integration?: Integration;
  csrfToken: string;
}) {
  const ban = (kind: string, value: string, label: string) => (
    <form method="post" action="/bans" class="inline">
      <CsrfField token={csrfToken} />
      <input type="hidden" name="target" value={attr(`${kind}:${value}`)} />
      <input type="hidden" name="minutes" value="60" />
      <button type="submit" class="danger" safe>
        {label}
      </button>
    </form>
  );
  return (
    <div class="card notice" role="status" id="disconnected-notice">
      <p safe>
        {`Disconnected ${s.clientId ? `client ${s.clientId}` : "the client"} of ${s.username}${s.remote ? ` (from ${s.remote})` : ""}. ` +
          "It may connect again at once: its credentials still work. To keep it out:"}
      </p>
      <p>
        {integration?.active ? (
          <form method="post" action={`/integrations/${integration.id}/toggle`} class="inline">
            <CsrfField token={csrfToken} />
            <button type="submit" safe>{`Deactivate ${integration.username}`}</button>
          </form>
        ) : (
          ""
        )}{" "}
        {s.clientId ? ban("clientId", s.clientId, "Ban its client id for 1 hour") : ""}{" "}
        {s.remote && s.remote !== "local" ? ban("address", s.remote, "Ban its address for 1 hour") : ""}{" "}
        <a href="/integrations">Leave it</a>
      </p>
    </div>
  );
}

/** DisconnectedPage: the notice as a page, for a browser without JavaScript. */
export function DisconnectedPage(props: Parameters<typeof DisconnectedNotice>[0] & { admin: LayoutAdmin }) {
  return (
    <Layout title="Disconnected" admin={props.admin} active="/integrations">
      <h1>Disconnected</h1>
      <DisconnectedNotice {...props} />
    </Layout>
  );
}
