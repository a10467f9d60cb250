import type { Db } from "../../db/client.ts";
import type { EventBus } from "../events.ts";
import { aclKey, publicView, sameRow, type IntegrationIndex } from "./index-memory.ts";
import { allRows, rowsById, versions } from "./rows.ts";

/**
 * reconcile: brings memory in line with the database, emitting the same events as a change made in
 * this process (so a CLI write kicks sessions exactly like the page). `initial` fills memory without
 * events. `changed(id)` is told about every id whose row changed.
 *
 * Incremental: it reads every integration's id and updated_at (two integers a row, ~10 ms for 100 000)
 * and loads only the rows that are new or whose updated_at moved, and forgets those gone. Every write
 * of a row moves its updated_at to max(now, previous + 1) in the same statement (credentials.ts
 * `#store`), so a change by another process is never hidden by a clock that reads the same
 * millisecond. The two reads are one read transaction: one snapshot of the database.
 */
export function reconcile(
  db: Db,
  index: IntegrationIndex,
  events: EventBus,
  opts: { initial: boolean; changed: (id: number) => void; pendingLogin: (id: number) => number | undefined },
): void {
  const { ids, rows } = db.$client.transaction(() => {
    const { ids, updatedAts } = versions(db);
    const stale: number[] = [];
    for (let k = 0; k < ids.length; k++) {
      const r = index.get(ids[k]!);
      if (!r || r.updatedAt !== updatedAts[k]) stale.push(ids[k]!);
    }
    if (stale.length <= ids.length / 4) return { ids, rows: rowsById(db, stale) };
    // most of them (the first load, a large import): one scan beats thousands of lookups
    const wanted = new Set(stale);
    return { ids, rows: allRows(db).filter((row) => wanted.has(row.id)) };
  })();
  for (const row of rows) {
    const before = index.get(row.id);
    if (before && sameRow(before, row)) continue;
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
  // Every id the database has is in memory now: more in memory means some were removed.
  if (index.size <= ids.length) return;
  const present = new Set(ids);
  for (const r of [...index.values()]) {
    if (present.has(r.id)) continue;
    index.delete(r);
    opts.changed(r.id);
    events.emit("integration.deleted", { integration: publicView(r) });
  }
}
