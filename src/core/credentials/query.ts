import {
  defaultDir,
  statusOf,
  type Integration,
  type IntegrationStatus,
  type IntegrationType,
  type ListSort,
} from "../types.ts";
import { publicView, type StoredIntegration } from "./index-memory.ts";

export interface ListQuery {
  q?: string;
  type?: IntegrationType;
  /** online / offline need the live session set; deactivated is a column. */
  status?: IntegrationStatus;
  page?: number;
  pageSize?: number;
  sort?: ListSort;
  dir?: "asc" | "desc";
}

export interface ListPage {
  rows: Integration[];
  total: number;
  page: number;
  pageSize: number;
  pages: number;
  /** the page asked for, when it was past the last one */
  pastEnd?: number;
}

const statusRank: Record<IntegrationStatus, number> = { online: 0, offline: 1, deactivated: 2 };

/** compareBy: a column's order, ties broken by newest first so pages are stable. */
function compareBy(
  sort: ListSort,
  onlineIds: ReadonlySet<number>,
): (a: StoredIntegration, b: StoredIntegration) => number {
  switch (sort) {
    case "username":
      return (a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0);
    case "type":
      return (a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0);
    case "status":
      return (a, b) =>
        statusRank[statusOf(a.active, onlineIds.has(a.id))] - statusRank[statusOf(b.active, onlineIds.has(b.id))];
    case "lastLogin":
      // never logged in counts as oldest
      return (a, b) => (a.lastLoginAt ?? 0) - (b.lastLoginAt ?? 0);
    case "created":
      return (a, b) => a.id - b.id;
  }
}

/**
 * matchesText: does the search text occur (any case) in the username, the description, or the client id
 * or address of the last login?
 */
export function matchesText(r: StoredIntegration, q: string): boolean {
  return (
    r.username.toLowerCase().includes(q) ||
    (r.description !== "" && r.description.toLowerCase().includes(q)) ||
    (r.lastLoginClientId?.toLowerCase().includes(q) ?? false) ||
    (r.lastLoginRemote?.toLowerCase().includes(q) ?? false)
  );
}

/** matchingIntegrations: every integration the query's filters select, in no order. */
export function matchingIntegrations(
  all: Iterable<StoredIntegration>,
  query: ListQuery,
  onlineIds: ReadonlySet<number>,
  /** integrations a live session of which matches the text (its client id or address) */
  liveMatches: ReadonlySet<number> = new Set(),
): StoredIntegration[] {
  const q = query.q?.trim().toLowerCase();
  const matches: StoredIntegration[] = [];
  for (const r of all) {
    if (query.type && r.type !== query.type) continue;
    if (q && !matchesText(r, q) && !liveMatches.has(r.id)) continue;
    if (query.status && statusOf(r.active, onlineIds.has(r.id)) !== query.status) continue;
    matches.push(r);
  }
  return matches;
}

/**
 * listIntegrations: newest first unless sorted otherwise, filtered in memory (fast for 10 000+ rows, no
 * query per keystroke). A page past the last gives the last one, and `pastEnd` names the page that was
 * asked for, so the admin page can say so.
 */
export function listIntegrations(
  all: Iterable<StoredIntegration>,
  query: ListQuery,
  onlineIds: ReadonlySet<number>,
  liveMatches?: ReadonlySet<number>,
): ListPage {
  const pageSize = Math.min(Math.max(query.pageSize ?? 25, 1), 200);
  const matches = matchingIntegrations(all, query, onlineIds, liveMatches);
  const sort = query.sort ?? "created";
  const sign = (query.dir ?? defaultDir[sort]) === "asc" ? 1 : -1;
  const by = compareBy(sort, onlineIds);
  matches.sort((a, b) => sign * by(a, b) || b.id - a.id);
  const pages = Math.max(1, Math.ceil(matches.length / pageSize));
  const page = Math.min(Math.max(query.page ?? 1, 1), pages);
  const rows = matches.slice((page - 1) * pageSize, page * pageSize).map(publicView);
  const asked = query.page ?? 1;
  return { rows, total: matches.length, page, pageSize, pages, ...(asked > pages ? { pastEnd: asked } : {}) };
}

/** countByType: integrations per type, every type present. */
export function countByType(
  all: Iterable<{ type: IntegrationType }>,
  types: readonly IntegrationType[],
): Record<IntegrationType, number> {
  const counts = Object.fromEntries(types.map((t) => [t, 0])) as Record<IntegrationType, number>;
  for (const r of all) counts[r.type]++;
  return counts;
}
