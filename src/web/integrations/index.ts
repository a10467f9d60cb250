import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import type { Integration } from "../../core/types.ts";
import type { IntegrationNote } from "../../lib/pages.ts";
import type { OneTimeSecrets } from "../once.tsx";
import { addRoutes } from "./add.tsx";
import { listRoutes } from "./list.tsx";
import { rowRoutes } from "./rows.tsx";
import { bulkRoutes } from "./bulk.tsx";
import { createListView, type HelpSource } from "./view.tsx";

export { eventStream } from "./events.ts";
export { listReturn, parseFilterList, parseId, parseListQuery } from "./query.ts";
export { retryNotesFor } from "./view.tsx";

/**
 * integrationPages: the Integrations page: the list, the add form, each row's actions. Each action
 * answers htmx with one row (or a fragment), a browser without JavaScript with a page.
 */
export function integrationPages(
  core: Core,
  secrets: OneTimeSecrets,
  describe: (i: Integration) => IntegrationNote | undefined,
  help?: HelpSource,
) {
  const view = createListView(core, describe, help);
  return new Elysia({ name: "integration-pages" })
    .use(listRoutes(core, view))
    .use(bulkRoutes(core))
    .use(addRoutes(core, view, secrets))
    .use(rowRoutes(core, view, secrets));
}
