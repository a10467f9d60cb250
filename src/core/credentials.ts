import { eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { integrations, type IntegrationRow } from "../db/schema.ts";
import { ConflictError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { randomName, randomPassword, randomUsername } from "../lib/ids.ts";
import { aclKey, IntegrationIndex, publicView, storedRow, type StoredIntegration } from "./credentials/index-memory.ts";
import { LastLogins } from "./credentials/last-logins.ts";
import {
  countByType,
  listIntegrations,
  matchingIntegrations,
  type ListPage,
  type ListQuery,
} from "./credentials/query.ts";
import { reconcile } from "./credentials/reconcile.ts";
import { insertRow } from "./credentials/rows.ts";
import {
  hashFor,
  hashProblem,
  isFastHash,
  needsRehash,
  type HashCost,
  type HashScheme,
} from "./credentials/hashing.ts";
import { isValidTopicFilter, validateFields } from "./credentials/validation.ts";
import { LoginVerifier } from "./credentials/verifier.ts";
import type { EventBus } from "./events.ts";
import { defaultPermissions, type DefaultPermissions } from "./settings.ts";
import { FailureThrottle } from "./throttle.ts";
import {
  integrationTypes,
  type Integration,
  type IntegrationType,
  type LoginFailure,
  type LoginMeta,
  type VerifyResult,
} from "./types.ts";

export { isValidTopicFilter, usernamePattern, usernameRule, validateFields } from "./credentials/validation.ts";
export type { ListQuery } from "./credentials/query.ts";

export interface NewIntegration {
  type: IntegrationType;
  username?: string;
  password?: string;
  description?: string;
  active?: boolean;
  /** topic permissions; one left out is the type's default (allow lists) or empty (deny lists) */
  publishAcl?: string[];
  subscribeAcl?: string[];
  denyPublishAcl?: string[];
  denySubscribeAcl?: string[];
}

export interface IntegrationPatch {
  username?: string;
  description?: string;
  publishAcl?: string[];
  subscribeAcl?: string[];
  denyPublishAcl?: string[];
  denySubscribeAcl?: string[];
}

const aclFields = ["publishAcl", "subscribeAcl", "denyPublishAcl", "denySubscribeAcl"] as const;

/** aclErrors: each permission list given must hold at most 100 valid MQTT topic filters. */
function aclErrors(input: Partial<Record<(typeof aclFields)[number], string[]>>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const key of aclFields) {
    const acl = input[key];
    if (acl && (acl.length > 100 || !acl.every(isValidTopicFilter)))
      fields[key] = "each entry must be a valid MQTT topic filter (at most 100)";
  }
  return fields;
}

/** NewRow: a row of `integrations` as written by an insert (the database gives the id). */
type NewRow = Omit<IntegrationRow, "id" | "lastLoginAt" | "lastLoginClientId" | "lastLoginRemote">;

/** AdoptedIntegration: an integration brought with its hash (and, optionally, its permissions). */
export interface AdoptedIntegration {
  type: IntegrationType;
  username: string;
  passwordHash: string;
  description?: string;
  active?: boolean;
  publishAcl?: string[];
  subscribeAcl?: string[];
  denyPublishAcl?: string[];
  denySubscribeAcl?: string[];
}

export type { HashCost } from "./credentials/hashing.ts";

/** AcceptsTable: which integration types a listener admits, by listener type (default: its own type only). */
export type AcceptsTable = Partial<Record<IntegrationType, readonly IntegrationType[]>>;

export interface CredentialOptions {
  hashCost?: HashCost;
  now?: () => number;
  throttle?: FailureThrottle;
  accepts?: AcceptsTable;
  /**
   * fresh: before each login, memory catches up with what another process (the CLI) committed; false
   * when it is current (see external-sync.ts)
   */
  fresh?: () => false | Promise<unknown>;
  /**
   * told of every login refused as an unknown user, with what the client presented (smart onboarding);
   * answers true when it took the attempt as an onboarding request (then it is no failed login to show)
   */
  onUnknown?: (type: IntegrationType, username: string, password: string, meta: LoginMeta) => boolean | undefined;
  /** banned: the ban refusing this client (core/bans.ts), asked before any password work */
  banned?: (username: string, meta: LoginMeta) => unknown;
  /** told of a login refused because the stored hash cannot be checked at a bounded cost (see hashLimits) */
  onUnusableHash?: (username: string, problem: string) => void;
  /** password checks waiting at most (default `deviceMaxQueued`) */
  maxQueuedLogins?: number;
}

/** BulkSet: what a bulk change may set (the same for every row it changes). */
type BulkSet = Partial<Pick<IntegrationRow, "active" | (typeof aclFields)[number]>> & { updatedAt: number };

/** bulkChunk: ids per statement in bulk changes (SQLite allows 32 766 parameters per statement). */
const bulkChunk = 5_000;

/** defaultVrpcDomain: vrpc 3.5's own default domain (VrpcAgent and VrpcClient `domain = 'vrpc'`). */
const defaultVrpcDomain = "vrpc";

function isUniqueViolation(err: unknown): boolean {
  return (
    err instanceof Error &&
    /UNIQUE constraint failed/.test(err.message + String((err as { cause?: unknown }).cause ?? ""))
  );
}

/**
 * CredentialStore: the one place that knows integrations and their password hashes. A façade over
 * its parts: the in-memory index (`credentials/index-memory.ts`), the login path with its caches
 * and throttle (`credentials/verifier.ts`), paging for the page (`credentials/query.ts`),
 * write-behind of last logins (`credentials/last-logins.ts`) and reconciling writes made by another
 * process (`credentials/reconcile.ts`). Writes go to SQLite first, then to memory, then to events.
 */
export class CredentialStore {
  readonly #index = new IntegrationIndex();
  readonly #verifier: LoginVerifier;
  readonly #lastLogins: LastLogins;
  #loaded = false;

  constructor(
    private readonly db: Db,
    private readonly events: EventBus,
    private readonly opts: CredentialOptions = {},
  ) {
    const accepts = opts.accepts ?? {};
    this.#verifier = new LoginVerifier(
      this.#index,
      (listener, type) => listener === type || (accepts[listener]?.includes(type) ?? false),
      opts.throttle ?? new FailureThrottle(),
      () => this.now(),
      (r, password) => {
        if (needsRehash(r.passwordHash, this.opts.hashCost))
          void this.#rehash(r.id, r.passwordHash, password).catch(() => undefined);
      },
      undefined,
      (r, problem) => this.opts.onUnusableHash?.(r.username, problem),
      opts.maxQueuedLogins,
    );
    this.#lastLogins = new LastLogins(db);
    this.reload();
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  get throttle(): FailureThrottle {
    return this.#verifier.throttle;
  }

  /** stats: counters for tests and introspection */
  get stats() {
    return this.#verifier.stats;
  }

  /** hashLine: the device password-check line now (attempts waiting, hashes running, started so far), for tests and metrics. */
  get hashLine(): { readonly queued: number; readonly running: number; readonly stats: { readonly started: number } } {
    return this.#verifier.scheduler;
  }

  /**
   * suspect: this (address, name) pair or this address has a failed login in the throttle's window;
   * the accept pool closes such a client first when it is full of clients whose logins are under way.
   */
  suspect(remote: string | undefined, username: string): boolean {
    return this.#verifier.suspect(remote, username);
  }

  /** hash: argon2id by default; "fast" only for a password the appliance generated (see credentials/hashing.ts). */
  hash(password: string, scheme: HashScheme = "argon2id"): Promise<string> {
    return hashFor(password, scheme, this.opts.hashCost);
  }

  /** cachedEntries: how many verified credentials are held for an integration (0 or 1). */
  cachedEntries(id: number): number {
    return this.#verifier.cachedEntries(id);
  }

  // ---------------------------------------------------------------- verify (hot path)

  /**
   * verify: may this username+password log in over the listener of `type`? Records the outcome.
   * `signal`: the client's connection; when it aborts (the socket closed, the request was abandoned)
   * an attempt still waiting for its password check leaves the line unchecked (`abandoned`).
   */
  async verify(
    type: IntegrationType,
    username: string,
    password: string,
    meta: LoginMeta = {},
    signal?: AbortSignal,
  ): Promise<VerifyResult> {
    // A credential the CLI added, re-enabled or changed counts the moment the CLI exits; one it
    // disabled or removed is refused as soon: every login first looks for such writes (one PRAGMA).
    const catchingUp = this.opts.fresh?.();
    if (catchingUp) await catchingUp;
    // A banned client costs a few map lookups: no hash, no throttle slot, no onboarding request.
    const result: VerifyResult = this.opts.banned?.(username, meta)
      ? { ok: false, reason: "banned" }
      : await this.#verifier.check(type, username, password, meta, signal);
    if (result.ok) {
      const t = this.now();
      const r = this.#index.get(result.integration.id);
      const login = { at: t, clientId: meta.clientId?.slice(0, 256), remote: meta.remote?.slice(0, 64) };
      for (const x of r ? [r, result.integration] : [result.integration]) {
        x.lastLoginAt = t;
        x.lastLoginClientId = login.clientId ?? null;
        x.lastLoginRemote = login.remote ?? null;
      }
      this.#lastLogins.record(result.integration.id, login);
      this.events.emit("login.succeeded", { integration: result.integration, type, meta });
    } else {
      const onboarding =
        result.reason === "unknown-user" && this.opts.onUnknown?.(type, username, password, meta) === true;
      this.events.emit("login.failed", { username, type, reason: result.reason, meta, onboarding });
    }
    return result;
  }

  /** loginRefused: a listener refused a login by its own protocol rules; recorded like any failed login. */
  loginRefused(type: IntegrationType, username: string, reason: LoginFailure, meta: LoginMeta = {}): void {
    this.events.emit("login.failed", { username, type, reason, meta });
  }

  /** isCurrent: is this the integration as it is now (same revision, still active)? */
  isCurrent(integration: Pick<Integration, "id" | "revision">): boolean {
    const r = this.#index.get(integration.id);
    return r !== undefined && r.active && r.revision === integration.revision;
  }

  // ---------------------------------------------------------------- reads

  get(id: number): Integration | undefined {
    const r = this.#index.get(id);
    return r && publicView(r);
  }

  /** peek: the live record without a copy, for per-packet checks; callers must not change it. */
  peek(id: number): Readonly<Integration> | undefined {
    return this.#index.get(id);
  }

  findByUsername(username: string): Integration | undefined {
    const r = this.#index.byUsername(username);
    return r && publicView(r);
  }

  count(): number {
    return this.#index.size;
  }

  countByType(): Record<IntegrationType, number> {
    return countByType(this.#index.values(), integrationTypes);
  }

  /** list: one page; `liveMatches` are integrations whose live sessions match the search text. */
  list(query: ListQuery, onlineIds: ReadonlySet<number> = new Set(), liveMatches?: ReadonlySet<number>): ListPage {
    return listIntegrations(this.#index.values(), query, onlineIds, liveMatches);
  }

  /** matchingIds: every integration a list query selects (all its pages), for bulk work. */
  matchingIds(
    query: ListQuery,
    onlineIds: ReadonlySet<number> = new Set(),
    liveMatches?: ReadonlySet<number>,
  ): number[] {
    return matchingIntegrations(this.#index.values(), query, onlineIds, liveMatches).map((r) => r.id);
  }

  /** all: every integration (of `type`), newest first: one pass, for the CLI's list and whole-fleet reads. */
  all(type?: IntegrationType): Integration[] {
    const out: Integration[] = [];
    for (const r of this.#index.values()) if (!type || r.type === type) out.push(publicView(r));
    return out.sort((a, b) => b.id - a.id);
  }

  /** ids: every integration id, for tests and bulk reads. */
  ids(): number[] {
    return this.#index.ids();
  }

  /** vrpcDomainOf: the VRPC domain `topic` lies in (the TopicSpace of core/permissions.ts). */
  vrpcDomainOf(topic: string): string | undefined {
    return this.#index.vrpcDomainOf(topic);
  }

  /**
   * suggestUsername: what a new integration is called unless the admin names it. VRPC ones are
   * `<domain>/<agent>`-shaped, so an agent started with them may announce itself: the domain most VRPC
   * integrations already use, else `vrpc` (the domain a VrpcAgent or VrpcClient uses when given none).
   */
  suggestUsername(type: IntegrationType): string {
    if (type !== "vrpc") return randomUsername(type);
    let domain = defaultVrpcDomain;
    let most = 0;
    for (const [d, n] of this.#index.vrpcDomains()) if (n > most || (n === most && d < domain)) [domain, most] = [d, n];
    return `${domain}/${randomName()}`;
  }

  // ---------------------------------------------------------------- writes

  #assertUsernameFree(username: string, exceptId?: number): void {
    const owner = this.#index.ownerOf(username);
    if (owner !== undefined && owner !== exceptId) {
      throw new ConflictError(`username "${username}" is already taken`, {
        username: "this username is already taken",
      });
    }
  }

  /** prepare: validates and hashes without writing; used by create and bulk import. */
  async prepare(
    input: NewIntegration,
    defaults: Map<IntegrationType, DefaultPermissions> = new Map(),
  ): Promise<{ row: NewRow; password: string }> {
    const username = input.username?.trim() || this.suggestUsername(input.type);
    const generated = input.password === undefined;
    const password = input.password ?? randomPassword();
    const fields = validateFields({ type: input.type, username, password, description: input.description ?? "" });
    Object.assign(fields, aclErrors(input));
    if (Object.keys(fields).length) throw new ValidationError(fields);
    this.#assertUsernameFree(username);
    const t = this.now();
    const acl = this.#defaultsFor(input.type, defaults);
    return {
      password,
      row: {
        username,
        type: input.type,
        description: input.description ?? "",
        publishAcl: JSON.stringify(input.publishAcl ?? acl.publishAcl),
        subscribeAcl: JSON.stringify(input.subscribeAcl ?? acl.subscribeAcl),
        denyPublishAcl: JSON.stringify(input.denyPublishAcl ?? []),
        denySubscribeAcl: JSON.stringify(input.denySubscribeAcl ?? []),
        passwordHash: await this.hash(password, generated ? "fast" : "argon2id"),
        active: input.active ?? true,
        createdAt: t,
        updatedAt: t,
      },
    };
  }

  /** adopt: an integration whose password hash already exists (an approved onboarding request, an import with hashes). */
  adopt(input: AdoptedIntegration, via?: "onboarding"): Integration {
    return this.adoptMany([input], via)[0]!;
  }

  /** adoptMany: the same for many, all or nothing (a Mosquitto password file, an export of another appliance). */
  adoptMany(inputs: AdoptedIntegration[], via?: "onboarding"): Integration[] {
    const t = this.now();
    const defaults = new Map<IntegrationType, DefaultPermissions>();
    const seen = new Set<string>();
    const rows = inputs.map((input, i) => {
      const fields = validateFields({
        type: input.type,
        username: input.username,
        description: input.description ?? "",
      });
      const problem = /^\$(argon2id|gh-pbkdf2-sha256|6|7)\$/.test(input.passwordHash)
        ? hashProblem(input.passwordHash)
        : "not a password hash this appliance can check";
      if (problem) fields.password = `password hash: ${problem}`;
      for (const key of aclFields)
        if (input[key] && !input[key]!.every(isValidTopicFilter))
          fields[key] = "each entry must be a valid MQTT topic filter";
      if (Object.keys(fields).length)
        throw Object.assign(
          new ValidationError(fields),
          inputs.length > 1
            ? {
                message: `entry ${i + 1} (${JSON.stringify(String(input.username).slice(0, 64))}): ${Object.values(fields).join("; ")}`,
              }
            : {},
        );
      this.#assertUsernameFree(input.username);
      if (seen.has(input.username)) throw new ConflictError(`username "${input.username}" appears twice`);
      seen.add(input.username);
      const acl = this.#defaultsFor(input.type, defaults);
      return {
        username: input.username,
        type: input.type,
        description: input.description ?? "",
        passwordHash: input.passwordHash,
        publishAcl: JSON.stringify(input.publishAcl ?? acl.publishAcl),
        subscribeAcl: JSON.stringify(input.subscribeAcl ?? acl.subscribeAcl),
        denyPublishAcl: JSON.stringify(input.denyPublishAcl ?? []),
        denySubscribeAcl: JSON.stringify(input.denySubscribeAcl ?? []),
        active: input.active ?? true,
        createdAt: t,
        updatedAt: t,
      };
    });
    return this.#insertAll(rows, via);
  }

  /** #defaultsFor: the type's default permissions, read once per bulk call (`cache`), not once per row. */
  #defaultsFor(type: IntegrationType, cache: Map<IntegrationType, DefaultPermissions>): DefaultPermissions {
    let acl = cache.get(type);
    if (!acl) cache.set(type, (acl = defaultPermissions(this.db, type)));
    return acl;
  }

  async create(input: NewIntegration): Promise<{ integration: Integration; password: string }> {
    const { row, password } = await this.prepare(input);
    const [inserted] = this.#insertAll([row]);
    return { integration: inserted!, password };
  }

  /**
   * createMany: all or nothing, in one transaction. Hashing dominates for chosen passwords (argon2id,
   * ~30 ms each), so a few run at once on libuv's thread pool (one per core and then some); generated
   * passwords hash in well under a millisecond. Nothing is written until every entry has passed.
   */
  async createMany(
    inputs: NewIntegration[],
    concurrency = 4,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ integration: Integration; password: string }[]> {
    const prepared: Awaited<ReturnType<CredentialStore["prepare"]>>[] = new Array(inputs.length);
    const defaults = new Map<IntegrationType, DefaultPermissions>();
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < inputs.length) {
        const i = next++;
        try {
          prepared[i] = await this.prepare(inputs[i]!, defaults);
          onProgress?.(++done, inputs.length);
        } catch (err) {
          if (err instanceof ValidationError || err instanceof ConflictError)
            (err as Error).message = `entry ${i + 1}: ${(err as Error).message}`;
          next = inputs.length; // stop the other workers early
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
    const seen = new Set<string>();
    for (const [i, p] of prepared.entries()) {
      if (seen.has(p.row.username))
        throw new ConflictError(`entry ${i + 1}: username "${p.row.username}" appears twice`);
      seen.add(p.row.username);
    }
    const created = this.#insertAll(prepared.map((p) => p.row));
    return created.map((integration, i) => ({ integration, password: prepared[i]!.password }));
  }

  /**
   * #insertAll: the rows, all or nothing. Memory and the `integration.created` events come inside the
   * transaction, so what follows an event in this process's database (the activity log's row for each)
   * commits with the rows: one commit, one fsync and one change for every other connection to notice
   * (PRAGMA data_version) for a 100 000-row import, instead of one per row. If the commit fails, memory
   * forgets the rows again.
   */
  #insertAll(rows: NewRow[], via?: "onboarding"): Integration[] {
    const put: StoredIntegration[] = [];
    let created: Integration[];
    try {
      created = this.db.$client.transaction(() =>
        rows.map((row) => {
          const r = this.#index.put(insertRow(this.db, row));
          put.push(r);
          const integration = publicView(r);
          this.events.emit("integration.created", via ? { integration, via } : { integration });
          return integration;
        }),
      )();
    } catch (err) {
      for (const r of put) this.#index.delete(r);
      if (isUniqueViolation(err))
        throw new ConflictError("username is already taken", { username: "this username is already taken" });
      throw err;
    } finally {
      if (put.length) this.#verifier.usernamesChanged();
    }
    return created;
  }

  #require(id: number): StoredIntegration {
    const r = this.#index.get(id);
    if (!r) throw new NotFoundError("integration");
    return r;
  }

  update(id: number, patch: IntegrationPatch): Integration {
    const r = this.#require(id);
    const username = patch.username?.trim();
    const fields = { ...validateFields({ username, description: patch.description }), ...aclErrors(patch) };
    if (Object.keys(fields).length) throw new ValidationError(fields);
    if (username !== undefined) this.#assertUsernameFree(username, id);
    const set: Partial<typeof integrations.$inferInsert> = { updatedAt: this.now() };
    if (username !== undefined) set.username = username;
    if (patch.description !== undefined) set.description = patch.description;
    for (const key of aclFields) if (patch[key]) set[key] = JSON.stringify(patch[key]);
    const before = aclKey(r);
    const integration = this.#store(id, set);
    const aclChanged = aclKey(integration) !== before;
    if (username !== undefined && username !== r.username) this.#verifier.usernamesChanged();
    this.events.emit("integration.updated", { integration, passwordChanged: false, aclChanged });
    return integration;
  }

  setActive(id: number, active: boolean): Integration {
    const r = this.#require(id);
    if (r.active === active) return publicView(r);
    const integration = this.#store(id, { active, updatedAt: this.now() });
    this.events.emit(active ? "integration.activated" : "integration.deactivated", { integration });
    return integration;
  }

  async resetPassword(id: number, given?: string): Promise<{ integration: Integration; password: string }> {
    this.#require(id);
    const password = given ?? randomPassword();
    const fields = validateFields({ password });
    if (Object.keys(fields).length) throw new ValidationError(fields);
    const passwordHash = await this.hash(password, given === undefined ? "fast" : "argon2id");
    const integration = this.#store(id, { passwordHash, updatedAt: this.now() });
    this.events.emit("integration.updated", { integration, passwordChanged: true });
    return { integration, password };
  }

  remove(id: number): Integration {
    const r = this.#require(id);
    this.db.delete(integrations).where(eq(integrations.id, id)).run();
    this.#index.delete(r);
    this.#lastLogins.drop(id);
    this.#verifier.forget(id);
    const integration = publicView(r);
    this.events.emit("integration.deleted", { integration });
    return integration;
  }

  // ---------------------------------------------------------------- bulk

  /**
   * setActiveMany: activates or deactivates many integrations in one transaction; then, per integration
   * that changed, the same event as `setActive` (a deactivation drops its sessions). Unknown ids and
   * integrations already in that state are skipped; returns the ones changed.
   */
  setActiveMany(ids: readonly number[], active: boolean): Integration[] {
    const targets = this.#existing(ids).filter((r) => r.active !== active);
    const changed = this.#storeMany(targets, { active, updatedAt: this.now() });
    for (const integration of changed)
      this.events.emit(active ? "integration.activated" : "integration.deactivated", { integration });
    return changed;
  }

  /**
   * setPermissionsMany: sets the topic permission lists given (the others stay) on many integrations in
   * one transaction; each whose permissions changed gets `integration.updated` (its sessions reconnect
   * under the new ones).
   */
  setPermissionsMany(ids: readonly number[], patch: Pick<IntegrationPatch, (typeof aclFields)[number]>): Integration[] {
    const fields = aclErrors(patch);
    if (Object.keys(fields).length) throw new ValidationError(fields);
    const set: BulkSet = { updatedAt: this.now() };
    for (const key of aclFields) if (patch[key]) set[key] = JSON.stringify(patch[key]);
    const targets = this.#existing(ids).filter((r) =>
      aclFields.some((k) => set[k] !== undefined && set[k] !== JSON.stringify(r[k])),
    );
    const changed = this.#storeMany(targets, set);
    for (const integration of changed)
      this.events.emit("integration.updated", { integration, passwordChanged: false, aclChanged: true });
    return changed;
  }

  /** removeMany: deletes many integrations in one transaction, then `integration.deleted` for each. */
  removeMany(ids: readonly number[]): Integration[] {
    const targets = this.#existing(ids);
    this.db.transaction((tx) => {
      for (let k = 0; k < targets.length; k += bulkChunk)
        tx.delete(integrations)
          .where(
            inArray(
              integrations.id,
              targets.slice(k, k + bulkChunk).map((r) => r.id),
            ),
          )
          .run();
    });
    const removed = targets.map((r) => {
      this.#index.delete(r);
      this.#lastLogins.drop(r.id);
      this.#verifier.forget(r.id);
      return publicView(r);
    });
    for (const integration of removed) this.events.emit("integration.deleted", { integration });
    return removed;
  }

  /** #existing: the stored integrations among `ids`, each once. */
  #existing(ids: readonly number[]): StoredIntegration[] {
    const out: StoredIntegration[] = [];
    for (const id of new Set(ids)) {
      const r = this.#index.get(id);
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * #storeMany: one change to many rows in one transaction (one prepared statement: for 10 000 rows
   * drizzle's query building costs more than SQLite), then memory (new revisions), caches forgotten.
   */
  #storeMany(targets: StoredIntegration[], set: BulkSet): Integration[] {
    if (targets.length === 0) return [];
    const { updatedAt, ...rest } = set;
    const keys = Object.keys(rest) as (keyof typeof rest)[];
    // updated_at always moves, as in #store (another process's reconcile finds changed rows by it)
    const update = this.db.$client.prepare(
      `UPDATE integrations SET ${keys.map((k, i) => `${integrations[k].name} = ?${i + 3}, `).join("")}` +
        `${integrations.updatedAt.name} = max(?2, ${integrations.updatedAt.name} + 1) WHERE id = ?1 ` +
        `RETURNING ${integrations.updatedAt.name} AS at`,
    );
    const values = keys.map((k) => {
      const v = rest[k];
      return typeof v === "boolean" ? Number(v) : (v ?? null);
    });
    const stamps: number[] = [];
    try {
      this.db.$client.transaction(() => {
        for (const r of targets) stamps.push((update.get(r.id, updatedAt, ...values) as { at: number }).at);
      })();
    } finally {
      update.finalize();
    }
    return targets.map((r, i) => {
      const row = { ...storedRow(r), ...rest, updatedAt: stamps[i]! };
      const stored = this.#index.put(row, this.#lastLogins.pendingFor(r.id));
      this.#verifier.forget(r.id);
      return publicView(stored);
    });
  }

  /** #store: writes a change, then memory (a new revision), and forgets what was cached for it. */
  #store(id: number, set: Partial<typeof integrations.$inferInsert>): Integration {
    let row: IntegrationRow | undefined;
    try {
      // updated_at always moves, even within the same millisecond as the last write of the row (by
      // any process): another process's reconcile finds changed rows by it (credentials/reconcile.ts).
      const updatedAt = sql`max(${set.updatedAt ?? this.now()}, ${integrations.updatedAt} + 1)`;
      row = this.db
        .update(integrations)
        .set({ ...set, updatedAt })
        .where(eq(integrations.id, id))
        .returning()
        .get();
    } catch (err) {
      if (isUniqueViolation(err))
        throw new ConflictError("username is already taken", { username: "this username is already taken" });
      throw err;
    }
    if (!row) throw new NotFoundError("integration");
    const r = this.#index.put(row, this.#lastLogins.pendingFor(id));
    this.#verifier.forget(id);
    return publicView(r);
  }

  /**
   * #rehash: the stored hash's parameters are not the policy's (older argon2 cost, other iterations):
   * the password just checked is hashed again in the same family. Not a password change: no event,
   * no new revision, no kick; written only if nobody changed the hash meanwhile.
   */
  async #rehash(id: number, oldHash: string, password: string): Promise<void> {
    const next = await this.hash(password, isFastHash(oldHash) ? "fast" : "argon2id"); // Mosquitto's: argon2id
    const r = this.#index.get(id);
    if (!r || r.passwordHash !== oldHash) return;
    const res = this.db.$client
      .prepare("UPDATE integrations SET password_hash = ?1 WHERE id = ?2 AND password_hash = ?3")
      .run(next, id, oldHash);
    if (res.changes === 1) r.passwordHash = next;
  }

  // ---------------------------------------------------------------- persistence of hot counters

  /** flushLastLogins: writes the last-login times gathered since the previous flush in one transaction. */
  flushLastLogins(): number {
    const t = performance.now();
    const n = this.#lastLogins.flush();
    if (n > 0) this.lastFlushSeconds = (performance.now() - t) / 1000;
    return n;
  }

  /** lastLoginsWaiting: last-login times gathered and not written yet */
  get lastLoginsWaiting(): number {
    return this.#lastLogins.waiting;
  }

  /** lastFlushSeconds: how long the last write-behind flush took (a slow disk shows here) */
  lastFlushSeconds = 0;

  // ---------------------------------------------------------------- external changes

  /**
   * reload: reconciles memory with the database (at start, and when another process wrote). A promise
   * when many rows changed: they are applied a slice at a time (credentials/reconcile.ts).
   */
  reload(): void | Promise<void> {
    const initial = !this.#loaded;
    this.#loaded = true;
    return reconcile(this.db, this.#index, this.events, {
      initial,
      pendingLogin: (id) => this.#lastLogins.pendingFor(id),
      changed: (id) => {
        this.#verifier.forget(id);
        if (!this.#index.get(id)) this.#lastLogins.drop(id);
        this.#verifier.usernamesChanged(); // a name refused as unknown may exist now (a Set's clear)
      },
    });
  }
}
