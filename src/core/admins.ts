import { timingSafeEqual } from "node:crypto";
import { and, eq, gt, lt } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { adminSessions, admins, apiTokens, type ApiTokenRow } from "../db/schema.ts";
import { AppError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { randomToken, sha256Hex } from "../lib/ids.ts";
import type { HashCost } from "./credentials.ts";
import { FailureThrottle } from "./throttle.ts";

export interface AdminSession {
  adminId: number;
  username: string;
  csrfToken: string;
  expiresAt: number;
}

export const adminUsernamePattern = /^[A-Za-z0-9._\-@]{1,64}$/;

/**
 * AdminStore: admin accounts, their sign-in sessions, the first-start setup token and API tokens.
 * Cookies and API tokens are 256-bit random values; the database keeps only their SHA-256, so a
 * copied database file does not sign anybody in.
 */
export class AdminStore {
  #setup: { token: string; expiresAt: number } | undefined;
  readonly throttle: FailureThrottle;

  constructor(
    private readonly db: Db,
    private readonly opts: { sessionTtlMs?: number; hashCost?: HashCost; throttle?: FailureThrottle } = {},
  ) {
    this.throttle = opts.throttle ?? new FailureThrottle(5, 60_000);
  }

  get sessionTtlMs(): number {
    return this.opts.sessionTtlMs ?? 12 * 3600_000;
  }

  hasAdmin(): boolean {
    return this.db.select({ id: admins.id }).from(admins).limit(1).get() !== undefined;
  }

  /** setPassword: creates the admin if it does not exist; signs out its existing sessions. */
  async setPassword(username: string, password: string): Promise<{ created: boolean }> {
    if (!adminUsernamePattern.test(username)) throw new ValidationError({ username: "admin name must be 1-64 letters, digits or . _ - @" });
    if (password.length < 8 || password.length > 256) throw new ValidationError({ password: "password must be 8-256 characters" });
    const passwordHash = await Bun.password.hash(password, { algorithm: "argon2id", ...this.opts.hashCost });
    const t = Date.now();
    const existing = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (existing) {
      this.db.transaction((tx) => {
        tx.update(admins).set({ passwordHash, updatedAt: t }).where(eq(admins.id, existing.id)).run();
        tx.delete(adminSessions).where(eq(adminSessions.adminId, existing.id)).run();
      });
      return { created: false };
    }
    this.db.insert(admins).values({ username, passwordHash, createdAt: t, updatedAt: t }).run();
    return { created: true };
  }

  /**
   * signIn: checks the password and opens a session. Failures are counted per address and per
   * username; past the limit the answer is `rate_limited` without hashing.
   */
  async signIn(username: string, password: string, remote = "unknown"): Promise<{ token: string; session: AdminSession }> {
    const keys = [`a:${remote}`, `u:${username}`];
    if (keys.some((k) => this.throttle.blocked(k))) {
      throw new AppError("rate_limited", "too many failed sign-ins; wait a minute and try again");
    }
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    const ok = admin
      ? await Bun.password.verify(password, admin.passwordHash).catch(() => false)
      : (await Bun.password.hash(password, { algorithm: "argon2id", ...this.opts.hashCost }), false);
    if (!admin || !ok) {
      for (const k of keys) this.throttle.fail(k);
      throw new AppError("unauthorized", "wrong username or password");
    }
    return this.#openSession(admin.id, admin.username);
  }

  #openSession(adminId: number, username: string): { token: string; session: AdminSession } {
    const token = randomToken();
    const t = Date.now();
    const session: AdminSession = {
      adminId,
      username,
      csrfToken: randomToken(),
      expiresAt: t + this.sessionTtlMs,
    };
    this.db.delete(adminSessions).where(lt(adminSessions.expiresAt, t)).run();
    this.db
      .insert(adminSessions)
      .values({ id: sha256Hex(token), adminId, csrfToken: session.csrfToken, createdAt: t, expiresAt: session.expiresAt })
      .run();
    return { token, session };
  }

  resolveSession(token: string | undefined): AdminSession | undefined {
    if (!token || token.length > 128) return undefined;
    const row = this.db
      .select({ adminId: adminSessions.adminId, csrfToken: adminSessions.csrfToken, expiresAt: adminSessions.expiresAt, username: admins.username })
      .from(adminSessions)
      .innerJoin(admins, eq(admins.id, adminSessions.adminId))
      .where(and(eq(adminSessions.id, sha256Hex(token)), gt(adminSessions.expiresAt, Date.now())))
      .get();
    return row;
  }

  signOut(token: string | undefined): void {
    if (token) this.db.delete(adminSessions).where(eq(adminSessions.id, sha256Hex(token))).run();
  }

  // ---------------------------------------------------------------- first start

  /** startSetup: a one-time token, valid for an hour, for choosing the first admin password. */
  startSetup(ttlMs = 3600_000): string {
    const token = randomToken();
    this.#setup = { token, expiresAt: Date.now() + ttlMs };
    return token;
  }

  setupTokenValid(token: string | undefined): boolean {
    const s = this.#setup;
    if (!s || !token || Date.now() > s.expiresAt || this.hasAdmin()) return false;
    return token.length === s.token.length && timingSafeEqual(Buffer.from(token), Buffer.from(s.token));
  }

  async completeSetup(token: string, username: string, password: string): Promise<{ token: string; session: AdminSession }> {
    if (!this.setupTokenValid(token)) throw new AppError("forbidden", "this setup link is invalid or has expired");
    await this.setPassword(username, password);
    this.#setup = undefined;
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get()!;
    return this.#openSession(admin.id, admin.username);
  }

  // ---------------------------------------------------------------- API tokens

  createApiToken(name: string): { token: string; row: ApiTokenRow } {
    const trimmed = name.trim();
    if (trimmed.length < 1 || trimmed.length > 64) throw new ValidationError({ name: "token name must be 1-64 characters" });
    const secret = `gh_${randomToken()}`;
    const row = this.db
      .insert(apiTokens)
      .values({ name: trimmed, tokenHash: sha256Hex(secret), prefix: secret.slice(0, 7), createdAt: Date.now() })
      .returning()
      .get();
    return { token: secret, row };
  }

  listApiTokens(): ApiTokenRow[] {
    return this.db.select().from(apiTokens).all();
  }

  revokeApiToken(id: number): void {
    const res = this.db.delete(apiTokens).where(eq(apiTokens.id, id)).returning().get();
    if (!res) throw new NotFoundError("API token");
  }

  resolveApiToken(secret: string | undefined): ApiTokenRow | undefined {
    if (!secret?.startsWith("gh_") || secret.length > 128) return undefined;
    const row = this.db.select().from(apiTokens).where(eq(apiTokens.tokenHash, sha256Hex(secret))).get();
    if (row) this.db.update(apiTokens).set({ lastUsedAt: Date.now() }).where(eq(apiTokens.id, row.id)).run();
    return row;
  }
}
