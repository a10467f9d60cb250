import { FailureThrottle } from "../throttle.ts";
import type { IntegrationType, LoginMeta, VerifyResult } from "../types.ts";
import { publicView, type IntegrationIndex, type StoredIntegration } from "./index-memory.ts";

/**
 * LoginVerifier: the hot path of every login on every protocol.
 *
 * A correct repeat login skips argon2: the verified-credential cache maps an integration id to an
 * HMAC (per-process random key) of id, stored hash and password. The plaintext is never kept, a
 * password change alters the stored hash so an old entry cannot match, and every change to the
 * integration drops its entries anyway (`forget`). Wrong passwords get the same treatment in a small
 * negative cache, so a client retrying a wrong password costs one hash, not one per attempt. Hash
 * work for failures is bounded per username and per address by a FailureThrottle.
 */
export class LoginVerifier {
  #verified = new Map<number, string>();
  #refused = new Map<number, Map<string, number>>();
  /** argon2 verifications under way, by fingerprint */
  #inflight = new Map<string, Promise<boolean>>();
  /** unknown username + password pairs already refused (bounded; cleared when a username appears) */
  #unknownRefused = new Map<string, number>();
  #hmacKey = crypto.getRandomValues(new Uint8Array(32));
  #dummyHash: Promise<string>;
  readonly stats = { hashVerifies: 0, cacheHits: 0, refusedCacheHits: 0, throttled: 0 };

  constructor(
    private readonly index: IntegrationIndex,
    private readonly hash: (password: string) => Promise<string>,
    /** which integration types each listener admits (VRPC agents are MQTT clients of our broker) */
    private readonly accepts: (listener: IntegrationType, integration: IntegrationType) => boolean,
    readonly throttle: FailureThrottle,
    private readonly now: () => number,
  ) {
    this.#dummyHash = hash(crypto.randomUUID());
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
    const addressKey = meta.remote ? `a:${meta.remote}` : undefined;
    const userKey = `u:${username}`;
    // An address that has used up its budget gets nothing, not even the cheap cache lookup:
    // otherwise it could test guesses against the cache at network speed.
    if (addressKey && this.throttle.blocked(addressKey)) return { ok: false, reason: "throttled" };

    const r = this.index.byUsername(username);
    if (!r) return this.#unknown(type, username, password, meta, userKey, addressKey);

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
      const { ok, first } = await this.#argon2(fp, password, hashAtStart);
      const current = this.index.get(r.id);
      // The integration changed while we hashed: judge again against what is true now.
      if (!current || current.passwordHash !== hashAtStart) return this.#check(type, username, password, meta);
      if (!ok && !first) return { ok: false, reason: "wrong-password" };
      if (!ok) {
        let refused = this.#refused.get(r.id);
        if (!refused) this.#refused.set(r.id, (refused = new Map()));
        if (refused.size >= 16) refused.delete(refused.keys().next().value!);
        refused.set(fp, this.now());
        this.#failed(userKey, addressKey);
        return { ok: false, reason: "wrong-password" };
      }
      this.#verified.set(r.id, fp);
    }
    // Active and type are read fresh on every login, after the password, so these reasons are
    // only ever told to a client that knows the password.
    const now = this.index.get(r.id) ?? r;
    if (!now.active) return { ok: false, reason: "deactivated" };
    if (!this.accepts(type, now.type)) return { ok: false, reason: "wrong-type" };
    return { ok: true, integration: publicView(now), cached };
  }

  /**
   * #unknown: a device with a stale username retries the same pair forever: one hash, then free, and
   * it does not use up its address's budget (other devices behind the same NAT keep working).
   */
  async #unknown(type: IntegrationType, username: string, password: string, meta: LoginMeta, userKey: string, addressKey?: string): Promise<VerifyResult> {
    const ufp = this.#hmac(`unknown\0${username}\0${password}`);
    if (this.#unknownRefused.has(ufp)) {
      this.stats.refusedCacheHits++;
      return { ok: false, reason: "unknown-user" };
    }
    if (this.throttle.blocked(userKey)) return { ok: false, reason: "throttled" };
    // Pay one hash anyway so an unknown name takes as long as a wrong password (no user enumeration).
    this.stats.hashVerifies++;
    await Bun.password.verify(password, await this.#dummyHash).catch(() => false);
    if (this.index.byUsername(username)) return this.#check(type, username, password, meta); // created meanwhile
    if (this.#unknownRefused.size >= 10_000) this.#unknownRefused.delete(this.#unknownRefused.keys().next().value!);
    this.#unknownRefused.set(ufp, this.now());
    this.#failed(userKey, addressKey);
    return { ok: false, reason: "unknown-user" };
  }

  /**
   * #argon2: a reconnect storm (a line powering up) sends the same credential many times at once:
   * one hash serves them all; only its first waiter books a failure.
   */
  async #argon2(fp: string, password: string, hash: string): Promise<{ ok: boolean; first: boolean }> {
    let pending = this.#inflight.get(fp);
    const first = pending === undefined;
    if (!pending) {
      this.stats.hashVerifies++;
      pending = Bun.password.verify(password, hash).catch(() => false);
      this.#inflight.set(fp, pending);
      void pending.finally(() => this.#inflight.delete(fp));
    }
    return { ok: await pending, first };
  }

  #failed(userKey: string, addressKey?: string): void {
    this.throttle.fail(userKey);
    if (addressKey) this.throttle.fail(addressKey);
  }
}
