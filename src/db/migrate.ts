import type { MigrationMeta } from "drizzle-orm/migrator";
import type { Db } from "./client.ts";
import { applyMigrations } from "./drizzle-internals.ts";
import journal from "../../drizzle/meta/_journal.json";
// Each migration is imported as text so the compiled binary carries it (no runtime file reads).
// A test checks that every journal entry below has its file here.
import m0000 from "../../drizzle/0000_init.sql" with { type: "text" };
import m0001 from "../../drizzle/0001_deny_filters.sql" with { type: "text" };
import m0002 from "../../drizzle/0002_activity_onboarding.sql" with { type: "text" };
import m0003 from "../../drizzle/0003_settings.sql" with { type: "text" };
import m0004 from "../../drizzle/0004_uplinks.sql" with { type: "text" };
import m0005 from "../../drizzle/0005_bans.sql" with { type: "text" };
import m0006 from "../../drizzle/0006_admin_security.sql" with { type: "text" };
import m0007 from "../../drizzle/0007_login_origin_admin_clients.sql" with { type: "text" };
import m0008 from "../../drizzle/0008_api_token_role.sql" with { type: "text" };

/** embeddedMigrations: drizzle-kit output, keyed by journal tag. */
export const embeddedMigrations: Record<string, string> = {
  "0000_init": m0000,
  "0001_deny_filters": m0001,
  "0002_activity_onboarding": m0002,
  "0003_settings": m0003,
  "0004_uplinks": m0004,
  "0005_bans": m0005,
  "0006_admin_security": m0006,
  "0007_login_origin_admin_clients": m0007,
  "0008_api_token_role": m0008,
};

/** loadMigrations: the same MigrationMeta drizzle's readMigrationFiles builds, from embedded text. */
export function loadMigrations(): MigrationMeta[] {
  return journal.entries.map((entry) => {
    const sqlText = embeddedMigrations[entry.tag];
    if (sqlText === undefined) throw new Error(`migration ${entry.tag} is not embedded in src/db/migrate.ts`);
    return {
      sql: sqlText.split("--> statement-breakpoint"),
      bps: entry.breakpoints,
      folderMillis: entry.when,
      hash: new Bun.CryptoHasher("sha256").update(sqlText).digest("hex"),
    };
  });
}

/**
 * migrate: applies pending migrations in one transaction (drizzle's own bookkeeping table). A database
 * that has them all is only read: drizzle's migrator always runs a `CREATE TABLE IF NOT EXISTS` and a
 * transaction, which counts as a change to every other connection (PRAGMA data_version), so each CLI
 * verb, even `list`, made the running appliance reload every integration.
 */
export function migrate(db: Db): void {
  const migrations = loadMigrations();
  if (isCurrent(db, migrations)) return;
  applyMigrations(db, migrations);
}

/** isCurrent: drizzle's own test (the last recorded timestamp is not older than any migration), read-only. */
function isCurrent(db: Db, migrations: MigrationMeta[]): boolean {
  const sqlite = db.$client;
  const table = sqlite
    .query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'")
    .get();
  if (!table) return false;
  const last = sqlite.query("SELECT created_at FROM __drizzle_migrations ORDER BY created_at DESC LIMIT 1").get() as {
    created_at: unknown;
  } | null;
  if (!last) return false;
  return migrations.every((m) => Number(last.created_at) >= m.folderMillis);
}
