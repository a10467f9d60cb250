import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
// layer-exception: type only (erased at build): the column's type is the core's one list of types;
// SQLite stores the text as it is.
import type { IntegrationType } from "../core/types.ts";

/** integrations: one credential per connecting machine or client, of exactly one protocol type. */
export const integrations = sqliteTable(
  "integrations",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    username: text("username").notNull().unique(),
    type: text("type").$type<IntegrationType>().notNull(),
    description: text("description").notNull().default(""),
    passwordHash: text("password_hash").notNull(),
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    /** JSON arrays of MQTT topic filters (`+`/`#`); used by the MQTT and OPC UA listeners. */
    publishAcl: text("publish_acl").notNull().default('["#"]'),
    subscribeAcl: text("subscribe_acl").notNull().default('["#"]'),
    /** JSON arrays of topic filters that are refused whatever the allow filters say (a deny wins). */
    denyPublishAcl: text("deny_publish_acl").notNull().default("[]"),
    denySubscribeAcl: text("deny_subscribe_acl").notNull().default("[]"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    lastLoginAt: integer("last_login_at"),
    /** where the last login came from, as its listener saw it (written behind with the time) */
    lastLoginClientId: text("last_login_client_id"),
    lastLoginRemote: text("last_login_remote"),
  },
  (t) => [index("integrations_type_idx").on(t.type), index("integrations_created_idx").on(t.createdAt)],
);

export const admins = sqliteTable("admins", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
  /** `full` or `read-only` (sees every page, changes nothing, never sees a secret) */
  role: text("role").$type<"full" | "read-only">().notNull().default("full"),
  /** the TOTP key (base32, RFC 6238), null while the admin has no second factor; the server must read it */
  totpSecret: text("totp_secret"),
  /** the last 30-second step a code was accepted for: a code is good once (no replay within its window) */
  totpLastStep: integer("totp_last_step"),
});

/** adminRecoveryCodes: one-time codes that stand in for a TOTP code; only their SHA-256 is stored. */
export const adminRecoveryCodes = sqliteTable(
  "admin_recovery_codes",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    adminId: integer("admin_id")
      .notNull()
      .references(() => admins.id, { onDelete: "cascade" }),
    codeHash: text("code_hash").notNull(),
    createdAt: integer("created_at").notNull(),
    usedAt: integer("used_at"),
  },
  (t) => [index("admin_recovery_codes_admin_idx").on(t.adminId)],
);

/** adminSessions: the cookie holds a random token; only its SHA-256 is stored. */
export const adminSessions = sqliteTable(
  "admin_sessions",
  {
    id: text("id").primaryKey(),
    adminId: integer("admin_id")
      .notNull()
      .references(() => admins.id, { onDelete: "cascade" }),
    csrfToken: text("csrf_token").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    /** the browser's User-Agent and address at sign-in, to tell sessions apart on the Settings page */
    userAgent: text("user_agent").notNull().default(""),
    remote: text("remote").notNull().default(""),
  },
  (t) => [index("admin_sessions_expires_idx").on(t.expiresAt)],
);

/** apiTokens: bearer tokens for automation; only the SHA-256 of the secret is stored. */
export const apiTokens = sqliteTable("api_tokens", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull(),
  tokenHash: text("token_hash").notNull().unique(),
  prefix: text("prefix").notNull(),
  createdAt: integer("created_at").notNull(),
  lastUsedAt: integer("last_used_at"),
  /** what the token may do: full (the API as a full admin) or read-only (GETs: monitoring, /metrics) */
  role: text("role").$type<"full" | "read-only">().notNull().default("full"),
});

export type IntegrationRow = typeof integrations.$inferSelect;
export type AdminRow = typeof admins.$inferSelect;
export type ApiTokenRow = typeof apiTokens.$inferSelect;

/** activity: who changed what, when (page, API token, CLI, onboarding); bounded by age and count. */
export const activity = sqliteTable(
  "activity",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: integer("at").notNull(),
    /** `admin:<name>`, `token:<name>`, `cli`, `system` */
    actor: text("actor").notNull(),
    /** `integration.created`, `onboarding.approved`, `session.kicked`, ... */
    action: text("action").notNull(),
    /** what it was done to: usually a username */
    subject: text("subject").notNull().default(""),
    detail: text("detail").notNull().default(""),
  },
  (t) => [index("activity_at_idx").on(t.at), index("activity_action_idx").on(t.action)],
);

/**
 * onboardingWindow: one row while an admin has onboarding open (the appliance and the CLI both read and
 * write it); a restart closes it.
 */
export const onboardingWindow = sqliteTable("onboarding_window", {
  id: integer("id").primaryKey(),
  openUntil: integer("open_until").notNull(),
  /** JSON array of integration types, or null for all */
  types: text("types"),
  openedBy: text("opened_by").notNull(),
});

/** onboardingRequests: unknown clients that tried to log in while the window was open. */
export const onboardingRequests = sqliteTable("onboarding_requests", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  type: text("type").$type<IntegrationType>().notNull(),
  username: text("username").notNull().unique(),
  /** argon2id of the password the client presented (never the password) */
  passwordHash: text("password_hash").notNull(),
  clientId: text("client_id").notNull().default(""),
  remote: text("remote").notNull().default(""),
  fingerprint: text("fingerprint").notNull(),
  firstSeen: integer("first_seen").notNull(),
  lastSeen: integer("last_seen").notNull(),
  attempts: integer("attempts").notNull().default(1),
});

export type ActivityRow = typeof activity.$inferSelect;
export type OnboardingRequestRow = typeof onboardingRequests.$inferSelect;

/** settings: small appliance-wide choices an admin makes on the page (key -> JSON value). */
export const settings = sqliteTable("settings", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/**
 * bans: addresses (one or a CIDR block), client ids and usernames refused before any password work,
 * each until `expires_at` (ms); bounded in count by the core (core/bans.ts).
 */
export const bans = sqliteTable(
  "bans",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    /** "address", "clientId" or "username" */
    kind: text("kind").notNull(),
    /** the canonical value: `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`, a client id or a username */
    value: text("value").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    createdBy: text("created_by").notNull().default(""),
  },
  (t) => [index("bans_expires_idx").on(t.expiresAt)],
);
