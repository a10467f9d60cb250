import { AsyncLocalStorage } from "node:async_hooks";
import { and, desc, eq, like, lt, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { isPassing } from "../lib/errors.ts";
import { activity, type ActivityRow } from "../db/schema.ts";

// The activity and settings pages show these rows: views take the core's types, never the schema's.
export type { ActivityRow } from "../db/schema.ts";
import type { EventBus } from "./events.ts";

/** Actor: who a change is attributed to: `admin:<name>`, `token:<name>`, `cli`, `system`. */
export type Actor = string;

const actors = new AsyncLocalStorage<Actor>();

/** actAs: everything `fn` changes (synchronously or in its awaits) is attributed to `actor`. */
export function actAs<T>(actor: Actor, fn: () => T): T {
  return actors.run(actor, fn);
}

/** enterActor: the same for the rest of the current request (the web guard calls it once it knows who). */
export function enterActor(actor: Actor): void {
  actors.enterWith(actor);
}

export function currentActor(): Actor {
  return actors.getStore() ?? "system";
}

export interface ActivityQuery {
  action?: string;
  actor?: string;
  q?: string;
  before?: number;
  limit?: number;
}

/**
 * ActivityLog: every integration change, onboarding decision and kick, in the database, attributed to
 * who made it. Bounded: entries older than `maxAgeMs` and beyond `maxRows` are pruned as new ones come.
 * Changes another process made (reconciled under actor "external") are recorded by that process, not twice.
 */
export class ActivityLog {
  #inserted = 0;
  /** rows that met a locked database or a full disk, written at the next flush (bounded) */
  #pending: (typeof activity.$inferInsert)[] = [];

  constructor(
    private readonly db: Db,
    readonly opts: { maxAgeMs?: number; maxRows?: number; now?: () => number } = {},
  ) {}

  /** rows recorded inside `batch`, written together when it ends */
  #batch: (typeof activity.$inferInsert)[] | undefined;

  /**
   * batch: what `fn` records (a bulk change: one entry per integration) is written in one transaction
   * when it returns, instead of one transaction per entry.
   */
  batch<T>(fn: () => T): T {
    if (this.#batch) return fn();
    const rows: (typeof activity.$inferInsert)[] = [];
    this.#batch = rows;
    let result: T;
    try {
      result = fn();
    } finally {
      this.#batch = undefined;
    }
    // written after `fn` returned (a change that threw wrote nothing: its entries are dropped with it)
    this.#writeBatch(rows);
    return result;
  }

  #writeBatch(rows: (typeof activity.$inferInsert)[]): void {
    if (rows.length === 0) return;
    try {
      // one prepared statement in one transaction: drizzle's query building costs more than SQLite here
      // (10 000 entries: ~0.1 s instead of ~0.4 s on a 2-core machine)
      const c = activity;
      const insert = this.db.$client.prepare(
        `INSERT INTO activity (${c.at.name}, ${c.actor.name}, ${c.action.name}, ${c.subject.name}, ${c.detail.name}) VALUES (?, ?, ?, ?, ?)`,
      );
      this.db.$client.transaction(() => {
        for (const r of rows) insert.run(r.at, r.actor, r.action, r.subject ?? "", r.detail ?? "");
      })();
      this.#inserted += rows.length;
      this.prune(rows.at(-1)!.at);
    } catch (err) {
      if (!isPassing(err)) throw err;
      this.#pending.push(...rows.slice(0, Math.max(0, 10_000 - this.#pending.length)));
    }
  }

  record(action: string, subject: string, detail = "", actor: Actor = currentActor()): void {
    const at = this.opts.now?.() ?? Date.now();
    const row = {
      at,
      actor: actor.slice(0, 200),
      action,
      subject: subject.slice(0, 256),
      detail: detail.slice(0, 1024),
    };
    if (this.#batch) {
      this.#batch.push(row);
      return;
    }
    try {
      // A statement prepared once (bun:sqlite's cache): an import records one row per integration.
      this.db.$client
        .query("INSERT INTO activity (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)")
        .run(row.at, row.actor, row.action, row.subject, row.detail);
    } catch (err) {
      if (!isPassing(err)) throw err;
      if (this.#pending.length < 10_000) this.#pending.push(row); // a lock or a full disk: later
      return;
    }
    if (++this.#inserted % 500 === 1) this.prune(at);
  }

  /** waiting: entries that met a locked database or a full disk, not yet written */
  get waiting(): number {
    return this.#pending.length;
  }

  /** flush: rows that met a locked database or a full disk. */
  flush(): void {
    if (this.#pending.length === 0) return;
    try {
      this.db.transaction((tx) => {
        for (const row of this.#pending) tx.insert(activity).values(row).run();
      });
      this.#pending = [];
    } catch (err) {
      if (!isPassing(err)) throw err;
    }
  }

  prune(now = Date.now()): void {
    const maxAge = this.opts.maxAgeMs ?? 90 * 86_400_000;
    const maxRows = this.opts.maxRows ?? 100_000;
    this.db
      .delete(activity)
      .where(lt(activity.at, now - maxAge))
      .run();
    this.db.run(
      sql`DELETE FROM activity WHERE id <= (SELECT id FROM activity ORDER BY id DESC LIMIT 1 OFFSET ${maxRows})`,
    );
  }

  list(query: ActivityQuery = {}): ActivityRow[] {
    const where: SQL[] = [];
    if (query.action) where.push(like(activity.action, `${query.action.replace(/[%_]/g, "")}%`));
    if (query.actor) where.push(eq(activity.actor, query.actor));
    if (query.q)
      where.push(
        or(
          like(activity.subject, `%${query.q.replace(/[%_]/g, "")}%`),
          like(activity.detail, `%${query.q.replace(/[%_]/g, "")}%`),
        )!,
      );
    if (query.before) where.push(lt(activity.id, query.before));
    return this.db
      .select()
      .from(activity)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(activity.id))
      .limit(Math.min(Math.max(query.limit ?? 100, 1), 500))
      .all();
  }

  /** follow: records the core's events as they happen, attributed to the current actor. */
  follow(events: EventBus): void {
    // A change another process wrote (the CLI) is recorded by that process; its kicks here are ours.
    const ours = () => currentActor() !== "external";
    // an approved onboarding request is recorded once, as `onboarding.approved`
    events.on(
      "integration.created",
      ({ integration: i, via }) =>
        ours() && via === undefined && this.record("integration.created", i.username, `type ${i.type}`),
    );
    for (const name of ["integration.deleted", "integration.activated", "integration.deactivated"] as const) {
      events.on(name, ({ integration: i }) => ours() && this.record(name, i.username, `type ${i.type}`));
    }
    events.on(
      "integration.updated",
      ({ integration: i, passwordChanged, aclChanged }) =>
        ours() &&
        this.record(
          passwordChanged
            ? "integration.password-reset"
            : aclChanged
              ? "integration.permissions-changed"
              : "integration.updated",
          i.username,
        ),
    );
    events.on("session.kicked", ({ session: s, reason }) =>
      this.record("session.kicked", s.username, `${s.type} ${s.clientId ?? ""} from ${s.remote ?? "?"}: ${reason}`),
    );
  }
}
