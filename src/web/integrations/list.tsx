import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import { htmlResponse, isHtmx, redirect } from "../../lib/http.ts";
import { FailedLogins } from "../../../views/partials/failed-logins.tsx";
import { LastLoginCell, StatusCell } from "../../../views/partials/integration-row.tsx";
import { IntegrationTable } from "../../../views/partials/integration-table.tsx";
import { Summary } from "../../../views/partials/summary.tsx";
import { adminOf } from "../auth.tsx";
import { bulkNotice } from "./bulk.tsx";
import { failedLoginsShown, type ListView } from "./view.tsx";

/** listRoutes: the list (a page, or its table for htmx), its summary, failed logins and live cells. */
export function listRoutes(core: Core, view: ListView) {
  const { credentials } = core;
  const { sessionsOf, tableProps, fullPage, summaryCounts } = view;
  return new Elysia({ name: "integration-list" })
    .get("/", () => redirect("/integrations", 302))
    .get("/integrations", ({ request, query }) => {
      if (isHtmx(request) && request.headers.get("hx-target") === "integration-table")
        return <IntegrationTable {...tableProps(request, query)} />;
      return fullPage(request, query, undefined, bulkNotice(query));
    })
    .get("/integrations/summary", () => <Summary counts={summaryCounts()} />)
    .get("/integrations/failed-logins", ({ request, query }) => (
      <FailedLogins
        groups={core.loginLog.grouped(failedLoginsShown)}
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
      adminOf(request);
      let out = "";
      for (const id of ids) {
        const i = credentials.get(id);
        if (!i) continue;
        out += `<template>${<StatusCell integration={i} sessions={sessionsOf(id)} traffic={core.sessions.trafficOf(id)} oob />}${<LastLoginCell integration={i} oob />}</template>`;
      }
      return htmlResponse(out);
    });
}
