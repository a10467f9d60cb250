import type { Db } from "../../db/client.ts";
import type { IntegrationRow } from "../../db/schema.ts";
import type { EventBus } from "../events.ts";
import { aclKey, publicView, sameRow, type IntegrationIndex, type LastLogin } from "./index-memory.ts";
import { allRows, rowsById, versions } from "./rows.ts";

/**
 * reconcile: brings memory in line with the database, emitting the same events as a change made in
 * this process (so a CLI write kicks sessions exactly like the page). `initial` fills memory without
 * events. `changed(id)` is told about every id whose row changed.
 *
 * Incremental: it reads every integration's id and updated_at (two integers a row: ~60 ms for 100 000
 * on the 2-core test machine) and loads only the rows that are new or whose updated_at moved, and
 * forgets those gone. Every write of a row moves its updated_at to max(now, previous + 1) in the same
 * statement (credentials.ts `#store`), so a change by another process is never hidden by a clock that
 * reads the same millisecond. A change made by hand (sqlite3) must move updated_at too to be seen.
 */
export function reconcile(
  db: Db,
  index: IntegrationIndex,
  events: EventBus,
  opts: { initial: boolean; changed: (id: number) => void; pendingLogin: (id: number) => LastLogin | undefined },
): void | Promise<void> {
  const { ids, updatedAts } = versions(db);
  const stale: number[] = [];
  let newest = 0;
  for (let k = 0; k < ids.length; k++) {
    const r = index.get(ids[k]!);
    if (!r || r.updatedAt !== updatedAts[k]) stale.push(ids[k]!);
    newest = Math.max(newest, ids[k]!);
  }
  if (opts.initial || stale.length <= reconcileSlice) {
    // the first load, or a few rows: at once (most of them: one scan beats thousands of lookups)
    const rows =
      stale.length > ids.length / 4
        ? (() => {
            const wanted = new Set(stale);
            return allRows(db).filter((row) => wanted.has(row.id));
          })()
        : rowsById(db, stale);
    apply(rows, index, events, opts);
    removeGone(ids, newest, index, events, opts);
    return;
  }
  // Many rows (another process imported 100 000): read and applied a slice at a time, the event loop
  // free in between (one pass held it for seconds: every listener and /healthz waited). A slice reads
  // its rows as they are then (newer than the list of ids is fine). A login waits for the whole of it
  // (ExternalSync.fresh); what this process writes meanwhile is newer and kept.
  return (async () => {
    for (let i = 0; i < stale.length; i += reconcileSlice) {
      apply(rowsById(db, stale.slice(i, i + reconcileSlice)), index, events, opts);
      await new Promise((resolve) => setImmediate(resolve));
    }
    removeGone(ids, newest, index, events, opts);
  })();
}

/** reconcileSlice: rows applied in one turn of the event loop (~20-30 ms of work). */
export const reconcileSlice = 2000;

type Options = Parameters<typeof reconcile>[3];

function apply(rows: IntegrationRow[], index: IntegrationIndex, events: EventBus, opts: Options): void {
  for (const row of rows) {
    const before = index.get(row.id);
    // memory holds a newer write of this process (made while slices were applied): it stays
    if (before && (before.updatedAt > row.updatedAt || sameRow(before, row))) continue;
    const r = index.put(row, opts.pendingLogin(row.id));
    opts.changed(row.id);
    if (opts.initial) continue;
    const integration = publicView(r);
    if (!before) {
      events.emit("integration.created", { integration });
      continue;
    }
    if (before.active !== r.active) {
      events.emit(r.active ? "integration.activated" : "integration.deactivated", { integration });
    }
    const passwordChanged = before.passwordHash !== r.passwordHash;
    const aclChanged = aclKey(before) !== aclKey(r);
    if (
      passwordChanged ||
      aclChanged ||
      before.username !== r.username ||
      before.description !== r.description ||
      before.type !== r.type ||
      before.updatedAt !== r.updatedAt
    ) {
      events.emit("integration.updated", { integration, passwordChanged, aclChanged });
    }
  }
}

/**
 * removeGone: what memory holds and the snapshot `ids` does not was removed. Ids above the snapshot's
 * newest were created since (by this process, while slices were applied): they stay.
 */
function removeGone(ids: number[], newest: number, index: IntegrationIndex, events: EventBus, opts: Options): void {
  if (index.size <= ids.length) return; // every id the database had is in memory: nothing more
  const present = new Set(ids);
  for (const r of [...index.values()]) {
    if (present.has(r.id) || r.id > newest) continue;
    index.delete(r);
    opts.changed(r.id);
    events.emit("integration.deleted", { integration: publicView(r) });
  }
}
