import type { SessionInfo } from "../../src/core/sessions.ts";
import type { Integration, IntegrationType, Traffic } from "../../src/core/types.ts";
import { attr } from "../components/attr.ts";
import type { HelpProps } from "../components/connect-help.tsx";
import { CsrfField } from "../components/csrf.tsx";
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

/** bulkActions: what the bulk bar offers, by the value its form posts. */
export const bulkActions = [
  ["activate", "Activate"],
  ["deactivate", "Deactivate"],
  ["permissions", "Set permissions…"],
  ["delete", "Delete"],
  ["export-csv", "Export as CSV"],
  ["export-json", "Export as JSON"],
] as const;

export interface TableProps {
  rows: Integration[];
  sessionsOf: (id: number) => SessionInfo[];
  /** what an integration's sessions moved since start */
  trafficOf?: (id: number) => Traffic;
  /** a VRPC integration's role (Agent / Client), and a refused announcement of any integration */
  roleOf?: (i: Integration) => RoleInfo | undefined;
  /** how a device of a type connects (for the rows opened) */
  helpOf?: (i: Integration) => HelpProps | undefined;
  /** rows whose detail is open (the live refresh keeps them so) */
  openIds?: ReadonlySet<number>;
  csrfToken: string;
  total: number;
  page: number;
  pages: number;
  /** the page asked for, when it was past the last one */
  pastEnd?: number;
  query: TableQuery;
}

export function pageHref(query: TableQuery, page: number): string {
  const p = filterParams(query);
  if (query.sort) p.set("sort", query.sort);
  if (query.dir) p.set("dir", query.dir);
  if (query.size) p.set("size", String(query.size));
  if (page > 1) p.set("page", String(page));
  const s = p.toString();
  return s ? `/integrations?${s}` : "/integrations";
}

/** filterParams: the filter part of a query (what "all matching" means). */
function filterParams(query: TableQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (query.q) p.set("q", query.q);
  if (query.type) p.set("type", query.type);
  if (query.status) p.set("status", query.status);
  return p;
}

function PageLink({ query, page, label, rel }: { query: TableQuery; page: number; label: string; rel?: string }) {
  const href = pageHref(query, page);
  return (
    <a href={href} rel={rel} hx-get={href} hx-target="#integration-table" hx-swap="outerHTML" hx-push-url="true" safe>
      {label}
    </a>
  );
}

/** SortHeader: a column title that sorts by it; a second click turns the direction round. */
function SortHeader({ query, sort, label, cls }: { query: TableQuery; sort: ListSort; label: string; cls?: string }) {
  const current = (query.sort ?? "created") === sort;
  const dir = query.dir ?? defaultDir[query.sort ?? "created"];
  const next = current ? (dir === "asc" ? "desc" : "asc") : defaultDir[sort];
  const href = pageHref({ ...query, sort, dir: next }, 1);
  return (
    <th class={cls} aria-sort={current ? (dir === "asc" ? "ascending" : "descending") : undefined}>
      <a href={href} hx-get={href} hx-target="#integration-table" hx-swap="outerHTML" hx-push-url="true" class="sort">
        <span safe>{label}</span>
        {current ? (dir === "asc" ? " ▲" : " ▼") : ""}
      </a>
    </th>
  );
}

/** HiddenQuery: the list's filters and order as hidden fields (the page jump keeps them). */
function HiddenQuery({ query }: { query: TableQuery }) {
  const fields: [string, string | undefined][] = [
    ["q", query.q],
    ["type", query.type],
    ["status", query.status],
    ["sort", query.sort],
    ["dir", query.dir],
    ["size", query.size ? String(query.size) : undefined],
  ];
  return <>{fields.map(([name, value]) => (value ? <input type="hidden" name={name} value={attr(value)} /> : ""))}</>;
}

/**
 * BulkBar: work on many integrations at once: the rows ticked (their checkboxes belong to this form
 * through `form="bulk"`) or all that match the filter; one confirmation naming the count (a dialog, or a
 * page without JavaScript). Exports need none.
 */
