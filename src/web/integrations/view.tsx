import type { Core } from "../../core/index.ts";
import { integrationTypes, type Integration, type IntegrationType } from "../../core/types.ts";
import type { ConnectHelp, HelpContext, IntegrationNote } from "../../lib/pages.ts";
import { IntegrationsPage } from "../../../views/pages/integrations.tsx";
import { OnboardingPanel } from "../../../views/partials/onboarding-panel.tsx";
import { IntegrationRow, type RoleInfo, type RowProps } from "../../../views/partials/integration-row.tsx";
import type { SummaryCounts } from "../../../views/partials/summary.tsx";
import { adminOf } from "../auth.tsx";
import { parseListQuery } from "./query.ts";

/** failedLoginsShown: how many failed-login groups the page lists (the log keeps as many). */
export const failedLoginsShown = 200;

/** HelpSource: how a device of a type connects, from its part (web/ names no protocol). */
export type HelpSource = (type: IntegrationType, context: Omit<HelpContext, "port">) => ConnectHelp | undefined;

/** genericHelp: for a type whose part says nothing (its listener is off): what the core knows. */
const genericHelp = (): ConnectHelp => ({
  username: "The user name the device presents when it logs in, with this password.",
  urls: [],
  examples: [],
});

/** retryNotesFor: what each part's clients must do to come in after an onboarding approval. */
export function retryNotesFor(help: HelpSource, request: Request): string[] {
  const url = new URL(request.url);
  return integrationTypes.flatMap((t) => {
    const note = help(t, { host: url.hostname, baseUrl: url.origin, username: "" })?.retry;
    return note ? [note] : [];
  });
}

/**
 * createListView: what the integrations routes render with: a row as it is now, the list page for a
 * query, the summary counts. `describe` is what the parts add to a row (a VRPC agent's role); `help`
 * how a device of each type connects (the Add form, a row's detail).
 */
export function createListView(
  core: Core,
  describe: (i: Integration) => IntegrationNote | undefined,
  help: HelpSource = () => undefined,
) {
  const { credentials, sessions } = core;
  const summaryCounts = (): SummaryCounts => {
    const byType = Object.fromEntries(
      Object.entries(credentials.countByType()).map(([t, total]) => [t, { total, online: 0 }]),
    ) as SummaryCounts["byType"];
    for (const id of sessions.onlineIds()) {
      const i = credentials.peek(id);
      if (i) byType[i.type].online++;
    }
    return { byType, failedLastHour: core.loginLog.lastHour() };
  };
  const sessionsOf = (id: number) => sessions.list({ integrationId: id });
  /** roleOf: what the parts say of an integration (a VRPC agent's role, a refused announcement) */
  const roleOf = (i: Integration): RoleInfo | undefined => describe(i);
  /** helpFor: a type's connection help with this username, as the admin reaches the appliance */
  const helpFor = (request: Request, type: IntegrationType, username: string): ConnectHelp => {
    const url = new URL(request.url);
    return help(type, { host: url.hostname, baseUrl: url.origin, username }) ?? genericHelp();
  };

  const retryNotes = (request: Request) => retryNotesFor(help, request);

  const row = (
    request: Request,
    integration: Integration,
    extra: Omit<RowProps, "integration" | "sessions" | "csrfToken"> = {},
  ) => {
    const open = extra.open || extra.secret !== undefined;
    return (
      <IntegrationRow
        integration={integration}
        sessions={sessionsOf(integration.id)}
        traffic={sessions.trafficOf(integration.id)}
        csrfToken={adminOf(request).csrfToken}
        role={roleOf(integration)}
        help={open ? helpFor(request, integration.type, integration.username) : undefined}
        {...extra}
      />
    );
  };

  /**
   * listPage: the query as typed in the URL and the page of integrations it selects; the search text
   * also finds integrations by the client id or address of a live session.
   */
  const listPage = (query: Record<string, string | undefined>) => {
    const q = parseListQuery(query);
    const live = q.q ? sessions.matching(q.q) : undefined;
    return { q, result: credentials.list(q, sessions.onlineIds(), live) };
  };

  /** openIdsOf: rows whose detail the page has open (the live refresh asks with `open=1,5`), at most a page's worth. */
  const openIdsOf = (query: Record<string, string | undefined>) =>
    new Set(
      (query.open ?? "")
        .split(",")
        .slice(0, 200)
        .map(Number)
        .filter((n) => Number.isSafeInteger(n) && n > 0),
    );

  /** tableProps: what the table needs for a query (the page and its htmx refresh alike). */
  const tableProps = (request: Request, query: Record<string, string | undefined>) => {
    const { q, result } = listPage(query);
    return {
      rows: result.rows,
      total: result.total,
      page: result.page,
      pages: result.pages,
      pastEnd: result.pastEnd,
      query: q,
      sessionsOf,
      trafficOf: (id: number) => sessions.trafficOf(id),
      csrfToken: adminOf(request).csrfToken,
      roleOf,
      helpOf: (i: Integration) => helpFor(request, i.type, i.username),
      openIds: openIdsOf(query),
    };
  };

  const fullPage = (
    request: Request,
    query: Record<string, string | undefined>,
    panel?: JSX.Element,
    flash?: string,
  ) => (
    <IntegrationsPage
      admin={adminOf(request)}
      {...tableProps(request, query)}
      failedLogins={core.loginLog.grouped(failedLoginsShown)}
      summary={summaryCounts()}
      onboarding={
        <OnboardingPanel
          status={core.onboarding.status()}
          requests={core.onboarding.list()}
          csrfToken={adminOf(request).csrfToken}
          now={Date.now()}
          retryNotes={retryNotes(request)}
        />
      }
      panel={panel}
      flash={flash}
    />
  );

  return { summaryCounts, sessionsOf, roleOf, row, listPage, tableProps, fullPage, helpFor, retryNotes };
}

export type ListView = ReturnType<typeof createListView>;
