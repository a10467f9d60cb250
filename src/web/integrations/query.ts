import {
  integrationStatuses,
  integrationTypeInfo,
  integrationTypes,
  isIntegrationType,
  listSorts,
  type IntegrationStatus,
  type ListSort,
} from "../../core/types.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { field, safeNext } from "../../lib/http.ts";
import { pageSizes, type TableQuery } from "../../../views/partials/integration-table.tsx";

/** parseListQuery: the list's filters, order, page and size as typed in the URL, each checked. */
export function parseListQuery(
  query: Record<string, string | undefined>,
): TableQuery & { status?: IntegrationStatus; page: number; pageSize?: number } {
  const type = isIntegrationType(query.type) ? query.type : undefined;
  const status = (integrationStatuses as readonly string[]).includes(query.status ?? "")
    ? (query.status as IntegrationStatus)
    : undefined;
  const page = Number.parseInt(query.page ?? "1", 10);
  const sort = (listSorts as readonly string[]).includes(query.sort ?? "") ? (query.sort as ListSort) : undefined;
  const dir = query.dir === "asc" || query.dir === "desc" ? query.dir : undefined;
  const size = pageSizes.includes(Number(query.size)) ? Number(query.size) : undefined;
  return {
    q: query.q?.slice(0, 128) || undefined,
    type,
    status,
    page: Number.isFinite(page) && page > 0 ? page : 1,
    sort,
    dir,
    size,
    pageSize: size,
  };
}

/**
 * listReturn: where a no-JS action goes back to: the list as the admin left it (filters, sort, page),
 * from the form's `back` field or the Referer; anything else is the plain list.
 */
export function listReturn(request: Request, body?: unknown): string {
  const candidates = [field(body, "back"), request.headers.get("referer") ?? undefined];
  for (const c of candidates) {
    if (!c) continue;
    try {
      const u = new URL(c, "http://x");
      if (u.pathname === "/integrations" && (u.host === "x" || u.host === new URL(request.url).host))
        return safeNext(u.pathname + u.search);
    } catch {
      // not a URL: ignored
    }
  }
  return "/integrations";
}

/** parseId: an integration id from a path (404 for anything that is not one). */
export function parseId(raw: string): number {
  const id = Number(raw);
  if (!Number.isSafeInteger(id) || id <= 0) throw new NotFoundError("integration");
  return id;
}

/** parseFilterList: topic filters typed space- or comma-separated; absent means unchanged. */
export function parseFilterList(text: string | undefined): string[] | undefined {
  return text === undefined
    ? undefined
    : text
        .split(/[\s,]+/)
        .filter(Boolean)
        .slice(0, 100);
}

/** typeList: "MQTT, OPC UA, HTTP or VRPC", from the one definition of the types. */
export const typeList = ((labels: string[]) => `${labels.slice(0, -1).join(", ")} or ${labels.at(-1)}`)(
  integrationTypes.map((t) => integrationTypeInfo[t].label),
);
