import type { SessionInfo } from "../../src/core/sessions.ts";
import type { Integration, IntegrationType } from "../../src/core/types.ts";
import { IntegrationRow } from "./integration-row.tsx";

export interface TableQuery {
  q?: string;
  type?: IntegrationType;
  status?: string;
}

export interface TableProps {
  rows: Integration[];
  sessionsOf: (id: number) => SessionInfo[];
  /** the appliance's URL as the admin reaches it */
  baseUrl?: string;
  /** a VRPC integration's role (Agent / Client) */
  roleOf?: (i: Integration) => string | undefined;
  csrfToken: string;
  total: number;
  page: number;
  pages: number;
  query: TableQuery;
}

function pageHref(query: TableQuery, page: number): string {
  const p = new URLSearchParams();
  if (query.q) p.set("q", query.q);
  if (query.type) p.set("type", query.type);
  if (query.status) p.set("status", query.status);
  if (page > 1) p.set("page", String(page));
  const s = p.toString();
  return s ? `/integrations?${s}` : "/integrations";
}

/** IntegrationTable: the list with its pager; the search form swaps this element. */
export function IntegrationTable({ rows, sessionsOf, csrfToken, total, page, pages, query, baseUrl, roleOf }: TableProps) {
  return (
    // Pushed: the page's event stream fires `gatehouse:changed` (a row added or removed elsewhere, a
    // device online, a count): the table reloads itself for the same query, unless the admin is editing.
    <div id="integration-table" hx-get={pageHref(query, page)} hx-trigger="gatehouse:changed from:body" hx-swap="outerHTML" data-keep-while-editing="true">
      <table class="integrations">
        <thead>
          <tr>
            <th>Username</th>
            <th>Type</th>
            <th>Status</th>
            <th>Last login</th>
            <th>Created</th>
            <th>Password</th>
            <th class="actions">Actions</th>
          </tr>
        </thead>
        <tbody id="integration-rows">
          {rows.map((i) => (
            <IntegrationRow integration={i} sessions={sessionsOf(i.id)} csrfToken={csrfToken} baseUrl={baseUrl} role={roleOf?.(i)} />
          ))}
        </tbody>
      </table>
      {rows.length === 0 ? <p class="empty muted">No integrations match.</p> : ""}
      {/* Live status: every few seconds the status and last-login cells of the rows shown are refreshed
          (app.js asks for the rows on the page at that moment, so rows added since load go live too). */}
      <div id="live-status" hx-get={`/integrations/live?ids=${rows.map((r) => r.id).join(",")}`} hx-trigger="every 3s" hx-swap="none"></div>
      <nav class="pager" aria-label="pages">
        <span class="muted">
          {total} integration{total === 1 ? "" : "s"} · page {page} of {pages}
        </span>
        {page > 1 ? (
          <a href={pageHref(query, page - 1)} hx-get={pageHref(query, page - 1)} hx-target="#integration-table" hx-swap="outerHTML" hx-push-url="true">
            ← Previous
          </a>
        ) : (
          ""
        )}
        {page < pages ? (
          <a href={pageHref(query, page + 1)} hx-get={pageHref(query, page + 1)} hx-target="#integration-table" hx-swap="outerHTML" hx-push-url="true">
            Next →
          </a>
        ) : (
          ""
        )}
      </nav>
    </div>
  );
}
