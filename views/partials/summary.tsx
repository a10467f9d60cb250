import type { IntegrationType } from "../../src/core/types.ts";
import { typeLabels } from "../components/type-label.tsx";

export interface SummaryCounts {
  byType: Record<IntegrationType, { total: number; online: number }>;
  /** failed logins in the last hour (onboarding requests are not failures) */
  failedLastHour: number;
}

/**
 * Summary: the dashboard line at the top of the Integrations page: online / total per type and
 * failed logins in the last hour; every number links to the list filtered to it. Pushed like the table.
 */
export function Summary({ counts }: { counts: SummaryCounts }) {
  return (
    <section
      id="summary"
      class="summary"
      aria-label="Summary"
      hx-get="/integrations/summary"
      hx-trigger="gatehouse:changed from:body"
      hx-swap="outerHTML"
    >
      {(Object.keys(counts.byType) as IntegrationType[]).map((t) => (
        <div class="stat">
          <span class="stat-label" safe>
            {typeLabels[t]}
          </span>{" "}
          <span class="stat-value">
            <a href={`/integrations?type=${t}&status=online`} title={`${typeLabels[t]} integrations online now`}>
              {counts.byType[t].online}
            </a>
            {" / "}
            <a href={`/integrations?type=${t}`} title={`all ${typeLabels[t]} integrations`}>
              {counts.byType[t].total}
            </a>
          </span>{" "}
          <span class="stat-label">online</span>
        </div>
      ))}
      <div class={counts.failedLastHour ? "stat bad" : "stat"}>
        <span class="stat-label">Failed logins</span>{" "}
        <span class="stat-value">
          <a href="#failed-logins" title="failed logins in the last hour">
            {counts.failedLastHour}
          </a>
        </span>{" "}
        <span class="stat-label">last hour</span>
      </div>
    </section>
  );
}
