import { type FailureThrottle, FairScheduler, pairKey } from "../throttle.ts";
import type { IntegrationType, LoginMeta, VerifyResult } from "../types.ts";
import { hashProblem, isFastHash, isMosquittoHash, verifyHash } from "./hashing.ts";
import { publicView, type IntegrationIndex, type StoredIntegration } from "./index-memory.ts";

/**
 * LoginVerifier: the hot path of every login on every protocol.
 *
 * Caches. A correct repeat login skips argon2: the verified-credential cache maps an integration id
 * to an HMAC (per-process random key) of id, stored hash and password. Wrong passwords and unknown
 * username+password pairs get the same treatment in small negative caches, so a client retrying a
 * stale credential costs one check, not one per attempt. The plaintext is never kept, and every change
 * to an integration drops its entries (`forget`).
 *
 * The throttling rule (what an attacker can and cannot cause):
 * - the caches answer only for a password already judged by a hash: a new guess always costs a
 *   scheduled hash, so the caches are no oracle, and a client whose credential is cached gets in
 *   whatever else happens;
 * - the only outright refusal is per (address, username) pair: `limit` failed or running attempts a
 *   window. Attempts count when they start, so a burst sent at once gets no more hashes than the
 *   same attempts sent one by one, and the right password inside such a burst is refused like the rest;
 * - an address spraying many usernames, or a username sprayed from many addresses, is only slowed:
 *   hashes (every kind, off the event loop) run a few at a time (bounded memory: each argon2id holds
 *   64 MiB; a stored hash above `hashLimits` is never computed), round robin over
 *   addresses, attempts from a pair with no failures first; so a device whose own pair is clean gets
 *   in at the next free slot even while others hammer its address or its name;
 * - an unknown username costs no hash at all: the refusal waits about as long as a hash takes, so the
 *   timing does not tell names that exist from names that do not.
 */
export class LoginVerifier {
  #verified = new Map<number, string>();
  #refused = new Map<number, Map<string, number>>();
  /** argon2 verifications under way, by fingerprint */
  #inflight = new Map<string, Promise<boolean>>();
  /** unknown username + password pairs already refused (bounded; cleared when a username appears) */
  #unknownRefused = new Map<string, number>();
  #hmacKey = crypto.getRandomValues(new Uint8Array(32));
  /** recent hash duration (ms), for the answer to an unknown username */
  #hashMs = 100;
  readonly scheduler: FairScheduler;
  readonly stats = { hashVerifies: 0, cacheHits: 0, refusedCacheHits: 0, throttled: 0 };

  constructor(
    private readonly index: IntegrationIndex,
    /** which integration types each listener admits (VRPC agents are MQTT clients of our broker) */
    private readonly accepts: (listener: IntegrationType, integration: IntegrationType) => boolean,
    readonly throttle: FailureThrottle,
    private readonly now: () => number,
    /** told of every password a real check (not the cache) found right: the store may rehash it */
    private readonly onVerified: (r: StoredIntegration, password: string) => void = () => {},
    hashConcurrency = 2,
    /** told of a stored hash that is refused without being computed (malformed, or above `hashLimits`) */
    private readonly onUnusableHash: (r: StoredIntegration, problem: string) => void = () => {},
  ) {
    this.scheduler = new FairScheduler(hashConcurrency);
  }

  /** #hmac: cache keys that mean nothing outside this process and never contain a password. */
  #hmac(text: string): string {
    return new Bun.CryptoHasher("sha256", this.#hmacKey).update(text).digest("hex");
  }

