import { eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { settings } from "../db/schema.ts";
import { ValidationError } from "../lib/errors.ts";
import { isValidTopicFilter } from "./credentials/validation.ts";
import { integrationTypes, type IntegrationType } from "./types.ts";

export interface DefaultPermissions {
  publishAcl: string[];
  subscribeAcl: string[];
}

/** unrestricted: what a new integration gets until an admin chooses otherwise (a plant line's MQTT habit). */
const unrestricted: DefaultPermissions = { publishAcl: ["#"], subscribeAcl: ["#"] };

const key = (type: IntegrationType) => `defaultPermissions.${type}`;

/** defaultPermissions: the topic permissions a new integration of this type starts with. */
export function defaultPermissions(db: Db, type: IntegrationType): DefaultPermissions {
  const row = db
    .select()
    .from(settings)
    .where(eq(settings.key, key(type)))
    .get();
  if (!row) return { ...unrestricted };
  try {
    const v = JSON.parse(row.value) as DefaultPermissions;
    return {
      publishAcl: v.publishAcl.filter(isValidTopicFilter),
      subscribeAcl: v.subscribeAcl.filter(isValidTopicFilter),
    };
  } catch {
    return { publishAcl: [], subscribeAcl: [] }; // unreadable: deny rather than allow
  }
}

export function allDefaultPermissions(db: Db): Record<IntegrationType, DefaultPermissions> {
  return Object.fromEntries(integrationTypes.map((t) => [t, defaultPermissions(db, t)])) as Record<
    IntegrationType,
    DefaultPermissions
  >;
}

/** defaultPermissionsProblems: field -> message for what setDefaultPermissions would refuse (empty: none). */
export function defaultPermissionsProblems(type: IntegrationType, p: DefaultPermissions): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const k of ["publishAcl", "subscribeAcl"] as const) {
    const list: unknown = p?.[k];
    if (
      !Array.isArray(list) ||
      list.length > 100 ||
      !list.every((f) => typeof f === "string" && isValidTopicFilter(f))
    ) {
      fields[`${type}.${k}`] = "each entry must be a valid MQTT topic filter (at most 100)";
    }
  }
  return fields;
}

export function setDefaultPermissions(db: Db, type: IntegrationType, p: DefaultPermissions): void {
  const fields = defaultPermissionsProblems(type, p);
  if (Object.keys(fields).length) throw new ValidationError(fields);
  const row = { key: key(type), value: JSON.stringify(p), updatedAt: Date.now() };
  db.insert(settings).values(row).onConflictDoUpdate({ target: settings.key, set: row }).run();
}

/** isUnrestricted: `#` among the filters: every topic but `$` ones and those in VRPC domains (core/permissions.ts). */
export function isUnrestricted(filters: readonly string[]): boolean {
  return filters.includes("#");
}
