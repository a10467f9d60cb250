import type { SessionInfo } from "../../src/core/sessions.ts";
import type { Integration, IntegrationType } from "../../src/core/types.ts";
import { IntegrationRow, type RoleInfo } from "./integration-row.tsx";
import { defaultDir, type ListSort } from "../../src/core/types.ts";

export interface TableQuery {
  q?: string;
  type?: IntegrationType;
  status?: string;
  sort?: ListSort;
  dir?: "asc" | "desc";
  /** rows per page, one of `pageSizes` (25 when absent) */
  size?: number;
}

/** pageSizes: what the page-size choice offers. */
export const pageSizes = [25, 50, 100, 200];

export interface TableProps {
  rows: Integration[];
  sessionsOf: (id: number) => SessionInfo[];
  /** the appliance's URL as the admin reaches it */
  baseUrl?: string;
  /** a VRPC integration's role (Agent / Client), and a refused announcement of any integration */
  roleOf?: (i: Integration) => RoleInfo | undefined;
  csrfToken: string;
  total: number;
  page: number;
  pages: number;
  query: TableQuery;
}

export function pageHref(query: TableQuery, page: number): string {
  const p = new URLSearchParams();
  if (query.q) p.set("q", query.q);
  if (query.type) p.set("type", query.type);
  if (query.status) p.set("status", query.status);
  if (query.sort) p.set("sort", query.sort);
  if (query.dir) p.set("dir", query.dir);
  if (query.size) p.set("size", String(query.size));
  if (page > 1) p.set("page", String(page));
  const s = p.toString();
  return s ? `/integrations?${s}` : "/integrations";
}

function PageLink({ query, page, label }: { query: TableQuery; page: number; label: string }) {
  const href = pageHref(query, page);
  return (
    <a href={href} hx-get={href} hx-target="#integration-table" hx-swap="outerHTML" hx-push-url="true" safe>
      {label}
    </a>
  );
}

/** SortHeader: a column title that sorts by it; a second click turns the direction round. */
function SortHeader({ query, sort, label }: { query: TableQuery; sort: ListSort; label: string }) {
  const current = (query.sort ?? "created") === sort;
  const dir = query.dir ?? defaultDir[query.sort ?? "created"];
  const next = current ? (dir === "asc" ? "desc" : "asc") : defaultDir[sort];
  const href = pageHref({ ...query, sort, dir: next }, 1);
  return (
    <th aria-sort={current ? (dir === "asc" ? "ascending" : "descending") : undefined}>
      <a href={href} hx-get={href} hx-target="#integration-table" hx-swap="outerHTML" hx-push-url="true" class="sort">
        <span safe>{label}</span>
        {current ? (dir === "asc" ? " ▲" : " ▼") : ""}
      </a>
    </th>
  );
}

/** IntegrationTable: the list with its pager; the search form swaps this element. */
export function IntegrationTable({
  rows,
  sessionsOf,
  csrfToken,
  total,
  page,
  pages,
  query,
  baseUrl,
  roleOf,
}: TableProps) {
  return (
    // Pushed: the page's event stream fires `gatehouse:changed` (a row added or removed elsewhere, a
    // device online, a count): the table reloads itself for the same query, unless the admin is editing.
    <div
      id="integration-table"
      hx-get={pageHref(query, page)}
      hx-trigger="gatehouse:changed from:body"
      hx-swap="outerHTML"
      data-keep-while-editing="true"
    >
      <table class="integrations">
        <thead>
          <tr>
            <SortHeader query={query} sort="username" label="Username" />
            <SortHeader query={query} sort="type" label="Type" />
            <SortHeader query={query} sort="status" label="Status" />
            <SortHeader query={query} sort="lastLogin" label="Last login" />
            <SortHeader query={query} sort="created" label="Created" />
            <th>Password</th>
            <th class="actions">Actions</th>
          </tr>
        </thead>
        <tbody id="integration-rows">
          {rows.map((i) => (
            <IntegrationRow
              integration={i}
              sessions={sessionsOf(i.id)}
              csrfToken={csrfToken}
              baseUrl={baseUrl}
              role={roleOf?.(i)}
            />
          ))}
        </tbody>
      </table>
      {rows.length === 0 ? <p class="empty muted">No integrations match.</p> : ""}
      {/* Live status: every few seconds the status and last-login cells of the rows shown are refreshed
          (app.js asks for the rows on the page at that moment, so rows added since load go live too). */}
      <div
        id="live-status"
        hx-get={`/integrations/live?ids=${rows.map((r) => r.id).join(",")}`}
        hx-trigger="every 3s"
        hx-swap="none"
      ></div>
      <nav class="pager" aria-label="pages">
        <span class="muted">
          {total} integration{total === 1 ? "" : "s"} · page {page} of {pages}
        </span>
        {page > 1 ? <PageLink query={query} page={1} label="« First" /> : ""}
        {page > 1 ? <PageLink query={query} page={page - 1} label="← Previous" /> : ""}
        {page < pages ? <PageLink query={query} page={page + 1} label="Next →" /> : ""}
        {page < pages ? <PageLink query={query} page={pages} label="Last »" /> : ""}
      </nav>
    </div>
  );
}
