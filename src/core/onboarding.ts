import { eq } from "drizzle-orm";
import { isBusy, relaxed, type Db } from "../db/client.ts";
import { onboardingRequests, onboardingWindow, type OnboardingRequestRow } from "../db/schema.ts";
import { AppError, ConflictError, isPassing, NotFoundError, ValidationError } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import type { ActivityLog } from "./activity.ts";
import type { CredentialStore } from "./credentials.ts";
import type { EventBus } from "./events.ts";
import {
  integrationTypes,
  isIntegrationType,
  type Integration,
  type IntegrationType,
  type LoginMeta,
} from "./types.ts";

/** OnboardingRequest: a client that tried to log in with credentials we do not know; never its password. */
export type OnboardingRequest = Omit<OnboardingRequestRow, "passwordHash">;

export interface OnboardingStatus {
  open: boolean;
  openUntil: number | null;
  /** the types the window is open for (null: every type) */
  types: IntegrationType[] | null;
  openedBy: string | null;
  pending: number;
  /** attempts not recorded because the list was full, or the address sent too many new ones */
  refused: number;
}

export type ConsiderOutcome =
  | "recorded"
  | "pending"
  | "closed"
  | "type-not-open"
  | "rejected"
  | "full"
  | "rate-limited"
  | "busy"
  | "invalid"
  | "conflict";

/** fingerprintOf: what a device owner checks against the device: SHA-256(username ":" password), 8 hex digits, grouped `3f2a 9c1d`. */
export function fingerprintOf(username: string, password: string): string {
  const hex = new Bun.CryptoHasher("sha256").update(`${username}:${password}`).digest("hex").slice(0, 8);
  return `${hex.slice(0, 4)} ${hex.slice(4)}`;
}

/**
 * RequestTypeOf: the type an unknown login becomes as a request: the listener's own, unless another
 * part claims it (the VRPC part claims MQTT logins that look like its agents). From the registry.
 */
export type RequestTypeOf = (listener: IntegrationType, username: string, clientId?: string) => IntegrationType;

interface OpenWindow {
  openUntil: number;
  types: IntegrationType[] | null;
  openedBy: string;
}

export interface OnboardingOptions {
  /** which type a request is (default: the listener's own) */
  requestTypeOf?: RequestTypeOf;
  maxPending?: number;
  /** new requests one address may cause per minute */
  newPerAddressPerMinute?: number;
  /** argon2id hashes of presented passwords at once (the rest wait for the device's next retry) */
  hashConcurrency?: number;
  now?: () => number;
}

/** maxTimerMs: the longest delay a timer takes (a signed 32-bit count of ms). */
const maxTimerMs = 2 ** 31 - 1;

/**
 * Onboarding: smart onboarding. While an admin has the window open, a login with an unknown username
 * on any listener is refused as usual and listed as a pending request; approving it creates an
 * integration with the presented password's hash, so the device's next retry gets in unchanged.
 *
 * The window and the requests live in SQLite so the CLI can open, list and approve too; the appliance
 * keeps a mirror and closes any window left open when it starts. Bounded: at most `maxPending`
 * requests, a per-address rate of new ones, a few hashes at a time, field lengths capped.
 */
export class Onboarding {
  #requests = new Map<string, OnboardingRequestRow>();
  /** per request: an HMAC of the presented password, to tell a retry from a different password cheaply */
  #tags = new Map<string, string>();
  #rejected = new Set<string>();
  #window: OpenWindow | undefined;
  #newByAddress = new Map<string, { start: number; count: number }>();
  #hashing = 0;
  #refused = 0;
  #dirty = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #key = crypto.getRandomValues(new Uint8Array(32));

  constructor(
    private readonly db: Db,
    private readonly credentials: CredentialStore,
    private readonly events: EventBus,
    private readonly activity: ActivityLog,
    private readonly log: Logger,
    private readonly opts: OnboardingOptions = {},
  ) {
    this.reload();
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  #tag(password: string): string {
    return new Bun.CryptoHasher("sha256", this.#key).update(password).digest("hex");
  }

  // ---------------------------------------------------------------- the window

  status(): OnboardingStatus {
    const w = this.#openWindow();
    return {
      open: w !== undefined,
      openUntil: w?.openUntil ?? null,
      types: w?.types ?? null,
      openedBy: w?.openedBy ?? null,
      pending: this.#requests.size,
      refused: this.#refused,
    };
  }

  #openWindow() {
    const w = this.#window;
    if (w && w.openUntil <= this.#now()) {
      this.close("expired");
      return undefined;
    }
    return w;
  }

