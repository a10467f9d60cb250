import { Layout, type LayoutAdmin } from "../layouts/base.tsx";
import { attr } from "../components/attr.ts";
import { integrationStatuses } from "../../src/core/types.ts";
import { typeLabels } from "../components/type-label.tsx";
import { IntegrationTable, pageSizes, type TableProps } from "../partials/integration-table.tsx";
import type { IntegrationType } from "../../src/core/types.ts";
import type { FailedLoginGroup } from "../../src/core/login-log.ts";
import { FailedLogins } from "../partials/failed-logins.tsx";
import { Summary, type SummaryCounts } from "../partials/summary.tsx";

export interface IntegrationsPageProps extends TableProps {
  admin: LayoutAdmin;
  /** the smart onboarding panel (window and pending requests) */
  onboarding: JSX.Element;
  /** the add form or the one-time password panel, when the page is rendered around one */
  panel?: JSX.Element;
  flash?: string;
  failedLogins: FailedLoginGroup[];
  summary: SummaryCounts;
}

/**
 * IntegrationsPage: dense on purpose: a heading line with the counts, onboarding as one line while
 * closed, the filters, then one line per integration (at 1366×768 at least 15 rows show at once).
 */
export function IntegrationsPage(props: IntegrationsPageProps) {
  const { query } = props;
  return (
    <Layout title="Integrations" admin={props.admin} active="/integrations">
      <div class="page-head">
        <h1>Integrations</h1>
        <Summary counts={props.summary} />
        <a
          class="button add"
          href="/integrations/new"
          hx-get="/integrations/new"
          hx-target="#panel"
          hx-swap="innerHTML"
        >
          Add integration
        </a>
      </div>
      {props.flash ? (
        <p class="flash" role="status" safe>
          {props.flash}
        </p>
      ) : (
        ""
      )}
      {/* panel and onboarding are rendered JSX from our own partials, already escaped */}
      <div id="panel">{(props.panel ?? "") as "safe"}</div>
      <div
        id="onboarding"
        hx-get="/onboarding/panel"
        hx-trigger="every 2s, gatehouse:changed from:body"
        hx-swap="innerHTML"
        data-keep-while-editing="true"
      >
        {props.onboarding as "safe"}
      </div>
      <form
        class="toolbar"
        method="get"
        action="/integrations"
        hx-get="/integrations"
        hx-target="#integration-table"
        hx-swap="outerHTML"
        hx-push-url="true"
        hx-trigger="input changed delay:300ms from:input, change from:select, submit"
      >
        <input
          type="search"
          name="q"
          value={attr(query.q ?? "")}
          placeholder="Search username, description, client id, address"
          aria-label="Search by username, description, client id or address"
        />
        <select name="type" aria-label="Type">
          <option value="">All types</option>
          {(Object.keys(typeLabels) as IntegrationType[]).map((t) => (
            <option value={t} selected={query.type === t} safe>
              {typeLabels[t]}
            </option>
          ))}
        </select>
        <select name="status" aria-label="Status">
          <option value="">Any status</option>
          {integrationStatuses.map((s) => (
            <option value={s} selected={query.status === s}>
              {s}
            </option>
          ))}
        </select>
        {/* the chosen order survives a new search */}
        {query.sort ? <input type="hidden" name="sort" value={attr(query.sort)} /> : ""}
        {query.dir ? <input type="hidden" name="dir" value={attr(query.dir)} /> : ""}
        <select name="size" aria-label="Rows per page">
          {pageSizes.map((n) => (
            <option value={String(n)} selected={(query.size ?? 25) === n} safe>
              {`${n} per page`}
            </option>
          ))}
        </select>
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      <IntegrationTable {...props} />
      <FailedLogins groups={props.failedLogins} csrfToken={props.admin.csrfToken} />
    </Layout>
  );
}
