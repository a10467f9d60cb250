import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import { htmlResponse, isHtmx, redirect } from "../../lib/http.ts";
import { FailedLogins } from "../../../views/partials/failed-logins.tsx";
import { LastLoginCell, StatusCell } from "../../../views/partials/integration-row.tsx";
import { IntegrationTable } from "../../../views/partials/integration-table.tsx";
import { Summary } from "../../../views/partials/summary.tsx";
import { adminOf } from "../auth.tsx";
import { failedLoginsShown, type ListView } from "./view.tsx";

/** listRoutes: the list (a page, or its table for htmx), its summary, failed logins and live cells. */
export function listRoutes(core: Core, view: ListView) {
  const { credentials } = core;
  const { sessionsOf, roleOf, listPage, fullPage, summaryCounts } = view;
  return new Elysia({ name: "integration-list" })
    .get("/", () => redirect("/integrations", 302))
    .get("/integrations", ({ request, query }) => {
      if (isHtmx(request) && request.headers.get("hx-target") === "integration-table") {
        const { q, result } = listPage(query);
        return (
          <IntegrationTable
            rows={result.rows}
            total={result.total}
            page={result.page}
            pages={result.pages}
            query={q}
            sessionsOf={sessionsOf}
            csrfToken={adminOf(request).csrfToken}
            baseUrl={new URL(request.url).origin}
            roleOf={roleOf}
          />
        );
      }
      return fullPage(request, query);
    })
    .get("/integrations/summary", () => <Summary counts={summaryCounts()} />)
    .get("/integrations/failed-logins", ({ request, query }) => (
      <FailedLogins
        entries={core.loginLog.recent(failedLoginsShown)}
        open={query.open === "1"}
        csrfToken={adminOf(request).csrfToken}
      />
    ))
    .get("/integrations/live", ({ request, query }) => {
      // Out-of-band swaps of the status and last-login cells of the rows on screen.
      const ids = (query.ids ?? "")
        .split(",")
        .slice(0, 200)
        .map(Number)
        .filter((n) => Number.isSafeInteger(n) && n > 0);
      const csrfToken = adminOf(request).csrfToken;
      let out = "";
      for (const id of ids) {
        const i = credentials.get(id);
        if (!i) continue;
        out += `<template>${<StatusCell integration={i} sessions={sessionsOf(id)} csrfToken={csrfToken} oob />}${<LastLoginCell integration={i} oob />}</template>`;
      }
      return htmlResponse(out);
    });
}