  /** open: for `minutes` (1-60, default 10), optionally for some types only. */
  open(opts: { minutes?: number; types?: string[] | null; by: string }): OnboardingStatus {
    const minutes = opts.minutes ?? 10;
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 60)
      throw new ValidationError({ minutes: "onboarding opens for 1 to 60 minutes" });
    const types = opts.types && opts.types.length ? opts.types : null;
    if (types && !types.every(isIntegrationType))
      throw new ValidationError({ types: `types must be among ${integrationTypes.join(", ")}` });
    const openUntil = this.#now() + minutes * 60_000;
    const row = { id: 1, openUntil, types: types ? JSON.stringify(types) : null, openedBy: opts.by };
    this.db.transaction((tx) => {
      // the requests of a window the clock closed on a full disk are not this one's
      if (this.#deletePending) tx.delete(onboardingRequests).run();
      tx.insert(onboardingWindow).values(row).onConflictDoUpdate({ target: onboardingWindow.id, set: row }).run();
    });
    this.#deletePending = false;
    this.#setWindow({ openUntil, types: types as IntegrationType[] | null, openedBy: opts.by });
    this.activity.record("onboarding.opened", types ? types.join(",") : "all types", `for ${minutes} min`);
    this.log.info("onboarding opened", { minutes, types: types?.join(","), by: opts.by });
    return this.status();
  }

  /** close: by an admin, or by the clock; pending requests vanish with the window. */
  close(reason: "closed" | "expired" = "closed"): void {
    const wasOpen = this.#window !== undefined;
    const pending = [...this.#requests.values()];
    try {
      this.#deleteWindow();
    } catch (err) {
      // An admin's close that cannot be written changes nothing (503: a restart would open the window again).
      // The clock's goes on in memory (found from outside: on a full disk its throw stopped the whole
      // appliance): the window's time is over whatever the disk holds (a row past its time is expired at the
      // next start too); its rows go at the next flush.
      if (reason !== "expired" || !isPassing(err)) throw err;
      this.#deletePending = true;
    }
    this.#setWindow(undefined);
    this.#requests.clear();
    this.#tags.clear();
    this.#dirty.clear();
    this.#rejected.clear();
    this.#newByAddress.clear();
    this.#refused = 0;
    for (const r of pending)
      this.activity.record("onboarding.expired", r.username, `${r.type} request, ${r.attempts} attempts`, "system");
    if (wasOpen) {
      this.activity.record(
        reason === "expired" ? "onboarding.window-expired" : "onboarding.closed",
        "",
        `${pending.length} pending dropped`,
        reason === "expired" ? "system" : undefined,
      );
      this.log.info("onboarding closed", { reason, dropped: pending.length });
      this.events.emit("onboarding.changed", {});
    }
  }

  /** the closed window's rows, not yet deleted (a full disk or a lock when the clock closed it) */
  #deletePending = false;

  #deleteWindow(): void {
    this.db.transaction((tx) => {
      tx.delete(onboardingWindow).run();
      tx.delete(onboardingRequests).run();
    });
    this.#deletePending = false;
  }

