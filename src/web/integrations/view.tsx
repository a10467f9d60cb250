import type { Core } from "../../core/index.ts";
import type { Integration } from "../../core/types.ts";
import type { IntegrationNote } from "../../lib/pages.ts";
import { IntegrationsPage } from "../../../views/pages/integrations.tsx";
import { OnboardingPanel } from "../../../views/partials/onboarding-panel.tsx";
import { IntegrationRow, type RoleInfo, type RowProps } from "../../../views/partials/integration-row.tsx";
import type { SummaryCounts } from "../../../views/partials/summary.tsx";
import { adminOf } from "../auth.tsx";
import { parseListQuery } from "./query.ts";

/** failedLoginsShown: how many failed logins the page lists (the README promises the last 200). */
export const failedLoginsShown = 200;

/**
 * createListView: what the integrations routes render with: a row as it is now, the list page for a
 * query, the summary counts. `describe` is what the parts add to a row (a VRPC agent's role).
 */
export function createListView(core: Core, describe: (i: Integration) => IntegrationNote | undefined) {
  const { credentials, sessions } = core;
  const summaryCounts = (): SummaryCounts => {
    const byType = Object.fromEntries(
      Object.entries(credentials.countByType()).map(([t, total]) => [t, { total, online: 0 }]),
    ) as SummaryCounts["byType"];
    for (const id of sessions.onlineIds()) {
      const i = credentials.peek(id);
      if (i) byType[i.type].online++;
    }
    const recent = core.loginLog.recent(failedLoginsShown);
    const hourAgo = Date.now() - 3_600_000;
    const failedLastHour = recent.filter((f) => f.at >= hourAgo).length;
    return { byType, failedLastHour, capped: failedLastHour === failedLoginsShown };
  };
  const sessionsOf = (id: number) => sessions.list({ integrationId: id });
  /** roleOf: what the parts say of an integration (a VRPC agent's role, a refused announcement) */
  const roleOf = (i: Integration): RoleInfo | undefined => describe(i);

  const row = (
    request: Request,
    integration: Integration,
    extra: Omit<RowProps, "integration" | "sessions" | "csrfToken"> = {},
  ) => (
    <IntegrationRow
      integration={integration}
      sessions={sessionsOf(integration.id)}
      csrfToken={adminOf(request).csrfToken}
      baseUrl={new URL(request.url).origin}
      role={roleOf(integration)}
      {...extra}
    />
  );

  /** listPage: the query as typed in the URL and the page of integrations it selects. */
  const listPage = (query: Record<string, string | undefined>) => {
    const q = parseListQuery(query);
    return { q, result: credentials.list(q, sessions.onlineIds()) };
  };

  const fullPage = (
    request: Request,
    query: Record<string, string | undefined>,
    panel?: JSX.Element,
    flash?: string,
  ) => {
    const { q, result } = listPage(query);
    return (
      <IntegrationsPage
        admin={adminOf(request)}
        rows={result.rows}
        total={result.total}
        page={result.page}
        pages={result.pages}
        query={q}
        sessionsOf={sessionsOf}
        csrfToken={adminOf(request).csrfToken}
        baseUrl={new URL(request.url).origin}
        roleOf={roleOf}
        failedLogins={core.loginLog.recent(failedLoginsShown)}
        summary={summaryCounts()}
        onboarding={
          <OnboardingPanel
            status={core.onboarding.status()}
            requests={core.onboarding.list()}
            csrfToken={adminOf(request).csrfToken}
            now={Date.now()}
          />
        }
        panel={panel}
        flash={flash}
      />
    );
  };

  return { summaryCounts, sessionsOf, roleOf, row, listPage, fullPage };
}

export type ListView = ReturnType<typeof createListView>;