function BulkBar({ csrfToken, total, query, page }: Pick<TableProps, "csrfToken" | "total" | "query" | "page">) {
  const filter = filterParams(query);
  return (
    <form
      id="bulk"
      class="bulk"
      method="post"
      action="/integrations/bulk"
      data-bulk={String(total)}
      aria-label="Bulk actions"
    >
      <CsrfField token={csrfToken} />
      <input type="hidden" name="back" value={attr(pageHref(query, page))} />
      {[...filter].map(([name, value]) => (
        <input type="hidden" name={name} value={attr(value)} />
      ))}
      <label class="check">
        <input type="checkbox" name="all" value="1" />
        <span safe>{`All ${total} matching`}</span>
      </label>
      <select name="action" aria-label="What to do with the selected integrations">
        <option value="">With selected…</option>
        {bulkActions.map(([value, label]) => (
          <option value={value}>{label}</option>
        ))}
      </select>
      <button type="submit" class="secondary">
        Apply
      </button>
    </form>
  );
}

/** Pager: where this page is, the neighbours, and a jump to any page by number. */
function Pager({ query, page, pages, total }: Pick<TableProps, "query" | "page" | "pages" | "total">) {
  return (
    <nav class="pager" aria-label="Pages">
      <span class="muted" safe>{`${total} integration${total === 1 ? "" : "s"} · page ${page} of ${pages}`}</span>
      {page > 1 ? <PageLink query={query} page={1} label="« First" /> : ""}
      {page > 1 ? <PageLink query={query} page={page - 1} label="‹ Previous" rel="prev" /> : ""}
      {page < pages ? <PageLink query={query} page={page + 1} label="Next ›" rel="next" /> : ""}
      {page < pages ? <PageLink query={query} page={pages} label="Last »" /> : ""}
      {pages > 1 ? (
        <form
          class="jump"
          method="get"
          action="/integrations"
          hx-get="/integrations"
          hx-target="#integration-table"
          hx-swap="outerHTML"
          hx-push-url="true"
        >
          <HiddenQuery query={query} />
          <label>
            <span>Page</span>
            <input type="number" name="page" min="1" max={String(pages)} value={String(page)} required />
          </label>
          <button type="submit" class="secondary">
            Go
          </button>
        </form>
      ) : (
        ""
      )}
    </nav>
  );
}

/** IntegrationTable: the list with its bulk bar and pager; the search form swaps this element. */
export function IntegrationTable({
  rows,
  sessionsOf,
  trafficOf,
  csrfToken,
  total,
  page,
  pages,
  pastEnd,
  query,
  roleOf,
  helpOf,
  openIds,
}: TableProps) {
  return (
    // Pushed: the page's event stream fires `gatehouse:changed` (a row added or removed elsewhere, a
    // device online, a count): the table reloads itself for the same query, unless the admin is editing
    // or has ticked rows; rows whose detail is open stay open (app.js sends their ids).
    <div
      id="integration-table"
      hx-get={pageHref(query, page)}
      hx-trigger="gatehouse:changed from:body"
      hx-swap="outerHTML"
      data-keep-while-editing="true"
    >
      <div class="table-bar">
        <BulkBar csrfToken={csrfToken} total={total} query={query} page={page} />
        <Pager query={query} page={page} pages={pages} total={total} />
      </div>
      {pastEnd ? (
        <p class="notice" role="status">
          <span
            safe
          >{`There is no page ${pastEnd}: ${total} integration${total === 1 ? "" : "s"} fill ${pages} page${pages === 1 ? "" : "s"}. `}</span>
          <PageLink query={query} page={pages} label={`Go to page ${pages}`} />
        </p>
      ) : (
        ""
      )}
      <table class="integrations">
        <thead id="integration-head">
          <tr>
            <th class="select">
              <input type="checkbox" class="select-page" aria-label="Select every integration on this page" hidden />
            </th>
            <SortHeader query={query} sort="username" label="Username" cls="name" />
            <th class="description">Description</th>
            <SortHeader query={query} sort="type" label="Type" />
            <th>Topics</th>
            <SortHeader query={query} sort="status" label="Status" />
            <SortHeader query={query} sort="lastLogin" label="Last login" />
            <SortHeader query={query} sort="created" label="Created" />
            <th class="actions">Actions</th>
          </tr>
        </thead>
        {pastEnd
          ? ""
          : rows.map((i) => (
              <IntegrationRow
                integration={i}
                sessions={sessionsOf(i.id)}
                traffic={trafficOf?.(i.id)}
                csrfToken={csrfToken}
                role={roleOf?.(i)}
                open={openIds?.has(i.id)}
                help={openIds?.has(i.id) ? helpOf?.(i) : undefined}
              />
            ))}
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
    </div>
  );
}