  #setWindow(w: OpenWindow | undefined): void {
    this.#window = w;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (w) this.#arm(w);
    this.events.emit("onboarding.changed", {});
  }

  /**
   * #arm: closes the window on time. A timer waits at most 2^31-1 ms (~24.8 days; a longer delay is
   * Node's TimeoutOverflowWarning and fires at once): a window until a far-off date (a restored or
   * hand-written row) waits in such steps.
   */
  #arm(w: OpenWindow): void {
    const wait = Math.min(maxTimerMs, Math.max(0, w.openUntil - this.#now()) + 5);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#openWindow() === w && this.#window === w) this.#arm(w);
    }, wait);
    this.#timer.unref?.();
  }

  // ---------------------------------------------------------------- requests

  /**
   * takes: would `consider` take this unknown login as a request (the window is open for its type, the
   * name was not rejected, the fields fit)? Asked synchronously by the login path, so an attempt that
   * becomes a request is not shown as a failed login; whether it is listed (the list may be full, the
   * address over its rate) is `consider`'s to say.
   */
  takes(listener: IntegrationType, username: string, password: string, meta: LoginMeta): boolean {
    const w = this.#openWindow();
    if (!w) return false;
    const type = this.opts.requestTypeOf?.(listener, username, meta.clientId) ?? listener;
    if (w.types && !w.types.includes(type)) return false;
    if (username.length === 0 || username.length > 128 || password.length < 1 || password.length > 256) return false;
    return !this.#rejected.has(username);
  }

  list(): OnboardingRequest[] {
    return [...this.#requests.values()].sort((a, b) => a.id - b.id).map(({ passwordHash: _, ...r }) => r);
  }

  /**
   * consider: a login with an unknown username (or an explicit registration). Records or updates its
   * request while the window is open; says what happened for the HTTP registration route.
   */
  async consider(
    listener: IntegrationType,
    username: string,
    password: string,
    meta: LoginMeta,
    explicitType?: IntegrationType,
  ): Promise<ConsiderOutcome> {
    const w = this.#openWindow();
    if (!w) return "closed";
    const type = explicitType ?? this.opts.requestTypeOf?.(listener, username, meta.clientId) ?? listener;
    if (w.types && !w.types.includes(type)) return "type-not-open";
    // Listed even when the name could not become an integration (the admin sees who knocks; approving
    // it fails with the reason); bounded either way.
    if (username.length === 0 || username.length > 128 || password.length < 1 || password.length > 256)
      return "invalid";
    if (this.#rejected.has(username)) return "rejected";
    const now = this.#now();
    const existing = this.#requests.get(username);
    if (existing) {
      if (this.#tags.get(username) !== this.#tag(password) || existing.type !== type) return "conflict";
      existing.attempts++;
      existing.lastSeen = now;
      existing.clientId = (meta.clientId ?? existing.clientId).slice(0, 256);
      existing.remote = (meta.remote ?? existing.remote).slice(0, 64);
      this.#dirty.add(username);
      this.events.emit("onboarding.changed", {});
      return "pending";
    }
    if (this.#requests.size >= (this.opts.maxPending ?? 100)) {
      this.#refused++;
      return "full";
    }
    const address = meta.remote ?? "local";
    const budget = this.#newByAddress.get(address);
    if (budget && now - budget.start < 60_000 && budget.count >= (this.opts.newPerAddressPerMinute ?? 10)) {
      this.#refused++;
      return "rate-limited";
    }
    if (this.#hashing >= (this.opts.hashConcurrency ?? 2)) return "busy";
    if (!budget || now - budget.start >= 60_000) this.#newByAddress.set(address, { start: now, count: 1 });
    else budget.count++;
    if (this.#newByAddress.size > 10_000) this.#newByAddress.delete(this.#newByAddress.keys().next().value!);
    this.#hashing++;
    let passwordHash: string;
    try {
      passwordHash = await this.credentials.hash(password);
    } finally {
      this.#hashing--;
    }
    // The window may have closed, or another attempt recorded it, while we hashed.
    if (!this.#openWindow() || this.#requests.has(username) || this.credentials.findByUsername(username))
      return this.#requests.has(username) ? "pending" : "closed";
    const row = this.db
      .insert(onboardingRequests)
      .values({
        type,
        username,
        passwordHash,
        clientId: (meta.clientId ?? "").slice(0, 256),
        remote: (meta.remote ?? "").slice(0, 64),
        fingerprint: fingerprintOf(username, password),
        firstSeen: now,
        lastSeen: now,
        attempts: 1,
      })
      .onConflictDoNothing()
      .returning()
      .get();
    if (!row) return "pending";
    this.#requests.set(username, row);
    this.#tags.set(username, this.#tag(password));
    this.log.info("onboarding request", {
      type,
      username,
      clientId: row.clientId || undefined,
      remote: row.remote || undefined,
    });
    this.events.emit("onboarding.changed", {});
    return "recorded";
  }

  #byId(id: number): OnboardingRequestRow {
    for (const r of this.#requests.values()) if (r.id === id) return r;
    throw new NotFoundError("onboarding request");
  }

  /**
   * approve: each request becomes an integration of its type with the presented password's hash, so
   * the device's next retry gets in. Fails per request when its username was taken meanwhile.
   */
  approve(
    ids: number[],
    settings: { description?: string; publishAcl?: string[]; subscribeAcl?: string[] } = {},
  ): { approved: Integration[]; failed: { id: number; message: string }[] } {
    const approved: Integration[] = [];
    const failed: { id: number; message: string }[] = [];
    for (const id of ids) {
      try {
        const r = this.#byId(id);
        if (this.credentials.findByUsername(r.username)) {
          throw new ConflictError(`username "${r.username}" already belongs to an integration; reject this request`);
        }
        // One activity entry per approval (this one): the integration is created with its permissions
        // at once, and its own `integration.created` entry is left out (`via`).
        const integration = this.credentials.adopt(
          {
            type: r.type,
            username: r.username,
            passwordHash: r.passwordHash,
            description: settings.description || `onboarded ${r.type} client ${r.clientId}`.trim().slice(0, 1024),
            publishAcl: settings.publishAcl,
            subscribeAcl: settings.subscribeAcl,
          },
          "onboarding",
        );
        this.#remove(r);
        const acl =
          settings.publishAcl || settings.subscribeAcl
            ? `; may publish to ${integration.publishAcl.join(" ") || "nothing"}, subscribe to ${integration.subscribeAcl.join(" ") || "nothing"}`
            : "";
        this.activity.record(
          "onboarding.approved",
          r.username,
          `${r.type} from ${r.remote || "?"}, fingerprint ${r.fingerprint}${acl}`,
        );
        approved.push(integration);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        failed.push({ id, message: err.message });
      }
    }
    if (approved.length) this.events.emit("onboarding.changed", {});
    return { approved, failed };
  }

  /** reject: the request goes, and that username is ignored for the rest of the window. */
  reject(id: number): void {
    const r = this.#byId(id);
    this.#remove(r);
    this.#rejected.add(r.username);
    this.activity.record("onboarding.rejected", r.username, `${r.type} from ${r.remote || "?"}`);
    this.events.emit("onboarding.changed", {});
  }

  #remove(r: OnboardingRequestRow): void {
    this.db.delete(onboardingRequests).where(eq(onboardingRequests.id, r.id)).run();
    this.#requests.delete(r.username);
    this.#tags.delete(r.username);
    this.#dirty.delete(r.username);
  }

  /** flush: attempt counts and last-seen times are written behind, like last logins. */
  flush(): void {
    if (this.#deletePending && !this.#window) {
      try {
        this.#deleteWindow();
      } catch (err) {
        if (!isPassing(err)) throw err; // still full, or locked: at the next flush
      }
    }
    if (this.#dirty.size === 0) return;
    const rows = [...this.#dirty]
      .map((u) => this.#requests.get(u))
      .filter((r): r is OnboardingRequestRow => r !== undefined);
    try {
      relaxed(this.db, () =>
        this.db.transaction((tx) => {
          for (const r of rows)
            tx.update(onboardingRequests)
              .set({ attempts: r.attempts, lastSeen: r.lastSeen, clientId: r.clientId, remote: r.remote })
              .where(eq(onboardingRequests.id, r.id))
              .run();
        }),
      );
      this.#dirty.clear();
    } catch (err) {
      if (!isBusy(err)) throw err; // locked by another process: written at the next flush
    }
  }

  /** reload: the window and requests as the database has them (another process, the CLI, may have written). */
  reload(): void {
    const w = this.db.select().from(onboardingWindow).get();
    const next =
      w && w.openUntil > this.#now()
        ? {
            openUntil: w.openUntil,
            types: w.types ? (JSON.parse(w.types) as IntegrationType[]) : null,
            openedBy: w.openedBy,
          }
        : undefined;
    if (JSON.stringify(next) !== JSON.stringify(this.#window)) this.#setWindow(next);
    const rows = this.db.select().from(onboardingRequests).all();
    const seen = new Set(rows.map((r) => r.username));
    for (const r of rows) {
      const mine = this.#requests.get(r.username);
      if (!mine) this.#requests.set(r.username, r);
      else if (!this.#dirty.has(r.username)) Object.assign(mine, r);
    }
    for (const u of [...this.#requests.keys()]) {
      if (!seen.has(u)) {
        this.#requests.delete(u);
        this.#tags.delete(u);
      }
    }
  }

  /** start: a restart leaves onboarding closed. */
  start(): void {
    if (this.db.select().from(onboardingWindow).get() || this.#requests.size) this.close("closed");
  }

  stop(): void {
    this.flush();
    if (this.#timer) clearTimeout(this.#timer);
  }
}
