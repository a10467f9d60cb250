import type { Db } from "../../db/client.ts";
import { integrations } from "../../db/schema.ts";
import type { EventBus } from "../events.ts";
import { aclKey, publicView, sameRow, type IntegrationIndex, type LastLogin } from "./index-memory.ts";

/**
 * reconcile: reads every integration and brings memory in line with the database, emitting the same
 * events as a change made in this process (so a CLI write kicks sessions exactly like the page).
 * `initial` fills memory without events. `changed(id)` is told about every id whose row changed.
 */
export function reconcile(
  db: Db,
  index: IntegrationIndex,
  events: EventBus,
  opts: { initial: boolean; changed: (id: number) => void; pendingLogin: (id: number) => LastLogin | undefined },
): void {
  const rows = db.select().from(integrations).all();
  const seen = new Set<number>();
  for (const row of rows) {
    seen.add(row.id);
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
  for (const r of [...index.values()]) {
    if (seen.has(r.id)) continue;
    index.delete(r);
    opts.changed(r.id);
    events.emit("integration.deleted", { integration: publicView(r) });
  }
}
