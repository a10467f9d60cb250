import { attr } from "../components/attr.ts";
import { PostButton } from "../components/post-button.tsx";
import { Layout, type LayoutAdmin } from "../layouts/base.tsx";

export interface TopicsPageProps {
  admin: LayoutAdmin;
  topics: { topic: string; bytes: number; preview: string }[];
  q?: string;
  truncated: boolean;
}

/** TopicsPage: the retained messages on the broker, to find and clear what a removed device left behind. */
export function TopicsPage({ admin, topics, q, truncated }: TopicsPageProps) {
  return (
    <Layout title="Retained topics" admin={admin} active="/topics">
      <h1>Retained topics</h1>
      <p class="muted">
        Messages the broker keeps for every new subscriber. Clearing one publishes an empty retained message on its
        topic.
      </p>
      <form class="toolbar" method="get" action="/topics">
        <input type="search" name="q" value={attr(q ?? "")} placeholder="Topic contains" aria-label="Topic contains" />
        <button type="submit">Filter</button>
      </form>
      {topics.length === 0 ? (
        <p class="muted">No retained messages{q ? " match" : ""}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Topic</th>
              <th>Size</th>
              <th>Payload</th>
              <th>
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {topics.map((t) => (
              <tr>
                <td>
                  <code safe>{t.topic}</code>
                </td>
                <td safe>{`${t.bytes} B`}</td>
                <td>
                  <code class="muted" safe>
                    {t.preview}
                  </code>
                </td>
                <td>
                  <PostButton action="/topics/clear" csrfToken={admin.csrfToken} fields={{ topic: t.topic }}>
                    Clear{" "}
                    <span class="sr-only" safe>
                      {t.topic}
                    </span>
                  </PostButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {truncated ? <p class="muted">Only the first 500 are shown; filter to find others.</p> : ""}
    </Layout>
  );
}
