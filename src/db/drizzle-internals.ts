import type { MigrationMeta } from "drizzle-orm/migrator";
import type { Db } from "./client.ts";

/**
 * The one reach into drizzle-orm's internals (pinned 0.45.4). drizzle's public `migrate()` reads the
 * migrations folder from disk; the compiled binary has no such folder, so the embedded migrations
 * go to the dialect's migrator directly, the same call the public function makes after reading.
 */
const pinned = "drizzle-orm 0.45.4";

interface DialectMigrator {
  dialect: { migrate(migrations: MigrationMeta[], session: unknown, config: object): void };
  session: unknown;
}

function assertShape(db: unknown): asserts db is DialectMigrator {
  const d = db as Partial<DialectMigrator> | undefined;
  if (typeof d?.dialect?.migrate !== "function" || d.session === undefined) {
    throw new Error(
      `drizzle's internal dialect.migrate(migrations, session) is missing: written against ${pinned}; check src/db/drizzle-internals.ts after an upgrade`,
    );
  }
}

/** applyMigrations: drizzle's own migrator with its bookkeeping table, fed from memory. */
export function applyMigrations(db: Db, migrations: MigrationMeta[]): void {
  assertShape(db);
  db.dialect.migrate(migrations, db.session, {});
}
