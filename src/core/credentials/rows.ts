import type { Db } from "../../db/client.ts";
import type { IntegrationRow } from "../../db/schema.ts";
import type { IntegrationType } from "../types.ts";

/**
 * Raw statements for the bulk paths (an import of 100 000 integrations, a reconcile of as many):
 * drizzle builds and prepares a statement per call (~200 us of the ~270 us an imported row cost);
 * these are prepared once per connection (bun:sqlite's `query` cache) and map their rows by hand, in
 * the shape drizzle's `integrations` select gives (`IntegrationRow`).
 */

type RawRow = {
  id: number;
  username: string;
  type: string;
  description: string;
  password_hash: string;
  active: number;
  publish_acl: string;
  subscribe_acl: string;
  deny_publish_acl: string;
  deny_subscribe_acl: string;
  created_at: number;
  updated_at: number;
  last_login_at: number | null;
  last_login_client_id: string | null;
  last_login_remote: string | null;
};

/** rowOf: a raw `integrations` row as drizzle maps it (`active` as drizzle's boolean mode reads it). */
export function rowOf(raw: RawRow): IntegrationRow {
  return {
    id: raw.id,
    username: raw.username,
    type: raw.type as IntegrationType,
    description: raw.description,
    passwordHash: raw.password_hash,
    active: Number(raw.active) === 1,
    publishAcl: raw.publish_acl,
    subscribeAcl: raw.subscribe_acl,
    denyPublishAcl: raw.deny_publish_acl,
    denySubscribeAcl: raw.deny_subscribe_acl,
    createdAt: raw.created_at,
    updatedAt: raw.updated_at,
    lastLoginAt: raw.last_login_at,
    lastLoginClientId: raw.last_login_client_id,
    lastLoginRemote: raw.last_login_remote,
  };
}

/** insertRow: one new integration; returns it as stored (its id). */
export function insertRow(
  db: Db,
  row: Omit<IntegrationRow, "id" | "lastLoginAt" | "lastLoginClientId" | "lastLoginRemote">,
): IntegrationRow {
  const raw = db.$client
    .query(
      `INSERT INTO integrations (username, type, description, password_hash, active, publish_acl, subscribe_acl,
         deny_publish_acl, deny_subscribe_acl, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    )
    .get(
      row.username,
      row.type,
      row.description,
      row.passwordHash,
      row.active ? 1 : 0,
      row.publishAcl,
      row.subscribeAcl,
      row.denyPublishAcl,
      row.denySubscribeAcl,
      row.createdAt,
      row.updatedAt,
    ) as RawRow;
  return rowOf(raw);
}

/** versions: every integration's id and updated_at, as two parallel lists (no object per row). */
export function versions(db: Db): { ids: number[]; updatedAts: number[] } {
  const ids: number[] = [];
  const updatedAts: number[] = [];
  for (const [id, at] of db.$client.query("SELECT id, updated_at FROM integrations").values() as [number, number][]) {
    ids.push(id);
    updatedAts.push(at);
  }
  return { ids, updatedAts };
}

/** rowsById: the rows of these ids (those that still exist), 500 a statement. */
export function rowsById(db: Db, ids: number[]): IntegrationRow[] {
  const out: IntegrationRow[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    // prepared and finalized here: the statement's text varies with the chunk (no cached statement per size)
    const stmt = db.$client.prepare(`SELECT * FROM integrations WHERE id IN (${chunk.map(() => "?").join(",")})`);
    try {
      for (const raw of stmt.all(...chunk) as RawRow[]) out.push(rowOf(raw));
    } finally {
      stmt.finalize();
    }
  }
  return out;
}

/** allRows: every integration. */
export function allRows(db: Db): IntegrationRow[] {
  return (db.$client.query("SELECT * FROM integrations").all() as RawRow[]).map(rowOf);
}
