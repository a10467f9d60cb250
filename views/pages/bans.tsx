import type { Ban, BanKind } from "../../src/core/bans.ts";
import { attr } from "../components/attr.ts";
import { CsrfField } from "../components/csrf.tsx";
import { FieldError } from "../components/field-error.tsx";
import { LocalTime } from "../components/local-time.tsx";
import { PostButton } from "../components/post-button.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

/** banKindLabels: how the page names what a ban matches. */
export const banKindLabels: Record<BanKind, string> = {
  address: "Address",
  clientId: "Client id",
  username: "Username",
};

/** banDurations: the choices of the page's forms (minutes); the API takes any whole number up to a year. */
export const banDurations: [number, string][] = [
  [15, "15 minutes"],
  [60, "1 hour"],
  [1440, "1 day"],
  [10080, "7 days"],
  [43200, "30 days"],
];

export interface BansPageProps {
  admin: LayoutAdmin;
  bans: Ban[];
  max: number;
  /** the address this page is being used from (for the own-address warning) */
  remote: string;
  error?: string;
  /** the form as sent, when it is shown again with an error */
  draft?: { kind?: string; value?: string; minutes?: string };
  /** the ban would cover the admin's own address: the form asks to tick the box */
  ownAddress?: boolean;
  flash?: string;
}

/** BansPage: the ban list (EMQX's banned clients) with its add form. */
export function BansPage(p: BansPageProps) {
  const kind = p.draft?.kind ?? "address";
  const minutes = p.draft?.minutes ?? "60";
  return (
    <Layout title="Bans" admin={p.admin} active="/bans">
      <h1>Bans</h1>
      <p class="muted">
        A banned address (or CIDR block), client id or username is refused on every listener before any password is
        checked: an address when its connection is accepted, a client id or username at its CONNECT or login. Each ban
        ends by itself. Adding one drops the matching connected clients at once. An address ban also closes the HTTP
        port to that address, this admin page included.
      </p>
      {p.flash ? (
        <p class="flash" role="status" safe>
          {p.flash}
        </p>
      ) : (
        ""
      )}
      <form method="post" action="/bans" class="card inline-form" id="ban-form">
        <CsrfField token={p.admin.csrfToken} />
        <label>
          Ban{" "}
          <select name="kind">
            {(Object.keys(banKindLabels) as BanKind[]).map((k) => (
              <option value={k} selected={k === kind} safe>
                {banKindLabels[k]}
              </option>
            ))}
          </select>
        </label>
        <label>
          Value{" "}
          <input
            name="value"
            required
            maxlength="256"
            value={attr(p.draft?.value ?? "")}
            placeholder="192.0.2.7, 10.0.0.0/8, a client id or username"
          />
        </label>
        <label>
          For{" "}
          <select name="minutes">
            {banDurations.map(([n, label]) => (
              <option value={String(n)} selected={String(n) === minutes} safe>
                {label}
              </option>
            ))}
          </select>
        </label>
        {p.ownAddress ? (
          <label class="warning">
            <input type="checkbox" name="confirmOwnAddress" value="yes" /> This covers your own address (
            <code safe>{p.remote}</code>): this page will be closed to you until the ban ends or is removed with{" "}
            <code>gatehouse bans remove ID</code> on the appliance. Ban it anyway.
          </label>
        ) : (
          ""
        )}
        <button type="submit">Add ban</button>
        <FieldError message={p.error} />
      </form>
      <table id="bans">
        <caption class="muted" safe>{`${p.bans.length} of at most ${p.max} bans`}</caption>
        <thead>
          <tr>
            <th>What</th>
            <th>Value</th>
            <th>Until</th>
            <th>Refused</th>
            <th>Added</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {p.bans.length === 0 ? (
            <tr>
              <td colspan="6" class="muted">
                No bans. Ban a client from the failed logins on the Integrations page, or above.
              </td>
            </tr>
          ) : (
            ""
          )}
          {p.bans.map((b) => (
            <tr id={`ban-${b.id}`}>
              <td safe>{banKindLabels[b.kind]}</td>
              <td>
                <code safe>{b.value}</code>
              </td>
              <td>
                <LocalTime at={b.expiresAt} />
              </td>
              <td safe>{b.hits === 0 ? "not yet" : `${b.hits} time${b.hits === 1 ? "" : "s"}`}</td>
              <td>
                <LocalTime at={b.createdAt} />{" "}
                <span class="muted">
                  by <span safe>{b.createdBy || "?"}</span>
                </span>
              </td>
              <td>
                <PostButton
                  action={`/bans/${b.id}/remove`}
                  csrfToken={p.admin.csrfToken}
                  confirm={`Lift the ban of ${banKindLabels[b.kind].toLowerCase()} ${b.value}?`}
                >
                  Remove
                </PostButton>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  );
}
