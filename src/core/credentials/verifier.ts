import { boundedKey, FailureThrottle, FairScheduler, QueueFullError, pairKey } from "../throttle.ts";
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
 *   64 MiB; a stored hash above `hashLimits` is never computed), round robin over addresses, clean
 *   attempts first: an attempt is clean while neither its (address, name) pair nor its address has a
 *   failure in the window (asked when a slot frees). Among clean ones, a pair that has logged in before
 *   goes first, then new pairs for names nobody is failing on, then new pairs for names under attack
 *   (#standing): a new pair gets no priority for being new. Within each tier, an
 *   address with a single attempt under way goes before one with several: a device sends one CONNECT
 *   at a time; ten at once from one address are a stranger's, or a fleet behind a NAT, which is served
 *   round robin with the other busy addresses and never refused while the line has room. An address
 *   whose guesses have failed falls behind every device whose address has not, so a device gets in at
 *   one of the next free slots even while others hammer its name;
 * - the line is bounded (`deviceMaxQueued`): past it, an attempt that ranks no better than the worst
 *   waiting one is refused at once (`busy`: CONNACK 3, 503, BadServerTooBusy), a better one takes that
 *   one's place. An attempt whose client has gone (`signal`) leaves the line without a hash
 *   (`abandoned`): a flood that stops leaves no backlog behind it;
 * - an unknown username costs no hash at all: the refusal waits about as long as a hash takes, so the
 *   timing does not tell names that exist from names that do not.
 */
export class LoginVerifier {
  #verified = new Map<number, string>();
  #refused = new Map<number, Map<string, number>>();
  /** argon2 verifications under way, by fingerprint */
  #inflight = new Map<string, Inflight>();
  /** failed logins per address (every name), in the pair throttle's window: what makes an attempt unclean */
  readonly #addressFailures: FailureThrottle;
  /** failed logins per name (from any address), in the window: a name under attack */
  readonly #nameFailures: FailureThrottle;
  /** (address, name) pairs that logged in lately, oldest first (bounded): a device coming back */
  #known = new Map<string, true>();
  /** unknown username + password pairs already refused (bounded; cleared when a username appears) */
  #unknownRefused = new Map<string, number>();
  #hmacKey = crypto.getRandomValues(new Uint8Array(32));
  /** recent hash duration (ms), for the answer to an unknown username */
  #hashMs = 100;
  readonly scheduler: FairScheduler;
  readonly stats = { hashVerifies: 0, cacheHits: 0, refusedCacheHits: 0, throttled: 0, busy: 0, abandoned: 0 };

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
    maxQueued = deviceMaxQueued,
  ) {
    this.scheduler = new FairScheduler(hashConcurrency, { maxQueued, busyLanesLast: true });
    this.#addressFailures = new FailureThrottle(Number.MAX_SAFE_INTEGER, throttle.windowMs, throttle.maxKeys);
    this.#nameFailures = new FailureThrottle(Number.MAX_SAFE_INTEGER, throttle.windowMs, throttle.maxKeys);
  }

  /** #failed: a login from this address for this name failed (the pair's own count is the throttle's). */
  #failed(remote: string | undefined, username: string): void {
    this.#addressFailures.fail(addressKey(remote));
    this.#nameFailures.fail(nameKey(username));
  }

  /**
   * #standing: where a waiting attempt ranks, asked when a slot frees. Clean means neither its pair
   * nor its address has a failure in the window; among clean ones a pair that has logged in before
   * goes first (tier 0: a device coming back), then a new pair for a name nobody is failing on (1),
   * then a new pair for a name under attack (2); unclean ones last (3). A new pair gets no priority
   * for being new: a stranger with many addresses makes one new pair per address for the name it
   * guesses, and a device whose name is under attack is told apart by having logged in before.
   */
  #standing(pair: string, address: string, username: string): number {
    if (this.throttle.failures(pair) > 0 || this.#addressFailures.failures(address) > 0) return 3;
    if (this.#known.has(pair)) return 0;
    return this.#nameFailures.failures(nameKey(username)) > 0 ? 2 : 1;
  }

  /** #remember: this pair logged in; it ranks first in the line from now on (bounded, least recent dropped). */
  #remember(pair: string): void {
    this.#known.delete(pair);
    this.#known.set(pair, true);
    if (this.#known.size > knownPairs) this.#known.delete(this.#known.keys().next().value!);
  }

  /**
   * suspect: this (address, name) pair or this address has a failed login in the window. The accept
   * pool closes such a client's socket first when it is full of sockets whose logins are under way.
   */
  suspect(remote: string | undefined, username: string): boolean {
    return (
      this.throttle.failures(pairKey(remote, username)) > 0 || this.#addressFailures.failures(addressKey(remote)) > 0
    );
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

  /** check: `signal` (the client's connection) ends an attempt still waiting in the line when it aborts. */
  async check(
    type: IntegrationType,
    username: string,
    password: string,
    meta: LoginMeta,
    signal?: AbortSignal,
  ): Promise<VerifyResult> {
    if (signal?.aborted) return { ok: false, reason: "abandoned" };
    const result = await this.#check(type, username, password, meta, signal);
    if (result.ok) this.#remember(pairKey(meta.remote, username));
    if (!result.ok && result.reason === "throttled") this.stats.throttled++;
    if (!result.ok && result.reason === "busy") this.stats.busy++;
    if (!result.ok && result.reason === "abandoned") this.stats.abandoned++;
    return result;
  }

  async #check(
    type: IntegrationType,
    username: string,
    password: string,
    meta: LoginMeta,
    signal: AbortSignal | undefined,
  ): Promise<VerifyResult> {
    const r = this.index.byUsername(username);
    if (!r) return this.#unknown(type, username, password, meta, signal);

    const fp = this.#fingerprint(r, password);
    let cached = false;
    if (this.#verified.get(r.id) === fp) {
      this.stats.cacheHits++;
      cached = true;
    } else if (this.#refused.get(r.id)?.has(fp)) {
      this.stats.refusedCacheHits++;
      // no hash and no pair failure (a stale credential retried costs one check), but its address has
      // failed a login: its attempts in the line are not clean
      this.#failed(meta.remote, username);
      return { ok: false, reason: "wrong-password" };
    } else {
      const hashAtStart = r.passwordHash;
      const outcome = this.#hash(r, fp, password, hashAtStart, meta.remote, pairKey(meta.remote, username), signal);
      if (outcome === "throttled") return { ok: false, reason: "throttled" };
      const { ok, first, unchecked } = await outcome;
      if (unchecked) return { ok: false, reason: unchecked };
      const current = this.index.get(r.id);
      // The integration changed while we hashed: judge again against what is true now.
      if (!current || current.passwordHash !== hashAtStart) return this.#check(type, username, password, meta, signal);
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
  async #unknown(
    type: IntegrationType,
    username: string,
    password: string,
    meta: LoginMeta,
    signal: AbortSignal | undefined,
  ): Promise<VerifyResult> {
    const ufp = this.#hmac(`unknown\0${username}\0${password}`);
    if (this.#unknownRefused.has(ufp)) {
      this.stats.refusedCacheHits++;
      this.#failed(meta.remote, username);
      return { ok: false, reason: "unknown-user" };
    }
    const settle = this.throttle.reserve(pairKey(meta.remote, username));
    if (!settle) return { ok: false, reason: "throttled" };
    await new Promise((r) => setTimeout(r, this.#hashMs * (0.8 + Math.random() * 0.4)));
    if (this.index.byUsername(username)) {
      settle(false);
      return this.#check(type, username, password, meta, signal); // created meanwhile
    }
    settle(true);
    this.#failed(meta.remote, username);
    if (this.#unknownRefused.size >= 10_000) this.#unknownRefused.delete(this.#unknownRefused.keys().next().value!);
    this.#unknownRefused.set(ufp, this.now());
    return { ok: false, reason: "unknown-user" };
  }

  /**
   * #hash: every password hash runs through the scheduler, off the event loop (argon2 and bcrypt in
   * Bun.password, PBKDF2 in Node's async pbkdf2), a few at a time. A reconnect storm (a line powering
   * up) sends the same credential many times at once: one hash serves them all, and joining it costs
   * no reservation; the attempt that started it holds the pair's reservation until the hash has a
   * verdict, and books the failure (pair and address) then, whether or not its own client still waits.
   * A stored hash whose cost is above `hashLimits` (or that is malformed) is never computed: the login
   * is refused as a wrong password and the store is told, so it can be logged.
   *
   * A waiter whose `signal` aborts stops waiting at once (`abandoned`); when no waiter is left, a hash
   * still in the line leaves it unrun (one already running finishes, and its verdict is still booked).
   * Returns "throttled" (synchronously) when the pair's budget is used up.
   */
  #hash(
    r: StoredIntegration,
    fp: string,
    password: string,
    hash: string,
    remote: string | undefined,
    pair: string,
    signal: AbortSignal | undefined,
  ): Promise<HashOutcome> | "throttled" {
    let entry = this.#inflight.get(fp);
    const first = entry === undefined;
    if (!entry) {
      const settle = this.throttle.reserve(pair);
      if (!settle) return "throttled";
      const problem = hashProblem(hash);
      if (problem) {
        settle(true);
        this.onUnusableHash(r, problem);
        return Promise.resolve({ ok: false, first: true });
      }
      const address = addressKey(remote);
      // Asked when a slot frees (see #standing).
      const standing = () => this.#standing(pair, address, r.username);
      // Only argon2's duration is what an unknown username's answer imitates (see #unknown).
      const timed = !isFastHash(hash) && !isMosquittoHash(hash);
      const controller = new AbortController();
      const promise = this.scheduler.run(
        remote ?? "local",
        standing,
        async () => {
          this.stats.hashVerifies++;
          const t = performance.now();
          const ok = await verifyHash(password, hash);
          if (timed) this.#hashMs = this.#hashMs * 0.8 + (performance.now() - t) * 0.2;
          return ok;
        },
        controller.signal,
      );
      const made: Inflight = { promise, controller, waiters: 0, settled: false };
      entry = made;
      this.#inflight.set(fp, made);
      const forget = () => {
        made.settled = true;
        if (this.#inflight.get(fp) === made) this.#inflight.delete(fp);
      };
      promise.then(
        (ok) => {
          forget();
          settle(!ok);
          if (!ok) this.#failed(remote, r.username);
        },
        () => {
          forget();
          settle(false); // never checked: refused by a full line, or nobody waited for it any more
        },
      );
    }
    return this.#wait(entry, fp, first, signal);
  }

  /** #wait: one login's wait for a shared hash (see #hash). */
  async #wait(shared: Inflight, fp: string, first: boolean, signal: AbortSignal | undefined): Promise<HashOutcome> {
    shared.waiters++;
    try {
      const ok = await untilAborted(shared.promise, signal);
      if (ok === undefined) return { ok: false, first, unchecked: "abandoned" };
      return { ok, first };
    } catch (err) {
      if (err instanceof QueueFullError) return { ok: false, first, unchecked: "busy" };
      if (shared.controller.signal.aborted) return { ok: false, first, unchecked: "abandoned" };
      throw err;
    } finally {
      if (--shared.waiters === 0 && !shared.settled) {
        // nobody waits for it any more: out of the line unrun (a running one finishes); a newcomer with
        // the same credential starts afresh
        shared.controller.abort();
        if (this.#inflight.get(fp) === shared) this.#inflight.delete(fp);
      }
    }
  }
}

/** deviceMaxQueued: the device hash line holds at most this many attempts (a restart storm of 1 000 devices fits). */
export const deviceMaxQueued = 1024;

/** knownPairs: how many (address, name) pairs that logged in the line remembers (a fleet's worth). */
const knownPairs = 100_000;

/** nameKey: the per-name key of the failure count that tells a name under attack. */
function nameKey(username: string): string {
  return boundedKey(`n:${username}`);
}

/** addressKey: the per-address key of the failure count that decides whether an attempt is clean. */
function addressKey(remote: string | undefined): string {
  return `a:${remote ?? "local"}`;
}

/** HashOutcome: what one waiter learned; `unchecked`: the password was never checked, and why. */
interface HashOutcome {
  ok: boolean;
  first: boolean;
  unchecked?: "busy" | "abandoned";
}

/** Inflight: one hash in the line or running, shared by every login that presented the same credential. */
interface Inflight {
  promise: Promise<boolean>;
  /** aborts the line entry (a hash already running finishes) */
  controller: AbortController;
  /** logins waiting for it now */
  waiters: number;
  /** it has a verdict (or was refused or dropped) */
  settled: boolean;
}

/** untilAborted: the promise's value, or undefined as soon as `signal` aborts (the promise runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => (signal.removeEventListener("abort", onAbort), resolve(v)),
      (e) => (signal.removeEventListener("abort", onAbort), reject(e)),
    );
  });
}
