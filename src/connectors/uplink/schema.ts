import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * uplinks: the upstream brokers this appliance forwards to, in the admin database (drizzle-kit reads this
 * file beside src/db/schema.ts: drizzle.config.ts). The password and the client key are stored
 * encrypted with the data dir's key file (secrets.ts): usable by the appliance, useless in a backup alone.
 */
export const uplinks = sqliteTable("uplinks", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull().unique(),
  enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
  /** JSON array of broker URLs, the nodes of one cluster, tried in order */
  urls: text("urls").notNull(),
  username: text("username"),
  /** encrypted (secrets.ts), null when none */
  password: text("password"),
  /** a PEM certificate trusted besides the system's CAs */
  ca: text("ca"),
  clientCert: text("client_cert"),
  /** a PEM private key, encrypted (secrets.ts) */
  clientKey: text("client_key"),
  clientId: text("client_id").notNull(),
  /** MQTT protocol level upstream: 4 (3.1.1) or 5 */
  protocol: integer("protocol").notNull().default(4),
  /** JSON array of local topic filters forwarded upstream */
  forward: text("forward").notNull().default("[]"),
  remotePrefix: text("remote_prefix").notNull().default(""),
  /** JSON array of remote topic filters brought down */
  subscribe: text("subscribe").notNull().default("[]"),
  localPrefix: text("local_prefix").notNull().default(""),
  qos: integer("qos").notNull().default(1),
  /**
   * QoS 1 messages sent and not yet acknowledged upstream, at most (the column default is the first
   * release's; new uplinks get store.ts `defaultInflight`)
   */
  inflight: integer("inflight").notNull().default(100),
  /** publish a retained summary of every integration upstream */
  inventory: integer("inventory", { mode: "boolean" }).notNull().default(false),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export type UplinkRow = typeof uplinks.$inferSelect;
