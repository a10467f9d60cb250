import { eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { integrations, type IntegrationRow } from "../db/schema.ts";
import { ConflictError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { randomPassword, randomUsername } from "../lib/ids.ts";
import type { EventBus } from "./events.ts";
import { FailureThrottle } from "./throttle.ts";
import {
  isIntegrationType,
  type Integration,
  type IntegrationType,
  type LoginMeta,
  type VerifyResult,
} from "./types.ts";

export const usernamePattern = /^[A-Za-z0-9._\-@/:]{1,128}$/;
export const usernameRule = "1-128 characters: letters, digits and . _ - @ / :";
const maxDescription = 1024;

export interface NewIntegration {
  type: IntegrationType;
  username?: string;
  password?: string;
  description?: string;
  active?: boolean;
}

export interface IntegrationPatch {
  username?: string;
  description?: string;
  publishAcl?: string[];
  subscribeAcl?: string[];
}

export interface ListQuery {
  q?: string;
  type?: IntegrationType;
  /** online / offline need the live session set; deactivated is a column. */
  status?: "online" | "offline" | "deactivated";
  page?: number;
  pageSize?: number;
}

export interface HashCost {
  memoryCost?: number;
  timeCost?: number;
}

interface Record_ extends Integration {
  passwordHash: string;
}

/** validateNew: every field rule of the issue, collected so a form can show them all at once. */
export function validateFields(input: { username?: unknown; password?: unknown; description?: unknown; type?: unknown }) {
  const fields: Record<string, string> = {};
  if (input.type !== undefined && !isIntegrationType(input.type)) fields.type = "type must be one of mqtt, opcua, http, vrpc";
  if (input.username !== undefined && (typeof input.username !== "string" || !usernamePattern.test(input.username))) {
    fields.username = `username must be ${usernameRule}`;
  }
  if (input.password !== undefined) {
    if (typeof input.password !== "string" || input.password.length < 8 || input.password.length > 256) {
      fields.password = "password must be 8-256 characters";
    }
  }
  if (input.description !== undefined && (typeof input.description !== "string" || input.description.length > maxDescription)) {
    fields.description = `description must be at most ${maxDescription} characters`;
  }
  return fields;
}

function parseAcl(json: string): string[] {
  try {
    const v = JSON.parse(json);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return []; // a corrupt ACL denies rather than allows
  }
}

function toRecord(row: IntegrationRow): Record_ {
  return {
    id: row.id,
    username: row.username,
    type: row.type,
    description: row.description,
    active: row.active,
    publishAcl: parseAcl(row.publishAcl),
    subscribeAcl: parseAcl(row.subscribeAcl),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    lastLoginAt: row.lastLoginAt,
    passwordHash: row.passwordHash,
  };
}

function publicView(r: Record_): Integration {
  const { passwordHash: _, ...rest } = r;
  return { ...rest, publishAcl: [...r.publishAcl], subscribeAcl: [...r.subscribeAcl] };
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed/.test(err.message + String((err as { cause?: unknown }).cause ?? ""));
}

/**
 * CredentialStore: the one place that knows integrations and their password hashes.
 *
 * All integrations live in memory (10 000 rows are a few MB), so `verify` never touches the disk.
 * A correct repeat login skips argon2: the verified-credential cache maps an integration id to an
 * HMAC (per-process random key) of id, stored hash and password. The plaintext is never kept, a
 * password change alters the stored hash so an old entry cannot match, and every change to the
 * integration drops its entries anyway. Wrong passwords get the same treatment in a small negative
 * cache, so a client retrying a wrong password costs one hash, not one per attempt. Hash work for
 * failures is bounded per username and per address by a FailureThrottle.
 */
export class CredentialStore {
  #byId = new Map<number, Record_>();
  #byUsername = new Map<string, number>();
  #verified = new Map<number, string>();
  #refused = new Map<number, Map<string, number>>();
  /** argon2 verifications under way, by fingerprint */
  #inflight = new Map<string, Promise<boolean>>();
  /** unknown username + password pairs already refused (bounded; cleared when any integration is created) */
  #unknownRefused = new Map<string, number>();
  #pendingLogins = new Map<number, number>();
  #hmacKey = crypto.getRandomValues(new Uint8Array(32));
  #dummyHash: Promise<string>;
  #loaded = false;
  readonly throttle: FailureThrottle;
  /** counters for tests and /metrics-style introspection */
  readonly stats = { hashVerifies: 0, cacheHits: 0, refusedCacheHits: 0, throttled: 0 };

  constructor(
    private readonly db: Db,
    private readonly events: EventBus,
    private readonly opts: { hashCost?: HashCost; now?: () => number; throttle?: FailureThrottle } = {},
  ) {
    this.throttle = opts.throttle ?? new FailureThrottle();
    this.#dummyHash = this.hash(randomPassword());
    this.reload();
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  hash(password: string): Promise<string> {
    return Bun.password.hash(password, { algorithm: "argon2id", ...this.opts.hashCost });
  }

  /** #hmac: cache keys that mean nothing outside this process and never contain a password. */
  #hmac(text: string): string {
    return new Bun.CryptoHasher("sha256", this.#hmacKey).update(text).digest("hex");
  }

  #fingerprint(r: Record_, password: string): string {
    return this.#hmac(`${r.id}\0${r.passwordHash}\0${password}`);
  }

  #forget(id: number): void {
    this.#verified.delete(id);
    this.#refused.delete(id);
  }

  /** cachedEntries: how many verified credentials are held for an integration (0 or 1). */
  cachedEntries(id: number): number {
    return this.#verified.has(id) ? 1 : 0;
  }

  // ---------------------------------------------------------------- verify (hot path)

  async verify(type: IntegrationType, username: string, password: string, meta: LoginMeta = {}): Promise<VerifyResult> {
    const result = await this.#check(type, username, password, meta);
    if (result.ok) {
      const t = this.now();
      const r = this.#byId.get(result.integration.id);
      if (r) r.lastLoginAt = t;
      result.integration.lastLoginAt = t;
      this.#pendingLogins.set(result.integration.id, t);
      this.events.emit("login.succeeded", { integration: result.integration, type, meta });
    } else {
      if (result.reason === "throttled") this.stats.throttled++;
      this.events.emit("login.failed", { username, type, reason: result.reason, meta });
    }
    return result;
  }

  async #check(type: IntegrationType, username: string, password: string, meta: LoginMeta): Promise<VerifyResult> {
    const addressKey = meta.remote ? `a:${meta.remote}` : undefined;
    const userKey = `u:${username}`;
    // An address that has used up its budget gets nothing, not even the cheap cache lookup:
    // otherwise it could test guesses against the cache at network speed.
    if (addressKey && this.throttle.blocked(addressKey)) return { ok: false, reason: "throttled" };

    const r = this.#byUsername.has(username) ? this.#byId.get(this.#byUsername.get(username)!) : undefined;
    if (!r) {
      // A device with a stale username retries the same pair forever: one hash, then free, and it
      // does not use up its address's budget (other devices behind the same NAT keep working).
      const ufp = this.#hmac(`unknown\0${username}\0${password}`);
      if (this.#unknownRefused.has(ufp)) {
        this.stats.refusedCacheHits++;
        return { ok: false, reason: "unknown-user" };
      }
      if (this.throttle.blocked(userKey)) return { ok: false, reason: "throttled" };
      // Pay one hash anyway so an unknown name takes as long as a wrong password (no user enumeration).
      this.stats.hashVerifies++;
      await Bun.password.verify(password, await this.#dummyHash).catch(() => false);
      if (this.#byUsername.has(username)) return this.#check(type, username, password, meta); // created meanwhile
      if (this.#unknownRefused.size >= 10_000) this.#unknownRefused.delete(this.#unknownRefused.keys().next().value!);
      this.#unknownRefused.set(ufp, this.now());
      this.throttle.fail(userKey);
      if (addressKey) this.throttle.fail(addressKey);
      return { ok: false, reason: "unknown-user" };
    }

    const fp = this.#fingerprint(r, password);
    let cached = false;
    if (this.#verified.get(r.id) === fp) {
      this.stats.cacheHits++;
      cached = true;
    } else if (this.#refused.get(r.id)?.has(fp)) {
      this.stats.refusedCacheHits++;
      return { ok: false, reason: "wrong-password" };
    } else {
      // The username's budget protects the CPU from a spray across many addresses; a legitimate
      // client whose credential is cached got in above without touching it.
      if (this.throttle.blocked(userKey)) return { ok: false, reason: "throttled" };
      const hashAtStart = r.passwordHash;
      // A reconnect storm (a line powering up) sends the same credential many times at once: one
      // hash serves them all; only its first waiter books a failure.
      let pending = this.#inflight.get(fp);
      const first = pending === undefined;
      if (!pending) {
        this.stats.hashVerifies++;
        pending = Bun.password.verify(password, hashAtStart).catch(() => false);
        this.#inflight.set(fp, pending);
        void pending.finally(() => this.#inflight.delete(fp));
      }
      const ok = await pending;
      const current = this.#byId.get(r.id);
      // The integration changed while we hashed: judge again against what is true now.
      if (!current || current.passwordHash !== hashAtStart) return this.#check(type, username, password, meta);
      if (!ok && !first) return { ok: false, reason: "wrong-password" };
      if (!ok) {
        let refused = this.#refused.get(r.id);
        if (!refused) this.#refused.set(r.id, (refused = new Map()));
        if (refused.size >= 16) refused.delete(refused.keys().next().value!);
        refused.set(fp, this.now());
        this.throttle.fail(userKey);
        if (addressKey) this.throttle.fail(addressKey);
        return { ok: false, reason: "wrong-password" };
      }
      this.#verified.set(r.id, fp);
    }
    // Active and type are read fresh on every login, after the password, so these reasons are
    // only ever told to a client that knows the password.
    if (!r.active) return { ok: false, reason: "deactivated" };
    if (!this.#accepts(r.type, type)) return { ok: false, reason: "wrong-type" };
    return { ok: true, integration: publicView(r), cached };
  }

  /** A listener may accept more than its own type: VRPC agents are MQTT clients of our broker. */
  #accepts(integrationType: IntegrationType, listenerType: IntegrationType): boolean {
    return integrationType === listenerType || (listenerType === "mqtt" && integrationType === "vrpc");
  }

  // ---------------------------------------------------------------- reads

  get(id: number): Integration | undefined {
    const r = this.#byId.get(id);
    return r && publicView(r);
  }

  /** peek: the live record without a copy, for per-packet checks; callers must not change it. */
  peek(id: number): Readonly<Integration> | undefined {
    return this.#byId.get(id);
  }

  findByUsername(username: string): Integration | undefined {
    const id = this.#byUsername.get(username);
    return id === undefined ? undefined : this.get(id);
  }

  count(): number {
    return this.#byId.size;
  }

  countByType(): Record<IntegrationType, number> {
    const counts = { mqtt: 0, opcua: 0, http: 0, vrpc: 0 };
    for (const r of this.#byId.values()) counts[r.type]++;
    return counts;
  }

  /** list: newest first, filtered in memory (fast for 10 000+ rows, no query per keystroke). */
  list(query: ListQuery, onlineIds: ReadonlySet<number> = new Set()): { rows: Integration[]; total: number; page: number; pageSize: number; pages: number } {
    const pageSize = Math.min(Math.max(query.pageSize ?? 25, 1), 200);
    const q = query.q?.trim().toLowerCase();
    const matches: Record_[] = [];
    for (const r of this.#byId.values()) {
      if (query.type && r.type !== query.type) continue;
      if (q && !r.username.toLowerCase().includes(q)) continue;
      if (query.status === "deactivated" && r.active) continue;
      if (query.status === "online" && (!r.active || !onlineIds.has(r.id))) continue;
      if (query.status === "offline" && (!r.active || onlineIds.has(r.id))) continue;
      matches.push(r);
    }
    matches.sort((a, b) => b.id - a.id);
    const pages = Math.max(1, Math.ceil(matches.length / pageSize));
    const page = Math.min(Math.max(query.page ?? 1, 1), pages);
    const rows = matches.slice((page - 1) * pageSize, page * pageSize).map(publicView);
    return { rows, total: matches.length, page, pageSize, pages };
  }

  // ---------------------------------------------------------------- writes

  #assertUsernameFree(username: string, exceptId?: number): void {
    const owner = this.#byUsername.get(username);
    if (owner !== undefined && owner !== exceptId) {
      throw new ConflictError(`username "${username}" is already taken`, { username: "this username is already taken" });
    }
  }

  /** prepare: validates and hashes without writing; used by create and bulk import. */
  async prepare(input: NewIntegration): Promise<{ row: typeof integrations.$inferInsert; password: string }> {
    const username = input.username?.trim() || randomUsername(input.type);
    const password = input.password ?? randomPassword();
    const fields = validateFields({ type: input.type, username, password, description: input.description ?? "" });
    if (Object.keys(fields).length) throw new ValidationError(fields);
    this.#assertUsernameFree(username);
    const t = this.now();
    return {
      password,
      row: {
        username,
        type: input.type,
        description: input.description ?? "",
        passwordHash: await this.hash(password),
        active: input.active ?? true,
        createdAt: t,
        updatedAt: t,
      },
    };
  }

  async create(input: NewIntegration): Promise<{ integration: Integration; password: string }> {
    const { row, password } = await this.prepare(input);
    const [inserted] = this.#insertAll([row]);
    return { integration: inserted!, password };
  }

  /**
   * createMany: all or nothing, in one transaction. Hashing dominates (about 0.1 s each), so a few
   * run at once on libuv's thread pool; nothing is written until every entry has passed.
   */
  async createMany(inputs: NewIntegration[], concurrency = 4): Promise<{ integration: Integration; password: string }[]> {
    const prepared: Awaited<ReturnType<CredentialStore["prepare"]>>[] = new Array(inputs.length);
    let next = 0;
    const worker = async () => {
      while (next < inputs.length) {
        const i = next++;
        try {
          prepared[i] = await this.prepare(inputs[i]!);
        } catch (err) {
          if (err instanceof ValidationError || err instanceof ConflictError) (err as Error).message = `entry ${i + 1}: ${(err as Error).message}`;
          next = inputs.length; // stop the other workers early
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
    const seen = new Set<string>();
    for (const [i, p] of prepared.entries()) {
      if (seen.has(p.row.username)) throw new ConflictError(`entry ${i + 1}: username "${p.row.username}" appears twice`);
      seen.add(p.row.username);
    }
    const created = this.#insertAll(prepared.map((p) => p.row));
    return created.map((integration, i) => ({ integration, password: prepared[i]!.password }));
  }

  #insertAll(rows: (typeof integrations.$inferInsert)[]): Integration[] {
    let inserted: IntegrationRow[];
    try {
      inserted = this.db.transaction((tx) => rows.map((row) => tx.insert(integrations).values(row).returning().get()));
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("username is already taken", { username: "this username is already taken" });
      throw err;
    }
    return inserted.map((row) => {
      const r = this.#index(row);
      const integration = publicView(r);
      this.events.emit("integration.created", { integration });
      return integration;
    });
  }

  #require(id: number): Record_ {
    const r = this.#byId.get(id);
    if (!r) throw new NotFoundError("integration");
    return r;
  }

  update(id: number, patch: IntegrationPatch): Integration {
    const r = this.#require(id);
    const username = patch.username?.trim();
    const fields = validateFields({ username, description: patch.description });
    for (const [key, acl] of [["publishAcl", patch.publishAcl], ["subscribeAcl", patch.subscribeAcl]] as const) {
      if (acl && !acl.every(isValidTopicFilter)) fields[key] = "each entry must be a valid MQTT topic filter";
    }
    if (Object.keys(fields).length) throw new ValidationError(fields);
    if (username !== undefined) this.#assertUsernameFree(username, id);
    const set: Partial<typeof integrations.$inferInsert> = { updatedAt: this.now() };
    if (username !== undefined) set.username = username;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.publishAcl) set.publishAcl = JSON.stringify(patch.publishAcl);
    if (patch.subscribeAcl) set.subscribeAcl = JSON.stringify(patch.subscribeAcl);
    const aclChanged =
      (patch.publishAcl !== undefined && JSON.stringify(patch.publishAcl) !== JSON.stringify(r.publishAcl)) ||
      (patch.subscribeAcl !== undefined && JSON.stringify(patch.subscribeAcl) !== JSON.stringify(r.subscribeAcl));
    const row = this.#write(id, set);
    const integration = publicView(this.#index(row, r));
    this.#forget(id);
    this.events.emit("integration.updated", { integration, passwordChanged: false, aclChanged });
    return integration;
  }

  setActive(id: number, active: boolean): Integration {
    const r = this.#require(id);
    if (r.active === active) return publicView(r);
    const row = this.#write(id, { active, updatedAt: this.now() });
    const integration = publicView(this.#index(row, r));
    this.#forget(id);
    this.events.emit(active ? "integration.activated" : "integration.deactivated", { integration });
    return integration;
  }

  async resetPassword(id: number, password: string = randomPassword()): Promise<{ integration: Integration; password: string }> {
    this.#require(id);
    const fields = validateFields({ password });
    if (Object.keys(fields).length) throw new ValidationError(fields);
    const passwordHash = await this.hash(password);
    const row = this.#write(id, { passwordHash, updatedAt: this.now() });
    const integration = publicView(this.#index(row, this.#byId.get(id)));
    this.#forget(id);
    this.events.emit("integration.updated", { integration, passwordChanged: true });
    return { integration, password };
  }

  remove(id: number): Integration {
    const r = this.#require(id);
    this.db.delete(integrations).where(eq(integrations.id, id)).run();
    this.#unindex(r);
    const integration = publicView(r);
    this.events.emit("integration.deleted", { integration });
    return integration;
  }

  #write(id: number, set: Partial<typeof integrations.$inferInsert>): IntegrationRow {
    try {
      const row = this.db.update(integrations).set(set).where(eq(integrations.id, id)).returning().get();
      if (!row) throw new NotFoundError("integration");
      return row;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("username is already taken", { username: "this username is already taken" });
      throw err;
    }
  }

  #index(row: IntegrationRow, previous?: Record_): Record_ {
    if (previous && previous.username !== row.username) this.#byUsername.delete(previous.username);
    if (!previous || previous.username !== row.username) this.#unknownRefused.clear(); // a name that was unknown may exist now
    const r = toRecord(row);
    // Last login is written behind; keep the newer in-memory value.
    const pending = this.#pendingLogins.get(r.id);
    if (pending !== undefined && (r.lastLoginAt ?? 0) < pending) r.lastLoginAt = pending;
    this.#byId.set(r.id, r);
    this.#byUsername.set(r.username, r.id);
    return r;
  }

  #unindex(r: Record_): void {
    this.#byId.delete(r.id);
    this.#byUsername.delete(r.username);
    this.#pendingLogins.delete(r.id);
    this.#forget(r.id);
  }

  // ---------------------------------------------------------------- persistence of hot counters

  /** flushLastLogins: writes the last-login times gathered since the previous flush in one transaction. */
  flushLastLogins(): number {
    if (this.#pendingLogins.size === 0) return 0;
    const pending = [...this.#pendingLogins];
    this.#pendingLogins.clear();
    const stmt = this.db.$client.prepare("UPDATE integrations SET last_login_at = ?1 WHERE id = ?2 AND (last_login_at IS NULL OR last_login_at < ?1)");
    this.db.$client.transaction(() => {
      for (const [id, at] of pending) stmt.run(at, id);
    })();
    return pending.length;
  }

  // ---------------------------------------------------------------- external changes

  /**
   * reload: reads every integration and reconciles memory with the database, emitting the same
   * events as a change made here. Used at start and when another process (the CLI) wrote.
   */
  reload(): void {
    const rows = this.db.select().from(integrations).all();
    const seen = new Set<number>();
    const initial = !this.#loaded;
    this.#loaded = true;
    for (const row of rows) {
      seen.add(row.id);
      const before = this.#byId.get(row.id);
      if (before && sameRow(before, row)) continue;
      const r = this.#index(row, before);
      if (initial) continue;
      const integration = publicView(r);
      if (!before) {
        this.events.emit("integration.created", { integration });
        continue;
      }
      this.#forget(row.id);
      if (before.active !== r.active) {
        this.events.emit(r.active ? "integration.activated" : "integration.deactivated", { integration });
      }
      const passwordChanged = before.passwordHash !== r.passwordHash;
      const aclChanged = JSON.stringify([before.publishAcl, before.subscribeAcl]) !== JSON.stringify([r.publishAcl, r.subscribeAcl]);
      if (passwordChanged || aclChanged || before.username !== r.username || before.description !== r.description || before.type !== r.type || before.updatedAt !== r.updatedAt) {
        this.events.emit("integration.updated", { integration, passwordChanged, aclChanged });
      }
    }
    for (const r of [...this.#byId.values()]) {
      if (seen.has(r.id)) continue;
      this.#unindex(r);
      this.events.emit("integration.deleted", { integration: publicView(r) });
    }
  }

  /** idsOf: for tests and bulk reads. */
  ids(): number[] {
    return [...this.#byId.keys()];
  }
}

function sameRow(r: Record_, row: IntegrationRow): boolean {
  return (
    r.username === row.username &&
    r.type === row.type &&
    r.description === row.description &&
    r.passwordHash === row.passwordHash &&
    r.active === row.active &&
    r.updatedAt === row.updatedAt &&
    JSON.stringify(r.publishAcl) === row.publishAcl &&
    JSON.stringify(r.subscribeAcl) === row.subscribeAcl
  );
}

/** isValidTopicFilter: MQTT 3.1.1 §4.7.1: `#` only last and alone in its level, `+` alone in its level. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 65535 || filter.includes("\0")) return false;
  const levels = filter.split("/");
  return levels.every((level, i) => {
    if (level.includes("#")) return level === "#" && i === levels.length - 1;
    if (level.includes("+")) return level === "+";
    return true;
  });
}
