import type { Core } from "../core/index.ts";
import { isIntegrationType } from "../core/types.ts";
import { ActivityPage } from "../../views/pages/activity.tsx";
import { IntegrationTable } from "../../views/partials/integration-table.tsx";
import { OnboardingPanel } from "../../views/partials/onboarding-panel.tsx";

/**
 * renderProbe: renders what the admin pages show of a database, as they would, and throws where a
 * page would answer 500: every integration's row (the list's table, 200 rows a page), the onboarding
 * panel and the activity log. `gatehouse restore` runs it on the checked copy before it becomes the
 * live database: a value the schema admits but a page cannot show (a date out of range) refuses the
 * backup instead of breaking /integrations on every request after the restore.
 */
export function renderProbe(core: Core): void {
  for (const id of core.credentials.ids()) {
    const i = core.credentials.peek(id)!;
    if (!isIntegrationType(i.type))
      throw new Error(
        `integration ${JSON.stringify(i.username.slice(0, 64))} has type ${JSON.stringify(String(i.type).slice(0, 32))}, which this release does not know`,
      );
  }
  const admin = { username: "probe", csrfToken: "probe" };
  // the list's table as its pages show it, 200 rows at a time, from one pass over the fleet
  const pageSize = 200;
  const all = core.credentials.all();
  const pages = Math.max(1, Math.ceil(all.length / pageSize));
  for (let page = 1; page <= pages; page++) {
    String(
      <IntegrationTable
        rows={all.slice((page - 1) * pageSize, page * pageSize)}
        total={all.length}
        page={page}
        pages={pages}
        query={{ size: pageSize }}
        sessionsOf={() => []}
        csrfToken={admin.csrfToken}
      />,
    );
  }
  String(
    <OnboardingPanel
      status={core.onboarding.status()}
      requests={core.onboarding.list()}
      csrfToken={admin.csrfToken}
      now={Date.now()}
    />,
  );
  String(<ActivityPage admin={admin} rows={core.activity.list({ limit: 500 })} query={{}} />);
}
