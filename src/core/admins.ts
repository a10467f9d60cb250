import { timingSafeEqual } from "node:crypto";
import { and, eq, gt, isNull, lt, or, sql } from "drizzle-orm";
import { isBusy, relaxed, type Db } from "../db/client.ts";
import { adminRecoveryCodes, adminSessions, admins, apiTokens, type AdminRow, type ApiTokenRow } from "../db/schema.ts";

// The tokens page shows these rows: views take the core's types, never the schema's.
export type { ApiTokenRow } from "../db/schema.ts";
import { AppError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { randomToken, sha256Hex } from "../lib/ids.ts";
import type { HashCost } from "./credentials.ts";
import { verifyHash } from "./credentials/hashing.ts";
import { FailureThrottle, FairScheduler, QueueFullError, pairKey } from "./throttle.ts";
import {
  newRecoveryCode,
  newTotpSecret,
  normalRecoveryCode,
  recoveryCodeCount,
  recoveryCodeHash,
  totpStep,
  totpUri,
} from "./second-factor.ts";

/**
 * AdminRole: `full` changes anything; `read-only` sees every page and changes nothing but its own
 * sign-in (password, second factor), and never sees a secret (web/auth.tsx enforces it per route).
 */
export type AdminRole = "full" | "read-only";
export const adminRoles: readonly AdminRole[] = ["full", "read-only"];

/** roleOf: a stored role; anything but `full` (a hand-edited or restored row) counts as read-only. */
export function roleOf(stored: string): AdminRole {
  return stored === "full" ? "full" : "read-only";
}

/** SignInStep: a sign-in either opens a session or, for an admin with a second factor, asks for a code. */
export type SignInStep = { token: string; session: AdminSession } | { pending: string; username: string };

/** pendingTtlMs: how long the code form stays valid after the right password (then the password again). */
export const pendingTtlMs = 5 * 60_000;
/** pendingMaxCodes: wrong codes one password check buys; then the password is asked again. */
export const pendingMaxCodes = 5;
/** pendingMax: sign-ins waiting for a code at once (each cost a right password); the oldest go first. */
const pendingMax = 1000;
/** enrolTtlMs: how long a shown QR code can be confirmed. */
const enrolTtlMs = 10 * 60_000;

export interface AdminSession {
  adminId: number;
  username: string;
  csrfToken: string;
  expiresAt: number;
  role: AdminRole;
}

export const adminUsernamePattern = /^[A-Za-z0-9._\-@]{1,64}$/;

/**
 * Admin password checks have their own scheduler, not the devices' (core/credentials/verifier.ts):
 * - a device storm (a line of 1 000 devices with chosen passwords reconnecting after a power cut, each
 *   from its own address, all clean) would put the admin's lane behind every device lane of the round
 *   robin: the admin must get in precisely when the devices misbehave; and a spray against the admin
 *   must not slow device logins;
 * - memory stays bounded by the sum: 2 device hashes + 1 admin hash in flight, 3 x 64 MiB of argon2id;
 * - one at a time is enough for people: a sign-in waits for at most the check running now, ~0.1 s.
 * The waiting line is bounded too: beyond 64, an attempt that ranks no better than the worst waiting
 * one is refused at once (429, no hash), and a better one (a clean address) takes that one's place.
 */
export const adminHashConcurrency = 1;
export const adminMaxQueued = 64;

/**
 * AdminStore: admin accounts, their sign-in sessions, the first-start setup token and API tokens.
 * Cookies and API tokens are 256-bit random values; the database keeps only their SHA-256, so a
 * copied database file does not sign anybody in.
 */
export class AdminStore {
  #setup: { token: string; expiresAt: number } | undefined;
  /** per (address, name): the hard limit */
  readonly throttle: FailureThrottle;
  #addressThrottle = new FailureThrottle(20, 60_000);
  /** per address: every sign-in attempt of the last minute, refused ones too (a person sends one at a time) */
  #addressAttempts = new FailureThrottle(Number.MAX_SAFE_INTEGER, 60_000);
  /** admin password checks: one at a time, clean addresses first, lanes with one attempt before busy ones */
  readonly scheduler = new FairScheduler(adminHashConcurrency, { maxQueued: adminMaxQueued, busyLanesLast: true });
  /** recent check duration (ms), for the answer to an unknown name */
  #hashMs = 100;
  /** bumped when a name's password is set: its old pair windows no longer apply */
  #generations = new Map<string, number>();
  #updatedAt = new Map<string, number>();
  /** sign-ins that passed the password and wait for a code: SHA-256 of the form's token -> who */
  #pending = new Map<
    string,
    { adminId: number; username: string; expiresAt: number; codes: number; userAgent: string }
  >();
  /** per name: wrong codes of the last minute from any address (10; a code has only a million values) */
  #codeThrottle = new FailureThrottle(10, 60_000);
  /** TOTP keys shown as a QR code and not yet confirmed, per admin id */
  #enrolments = new Map<number, { secret: string; expiresAt: number }>();

  constructor(
    private readonly db: Db,
    private readonly opts: {
      sessionTtlMs?: number;
      hashCost?: HashCost;
      throttle?: FailureThrottle;
      onAttempt?: (a: { username: string; remote: string; outcome: "signed-in" | "failed" | "rate-limited" }) => void;
    } = {},
  ) {
    this.throttle = opts.throttle ?? new FailureThrottle(5, 60_000);
    this.syncExternal();
  }

  get sessionTtlMs(): number {
    return this.opts.sessionTtlMs ?? 12 * 3600_000;
  }

  /** list: every admin, without its hash. */
  list(): { username: string; createdAt: number; role: AdminRole; secondFactor: boolean }[] {
    return this.db
      .select({ username: admins.username, createdAt: admins.createdAt, role: admins.role, totp: admins.totpSecret })
      .from(admins)
      .orderBy(admins.username)
      .all()
      .map((a) => ({
        username: a.username,
        createdAt: a.createdAt,
        role: roleOf(a.role),
        secondFactor: a.totp !== null,
      }));
  }

  hasAdmin(): boolean {
    return this.db.select({ id: admins.id }).from(admins).limit(1).get() !== undefined;
  }

  /** setPassword: creates the admin if it does not exist; signs out its existing sessions. */
  async setPassword(username: string, password: string, role?: AdminRole): Promise<{ created: boolean }> {
    if (!adminUsernamePattern.test(username))
      throw new ValidationError({ username: "admin name must be 1-64 letters, digits or . _ - @" });
    if (password.length < 8 || password.length > 256)
      throw new ValidationError({ password: "password must be 8-256 characters" });
    const passwordHash = await Bun.password.hash(password, { algorithm: "argon2id", ...this.opts.hashCost });
    const t = Date.now();
    const existing = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (existing) {
      this.db.transaction((tx) => {
        tx.update(admins).set({ passwordHash, updatedAt: t }).where(eq(admins.id, existing.id)).run();
        tx.delete(adminSessions).where(eq(adminSessions.adminId, existing.id)).run();
      });
      this.unlock(username);
      this.#updatedAt.set(username, t);
      return { created: false };
    }
    this.db
      .insert(admins)
      .values({ username, passwordHash, createdAt: t, updatedAt: t, role: role ?? "full" })
      .run();
    return { created: true };
  }

  /**
   * beginSignIn: checks the password; opens a session, or for an admin with a second factor returns
   * the token of the code form (`completeSignIn`). The throttling rule for admins:
   * - refused outright (`rate_limited`) per (address, name) pair after 5 failures a minute, and per
   *   address after 20 (an address guessing many names); attempts count when they start, so a burst
   *   gets no more password checks than the limit, and the right password inside it is refused too;
   * - a name alone, guessed from many addresses, is never refused: its guesses wait in the scheduler's
   *   line (one check at a time, at most 64 waiting). The next check is a clean attempt (its pair and
   *   address have no failure, and its address sent no other attempt this minute), then one from an
   *   address with nothing else under way, round robin among equals: the real admin, signing in from an
   *   address that is not guessing, goes ahead of every waiting guess of addresses that sent several or
   *   failed already. What it cannot tell apart: a fresh address's very first guess (it ties with the
   *   admin; an attacker with more addresses than the line holds can make the admin wait up to 64 checks);
   * - `gatehouse admin set-password` (or any password change) ends that name's lock-outs.
   * Every attempt is reported to `onAttempt` (the activity log and the journal). `signal` (the
   * request's) drops an attempt still waiting when its client goes away.
   */
  async beginSignIn(
    username: string,
    password: string,
    remote = "unknown",
    signal?: AbortSignal,
    /** the browser's User-Agent, kept with the session to tell sessions apart */
    userAgent = "",
  ): Promise<SignInStep> {
    const admin = await this.#checkPassword(username, password, remote, signal);
    if (admin.totpSecret !== null) return this.#startPending(admin, userAgent);
    // the session first: one that cannot be written (a full disk, 503) is no sign-in to log
    const step = this.#openSession(admin.id, admin.username, roleOf(admin.role), { remote, userAgent });
    this.opts.onAttempt?.({ username: admin.username, remote, outcome: "signed-in" });
    return step;
  }

  /**
   * signIn: a sign-in with the password alone (an admin without a second factor: tests, the password
   * check of `changeOwnPassword`); an admin with one is refused here, the page goes through `beginSignIn`.
   */
  async signIn(
    username: string,
    password: string,
    remote = "unknown",
    signal?: AbortSignal,
    /** the browser's User-Agent, kept with the session to tell sessions apart */
    userAgent = "",
  ): Promise<{ token: string; session: AdminSession }> {
    const step = await this.beginSignIn(username, password, remote, signal, userAgent);
    if ("pending" in step) {
      this.#pending.delete(sha256Hex(step.pending));
      throw new AppError("forbidden", "this admin signs in with a code as well: use the sign-in page");
    }
    return step;
  }

  /** #checkPassword: the throttled, scheduled password check of `beginSignIn` (see there); the admin's row if right. */
  async #checkPassword(username: string, password: string, remote: string, signal?: AbortSignal): Promise<AdminRow> {
    const name = username.slice(0, 64);
    const generation = this.#generations.get(name) ?? 0;
    const pair = pairKey(remote, `${name}\0${generation}`);
    this.#addressAttempts.fail(`a:${remote}`);
    const settlePair = this.throttle.reserve(pair);
    const settleAddress = settlePair && this.#addressThrottle.reserve(`a:${remote}`);
    if (!settlePair || !settleAddress) {
      settlePair?.(false);
      this.opts.onAttempt?.({ username: name, remote, outcome: "rate-limited" });
      throw new AppError("rate_limited", "too many failed sign-ins; wait a minute and try again");
    }
    let ok = false;
    /** the password was checked (a refusal from a full line or an abandoned wait books no failure) */
    let checked = false;
    try {
      const admin = this.db.select().from(admins).where(eq(admins.username, name)).get();
      // Clean, asked when a slot frees: no failure for this pair or address, and no other attempt from
      // this address this minute. A spray sending several guesses per address is never clean, nor is an
      // address once its first guess has failed.
      const clean = () =>
        this.throttle.failures(pair) === 0 &&
        this.#addressThrottle.failures(`a:${remote}`) === 0 &&
        this.#addressAttempts.failures(`a:${remote}`) <= 1;
      // An unknown name costs no hash; it waits in the same line and about as long as one, so timing
      // tells nothing.
      const check = async () => {
        if (!admin) return (await new Promise((r) => setTimeout(r, this.#hashMs)), false);
        const t = performance.now();
        // A stored hash above `hashLimits` (a restored or hand-edited database) is refused, never computed.
        const right = await verifyHash(password, admin.passwordHash);
        this.#hashMs = this.#hashMs * 0.8 + (performance.now() - t) * 0.2;
        return right;
      };
      try {
        ok = await this.scheduler.run(remote, clean, check, signal);
        checked = true;
      } catch (err) {
        if (err instanceof QueueFullError) {
          this.opts.onAttempt?.({ username: name, remote, outcome: "rate-limited" });
          throw new AppError("rate_limited", "too many sign-ins waiting; try again in a moment");
        }
        if (signal?.aborted) throw new AppError("unavailable", "the sign-in was abandoned by its client");
        throw err;
      }
      if (!admin || !ok) {
        this.opts.onAttempt?.({ username: name, remote, outcome: "failed" });
        throw new AppError("unauthorized", "wrong username or password");
      }
      return admin;
    } finally {
      settlePair(checked && !ok);
      settleAddress(checked && !ok);
    }
  }

  /**
   * changeOwnPassword: the signed-in admin proves the current password (throttled like a sign-in),
   * every session of that admin ends, and a fresh one is opened for the page that asked.
   */
  async changeOwnPassword(
    username: string,
    current: string,
    next: string,
    remote = "unknown",
    userAgent = "",
  ): Promise<{ token: string; session: AdminSession }> {
    try {
      await this.#checkPassword(username, current, remote);
    } catch (err) {
      if (err instanceof AppError && err.code === "unauthorized")
        throw new ValidationError({ current: "the current password is wrong" });
      throw err;
    }
    await this.setPassword(username, next);
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get()!;
    return this.#openSession(admin.id, admin.username, roleOf(admin.role), { remote, userAgent });
  }

  /** addAdmin: a new admin; an existing name is a conflict, never a silent password change. */
  async addAdmin(username: string, password: string, role: AdminRole = "full"): Promise<void> {
    if (this.db.select({ id: admins.id }).from(admins).where(eq(admins.username, username)).get()) {
      throw new AppError("conflict", `an admin named ${username} exists`, { username: "this admin exists" });
    }
    await this.setPassword(username, password, role);
  }

  /**
   * setRole: full or read-only. The last full admin stays full (nobody could change anything on the
   * page again); a change takes effect on that admin's next request (sessions read the role each time).
   */
  setRole(username: string, role: AdminRole): { changed: boolean } {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (!admin) throw new AppError("not_found", "no such admin");
    if (roleOf(admin.role) === role) return { changed: false };
    if (role !== "full" && this.#fullAdmins() <= 1)
      throw new AppError("validation", "the last full admin cannot be made read-only", {
        admin: "the last full admin cannot be made read-only",
      });
    this.db.update(admins).set({ role, updatedAt: Date.now() }).where(eq(admins.id, admin.id)).run();
    return { changed: true };
  }

  #fullAdmins(): number {
    return this.list().filter((a) => a.role === "full").length;
  }

  /** removeAdmin: not oneself (sign in as another admin for that), never the last one. Its sessions end. */
  removeAdmin(username: string, actor: string): void {
    if (username === actor)
      throw new AppError("validation", "you cannot remove yourself", {
        admin: "sign in as another admin to remove this one",
      });
    const all = this.list();
    if (!all.some((a) => a.username === username)) throw new AppError("not_found", "no such admin");
    if (all.length <= 1)
      throw new AppError("validation", "the last admin cannot be removed", {
        admin: "the last admin cannot be removed",
      });
    if (all.find((a) => a.username === username)?.role === "full" && this.#fullAdmins() <= 1)
      throw new AppError("validation", "the last full admin cannot be removed", {
        admin: "the last full admin cannot be removed",
      });
    this.db.delete(admins).where(eq(admins.username, username)).run(); // sessions cascade
  }

  /** sessions: every open admin session (no tokens: when it started and ends, and the browser and address it began from). */
  sessions(): {
    id: string;
    username: string;
    createdAt: number;
    expiresAt: number;
    userAgent: string;
    remote: string;
  }[] {
    return this.db
      .select({
        id: adminSessions.id,
        username: admins.username,
        createdAt: adminSessions.createdAt,
        expiresAt: adminSessions.expiresAt,
        userAgent: adminSessions.userAgent,
        remote: adminSessions.remote,
      })
      .from(adminSessions)
      .innerJoin(admins, eq(admins.id, adminSessions.adminId))
      .where(gt(adminSessions.expiresAt, Date.now()))
      .orderBy(adminSessions.createdAt)
      .all();
  }

  /** endSession: by its stored id (the token's hash). */
  endSession(id: string): void {
    this.db.delete(adminSessions).where(eq(adminSessions.id, id)).run();
  }

  /** unlock: a name's lock-outs end (its password was just set). */
  unlock(username: string): void {
    this.#generations.set(username, (this.#generations.get(username) ?? 0) + 1);
  }

  /** syncExternal: another process (the CLI) wrote: a password it changed ends that name's lock-outs. */
  syncExternal(): void {
    for (const a of this.db.select({ username: admins.username, updatedAt: admins.updatedAt }).from(admins).all()) {
      const seen = this.#updatedAt.get(a.username);
      if (seen !== undefined && seen !== a.updatedAt) this.unlock(a.username);
      this.#updatedAt.set(a.username, a.updatedAt);
    }
  }

  #openSession(
    adminId: number,
    username: string,
    role: AdminRole,
    client: { remote?: string; userAgent?: string } = {},
  ): { token: string; session: AdminSession } {
    const token = randomToken();
    const t = Date.now();
    const session: AdminSession = {
      adminId,
      username,
      csrfToken: randomToken(),
      expiresAt: t + this.sessionTtlMs,
      role,
    };
    this.db.delete(adminSessions).where(lt(adminSessions.expiresAt, t)).run();
    this.db
      .insert(adminSessions)
      .values({
        id: sha256Hex(token),
        adminId,
        csrfToken: session.csrfToken,
        createdAt: t,
        expiresAt: session.expiresAt,
        userAgent: (client.userAgent ?? "").slice(0, 256),
        remote: (client.remote ?? "").slice(0, 64),
      })
      .run();
    return { token, session };
  }

  resolveSession(token: string | undefined): AdminSession | undefined {
    if (!token || token.length > 128) return undefined;
    const row = this.db
      .select({
        adminId: adminSessions.adminId,
        csrfToken: adminSessions.csrfToken,
        expiresAt: adminSessions.expiresAt,
        username: admins.username,
        role: admins.role,
      })
      .from(adminSessions)
      .innerJoin(admins, eq(admins.id, adminSessions.adminId))
      .where(and(eq(adminSessions.id, sha256Hex(token)), gt(adminSessions.expiresAt, Date.now())))
      .get();
    return row && { ...row, role: roleOf(row.role) };
  }

  signOut(token: string | undefined): void {
    if (token)
      this.db
        .delete(adminSessions)
        .where(eq(adminSessions.id, sha256Hex(token)))
        .run();
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

  async completeSetup(
    token: string,
    username: string,
    password: string,
    client: { remote?: string; userAgent?: string } = {},
  ): Promise<{ token: string; session: AdminSession }> {
    if (!this.setupTokenValid(token)) throw new AppError("forbidden", "this setup link is invalid or has expired");
    // Used up now, before the password is hashed: two requests at once cannot both create an admin.
    const setup = this.#setup;
    this.#setup = undefined;
    try {
      await this.setPassword(username, password);
    } catch (err) {
      if (err instanceof ValidationError) this.#setup = setup; // a typo in the form: the link still works
      throw err;
    }
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get()!;
    return this.#openSession(admin.id, admin.username, roleOf(admin.role), client);
  }

  // ---------------------------------------------------------------- second factor (TOTP, RFC 6238)

  #startPending(admin: AdminRow, userAgent: string): SignInStep {
    const t = Date.now();
    for (const [k, p] of this.#pending)
      if (p.expiresAt <= t || this.#pending.size >= pendingMax) this.#pending.delete(k);
    const pending = randomToken();
    this.#pending.set(sha256Hex(pending), {
      adminId: admin.id,
      username: admin.username,
      expiresAt: t + pendingTtlMs,
      codes: 0,
      userAgent,
    });
    return { pending, username: admin.username };
  }

  /** pendingName: the admin a code form belongs to, while it is valid. */
  pendingName(pending: string | undefined): string | undefined {
    if (!pending || pending.length > 128) return undefined;
    const p = this.#pending.get(sha256Hex(pending));
    return p && p.expiresAt > Date.now() ? p.username : undefined;
  }

  /**
   * completeSignIn: the second step, a TOTP code or a recovery code, after the right password. Throttled
   * like the password: per (address, name) pair 5 wrong a minute and per address 20 (the same budgets
   * as the password's, counted from the start of each attempt, so a burst gets no more checks), per name
   * 10 from all addresses together, and 5 per password check; then the password is asked again. A TOTP
   * code is good once: its step must be later than the last accepted one (one UPDATE decides, so two
   * requests with the same code cannot both pass). A recovery code is marked used by the same UPDATE
   * that accepts it.
   */
  completeSignIn(
    pending: string | undefined,
    code: string,
    remote = "unknown",
  ): { token: string; session: AdminSession } | { retry: boolean; message: string } {
    const key = pending && pending.length <= 128 ? sha256Hex(pending) : "";
    const p = this.#pending.get(key);
    if (!p || p.expiresAt <= Date.now()) {
      this.#pending.delete(key);
      return { retry: false, message: "the sign-in expired; enter your password again" };
    }
    const generation = this.#generations.get(p.username) ?? 0;
    const pair = pairKey(remote, `${p.username}\0code\0${generation}`);
    const settlePair = this.throttle.reserve(pair);
    const settleAddress = settlePair && this.#addressThrottle.reserve(`a:${remote}`);
    const settleName = settleAddress && this.#codeThrottle.reserve(`${p.username}\0${generation}`);
    if (!settlePair || !settleAddress || !settleName) {
      settlePair?.(false);
      settleAddress?.(false);
      this.opts.onAttempt?.({ username: p.username, remote, outcome: "rate-limited" });
      throw new AppError("rate_limited", "too many wrong codes; wait a minute and try again");
    }
    let ok = false;
    try {
      const admin = this.db.select().from(admins).where(eq(admins.id, p.adminId)).get();
      ok = admin !== undefined && admin.totpSecret !== null && this.#acceptCode(admin, code);
      if (!admin || !ok) {
        p.codes++;
        const again = admin !== undefined && p.codes < pendingMaxCodes;
        if (!again) this.#pending.delete(key);
        this.opts.onAttempt?.({ username: p.username, remote, outcome: "failed" });
        return {
          retry: again,
          message: again ? "wrong or already used code" : "too many wrong codes; enter your password again",
        };
      }
      this.#pending.delete(key);
      const step = this.#openSession(admin.id, admin.username, roleOf(admin.role), { remote, userAgent: p.userAgent });
      this.opts.onAttempt?.({ username: admin.username, remote, outcome: "signed-in" });
      return step;
    } finally {
      settlePair(!ok);
      settleAddress(!ok);
      settleName(!ok);
    }
  }

  /** #acceptCode: a TOTP code of a step later than the last used, or an unused recovery code; used up here. */
  #acceptCode(admin: AdminRow, typed: string, at = Date.now()): boolean {
    const code = typed.trim().slice(0, 64);
    const step = admin.totpSecret ? totpStep(admin.totpSecret, code.replace(/\s/g, ""), at) : undefined;
    if (step !== undefined) {
      const res = this.db
        .update(admins)
        .set({ totpLastStep: step })
        .where(and(eq(admins.id, admin.id), or(isNull(admins.totpLastStep), lt(admins.totpLastStep, step))))
        .returning({ id: admins.id })
        .all();
      return res.length === 1;
    }
    const normal = normalRecoveryCode(code);
    if (!normal) return false;
    const res = this.db
      .update(adminRecoveryCodes)
      .set({ usedAt: at })
      .where(
        and(
          eq(adminRecoveryCodes.adminId, admin.id),
          eq(adminRecoveryCodes.codeHash, recoveryCodeHash(normal)),
          isNull(adminRecoveryCodes.usedAt),
        ),
      )
      .returning({ id: adminRecoveryCodes.id })
      .all();
    return res.length === 1;
  }

  /** secondFactor: whether the admin has one, and how many recovery codes are left. */
  secondFactor(username: string): { enabled: boolean; recoveryLeft: number } {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (!admin) throw new NotFoundError("admin");
    const left = this.db
      .select({ n: sql<number>`count(*)` })
      .from(adminRecoveryCodes)
      .where(and(eq(adminRecoveryCodes.adminId, admin.id), isNull(adminRecoveryCodes.usedAt)))
      .get()!.n;
    return { enabled: admin.totpSecret !== null, recoveryLeft: left };
  }

  /** startEnrolment: a new TOTP key for the admin's QR code, kept (in memory) until confirmed with a code. */
  startEnrolment(username: string): { secret: string; uri: string } {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (!admin) throw new NotFoundError("admin");
    if (admin.totpSecret !== null)
      throw new AppError("conflict", "a second factor is set up already; turn it off first");
    const t = Date.now();
    for (const [k, e] of this.#enrolments) if (e.expiresAt <= t) this.#enrolments.delete(k);
    const secret = newTotpSecret();
    this.#enrolments.set(admin.id, { secret, expiresAt: t + enrolTtlMs });
    return { secret, uri: totpUri(secret, admin.username) };
  }

  /** enrolment: the key being set up for this admin, if one is shown and not expired. */
  enrolment(username: string): { secret: string; uri: string } | undefined {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    const e = admin && this.#enrolments.get(admin.id);
    return e && e.expiresAt > Date.now() ? { secret: e.secret, uri: totpUri(e.secret, admin.username) } : undefined;
  }

  /**
   * confirmEnrolment: the first code from the app proves it has the key; the key is stored, the code's
   * step used up, and fresh recovery codes are returned (to be shown once; only hashes are kept).
   */
  confirmEnrolment(username: string, code: string): string[] {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (!admin) throw new NotFoundError("admin");
    const e = this.#enrolments.get(admin.id);
    if (!e || e.expiresAt <= Date.now())
      throw new AppError("validation", "the QR code expired; start again", {
        code: "the QR code expired; start again",
      });
    const step = totpStep(e.secret, code.replace(/\s/g, ""));
    if (step === undefined)
      throw new ValidationError({ code: "wrong code: check the phone's clock and type the code the app shows now" });
    const codes = Array.from({ length: recoveryCodeCount }, newRecoveryCode);
    const t = Date.now();
    this.db.transaction((tx) => {
      tx.update(admins)
        .set({ totpSecret: e.secret, totpLastStep: step, updatedAt: t })
        .where(eq(admins.id, admin.id))
        .run();
      tx.delete(adminRecoveryCodes).where(eq(adminRecoveryCodes.adminId, admin.id)).run();
      for (const c of codes)
        tx.insert(adminRecoveryCodes)
          .values({ adminId: admin.id, codeHash: recoveryCodeHash(normalRecoveryCode(c)!), createdAt: t })
          .run();
    });
    this.#enrolments.delete(admin.id);
    return codes;
  }

  /** disableSecondFactor: the signed-in admin turns it off, proving it with a current code or a recovery code. */
  disableSecondFactor(username: string, code: string): void {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (!admin) throw new NotFoundError("admin");
    if (admin.totpSecret === null) return;
    // The same per-name budget as the sign-in's codes: a stolen session cannot guess its way to turning it off.
    const settle = this.#codeThrottle.reserve(`${username}\0${this.#generations.get(username) ?? 0}`);
    if (!settle) throw new AppError("rate_limited", "too many wrong codes; wait a minute and try again");
    const ok = this.#acceptCode(admin, code);
    settle(!ok);
    if (!ok) throw new ValidationError({ code: "wrong or already used code" });
    this.#clearSecondFactor(admin.id);
  }

  /** resetSecondFactor: `gatehouse admin reset-2fa NAME` (a lost phone): off, codes gone, sessions ended. */
  resetSecondFactor(username: string): { had: boolean } {
    const admin = this.db.select().from(admins).where(eq(admins.username, username)).get();
    if (!admin) throw new NotFoundError("admin");
    this.#clearSecondFactor(admin.id);
    this.db.delete(adminSessions).where(eq(adminSessions.adminId, admin.id)).run();
    return { had: admin.totpSecret !== null };
  }

  #clearSecondFactor(adminId: number): void {
    this.db.transaction((tx) => {
      tx.update(admins)
        .set({ totpSecret: null, totpLastStep: null, updatedAt: Date.now() })
        .where(eq(admins.id, adminId))
        .run();
      tx.delete(adminRecoveryCodes).where(eq(adminRecoveryCodes.adminId, adminId)).run();
    });
    for (const [k, p] of this.#pending) if (p.adminId === adminId) this.#pending.delete(k);
  }

  // ---------------------------------------------------------------- API tokens

  /** createApiToken: a new token (its secret returned once); a read-only one may only read (monitoring, /metrics). */
  createApiToken(name: string, role: AdminRole = "full"): { token: string; row: ApiTokenRow } {
    const trimmed = name.trim();
    if (trimmed.length < 1 || trimmed.length > 64)
      throw new ValidationError({ name: "token name must be 1-64 characters" });
    const secret = `gh_${randomToken()}`;
    const row = this.db
      .insert(apiTokens)
      .values({
        name: trimmed,
        tokenHash: sha256Hex(secret),
        prefix: secret.slice(0, 7),
        createdAt: Date.now(),
        role,
      })
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
    const row = this.db
      .select()
      .from(apiTokens)
      .where(eq(apiTokens.tokenHash, sha256Hex(secret)))
      .get();
    if (row && (row.lastUsedAt ?? 0) < Date.now() - 60_000) {
      // "last used" to the minute is enough: no synchronous write (and fsync) per API request
      try {
        relaxed(this.db, () =>
          this.db.update(apiTokens).set({ lastUsedAt: Date.now() }).where(eq(apiTokens.id, row.id)).run(),
        );
      } catch (err) {
        if (!isBusy(err)) throw err;
      }
    }
    return row;
  }
}
