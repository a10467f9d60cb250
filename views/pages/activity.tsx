import type { ActivityRow } from "../../src/core/activity.ts";
import { attr } from "../components/attr.ts";
import { LocalTime } from "../components/local-time.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

export interface ActivityPageProps {
  admin: LayoutAdmin;
  rows: ActivityRow[];
  query: { action?: string; actor?: string; q?: string };
}

const actions = ["integration", "onboarding", "session.kicked", "ban"];

/** ActivityPage: who changed what, newest first, with filters. */
export function ActivityPage({ admin, rows, query }: ActivityPageProps) {
  return (
    <Layout title="Activity" admin={admin} active="/activity">
      <h1>Activity</h1>
      <form class="toolbar" method="get" action="/activity">
        <input
          type="search"
          name="q"
          value={attr(query.q ?? "")}
          placeholder="Username or detail"
          aria-label="Search"
        />
        <select name="action" aria-label="Action">
          <option value="">All actions</option>
          {actions.map((a) => (
            <option value={a} selected={query.action === a} safe>
              {a}
            </option>
          ))}
        </select>
        <input
          name="actor"
          value={attr(query.actor ?? "")}
          placeholder="admin:name, token:name, cli"
          aria-label="Actor"
        />
        <button type="submit">Filter</button>
      </form>
      {rows.length === 0 ? (
        <p class="muted">Nothing recorded that matches.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Time</th>
              <th>Who</th>
              <th>What</th>
              <th>Subject</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr>
                <td>
                  <LocalTime at={r.at} />
                </td>
                <td safe>{r.actor}</td>
                <td safe>{r.action}</td>
                <td safe>{r.subject}</td>
                <td safe>{r.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Layout>
  );
}