  #fingerprint(r: StoredIntegration, password: string): string {
    return this.#hmac(`${r.id}\0${r.passwordHash}\0${password}`);
  }

  /** forget: the integration changed; nothing cached for it may answer a login any more. */
  forget(id: number): void {
    this.#verified.delete(id);
    this.#refused.delete(id);
  }

  /** usernamesChanged: a name that was unknown may exist now. */
  usernamesChanged(): void {
    this.#unknownRefused.clear();
  }

  cachedEntries(id: number): number {
    return this.#verified.has(id) ? 1 : 0;
  }

  async check(type: IntegrationType, username: string, password: string, meta: LoginMeta): Promise<VerifyResult> {
    const result = await this.#check(type, username, password, meta);
    if (!result.ok && result.reason === "throttled") this.stats.throttled++;
    return result;
  }

  async #check(type: IntegrationType, username: string, password: string, meta: LoginMeta): Promise<VerifyResult> {
    const r = this.index.byUsername(username);
    if (!r) return this.#unknown(type, username, password, meta);

    const fp = this.#fingerprint(r, password);
    let cached = false;
    if (this.#verified.get(r.id) === fp) {
      this.stats.cacheHits++;
      cached = true;
    } else if (this.#refused.get(r.id)?.has(fp)) {
      this.stats.refusedCacheHits++;
      return { ok: false, reason: "wrong-password" };
    } else {
      // Joining a hash of the same credential already under way costs nothing: no reservation.
      const pair = pairKey(meta.remote, username);
      const settle = this.#inflight.has(fp) ? () => {} : this.throttle.reserve(pair);
      if (!settle) return { ok: false, reason: "throttled" };
      const priority = this.throttle.failures(pair) === 0;
      const hashAtStart = r.passwordHash;
      let ok = false;
      let first = false;
      try {
        ({ ok, first } = await this.#hash(r, fp, password, hashAtStart, meta.remote ?? "local", priority));
      } finally {
        settle(!ok && first);
      }
      const current = this.index.get(r.id);
      // The integration changed while we hashed: judge again against what is true now.
      if (!current || current.passwordHash !== hashAtStart) return this.#check(type, username, password, meta);
      if (!ok) {
        if (first) {
          let refused = this.#refused.get(r.id);
          if (!refused) this.#refused.set(r.id, (refused = new Map()));
          if (refused.size >= 16) refused.delete(refused.keys().next().value!);
          refused.set(fp, this.now());
        }
        return { ok: false, reason: "wrong-password" };
      }
      this.#verified.set(r.id, fp);
      this.onVerified(current, password);
    }
    // Active and type are read fresh on every login, after the password, so these reasons are
    // only ever told to a client that knows the password.
    const now = this.index.get(r.id) ?? r;
    if (!now.active) return { ok: false, reason: "deactivated" };
    if (!this.accepts(type, now.type)) return { ok: false, reason: "wrong-type" };
    return { ok: true, integration: publicView(now), cached };
  }

  /**
   * #unknown: no hash for a name that does not exist (a spray of made-up names costs no CPU), but the
   * same wait; a device with a stale username retries the same pair forever: answered from the cache.
   */
  async #unknown(type: IntegrationType, username: string, password: string, meta: LoginMeta): Promise<VerifyResult> {
    const ufp = this.#hmac(`unknown\0${username}\0${password}`);
    if (this.#unknownRefused.has(ufp)) {
      this.stats.refusedCacheHits++;
      return { ok: false, reason: "unknown-user" };
    }
    const settle = this.throttle.reserve(pairKey(meta.remote, username));
    if (!settle) return { ok: false, reason: "throttled" };
    await new Promise((r) => setTimeout(r, this.#hashMs * (0.8 + Math.random() * 0.4)));
    if (this.index.byUsername(username)) {
      settle(false);
      return this.#check(type, username, password, meta); // created meanwhile
    }
    settle(true);
    if (this.#unknownRefused.size >= 10_000) this.#unknownRefused.delete(this.#unknownRefused.keys().next().value!);
    this.#unknownRefused.set(ufp, this.now());
    return { ok: false, reason: "unknown-user" };
  }

  /**
   * #hash: every password hash runs through the scheduler, off the event loop (argon2 and bcrypt in
   * Bun.password, PBKDF2 in Node's async pbkdf2), a few at a time. A reconnect storm (a line powering
   * up) sends the same credential many times at once: one hash serves them all; only its first waiter
   * books a failure. A stored hash whose cost is above `hashLimits` (or that is malformed) is never
   * computed: the login is refused as a wrong password and the store is told, so it can be logged.
   */
  async #hash(
    r: StoredIntegration,
    fp: string,
    password: string,
    hash: string,
    lane: string,
    priority: boolean,
  ): Promise<{ ok: boolean; first: boolean }> {
    const problem = hashProblem(hash);
    if (problem) {
      this.onUnusableHash(r, problem);
      return { ok: false, first: true };
    }
    let pending = this.#inflight.get(fp);
    const first = pending === undefined;
    if (!pending) {
      // Only argon2's duration is what an unknown username's answer imitates (see #unknown).
      const timed = !isFastHash(hash) && !isMosquittoHash(hash);
      pending = this.scheduler.run(lane, priority, async () => {
        this.stats.hashVerifies++;
        const t = performance.now();
        const ok = await verifyHash(password, hash);
        if (timed) this.#hashMs = this.#hashMs * 0.8 + (performance.now() - t) * 0.2;
        return ok;
      });
      this.#inflight.set(fp, pending);
      void pending.finally(() => this.#inflight.delete(fp));
    }
    return { ok: await pending, first };
  }
}
