import { createHash, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

/** HashCost: argon2id parameters (tests use small ones; admins get Bun's default). */
export interface HashCost {
  memoryCost?: number;
  timeCost?: number;
}

/**
 * Password hashing, one scheme per credential, recorded in the hash itself:
 *
 * - A password the appliance generated (152 random bits, see lib/ids.ts) cannot be guessed offline
 *   whatever the hash, so it gets a fast salted one: PBKDF2-SHA256, 1 000 iterations (about 0.3 ms;
 *   Mosquitto uses PBKDF2-SHA512 with 101). A line of 1 000 devices powering up with the appliance costs
 *   a fraction of a second, not a minute of argon2.
 * - A password a person chose, or a device brought through onboarding (strength unknown), gets
 *   argon2id with OWASP's minimum for it (m = 19 MiB, t = 2: ~30 ms and 19 MiB here), so a line of
 *   1 000 such devices is in within 30 s on two cores and the hashes in flight stay small. Admin
 *   passwords keep Bun's heavier default (64 MiB): there are few of them.
 *
 * `needsRehash` tells a successful login that its stored hash is not what the policy says now (other
 * argon2 parameters, other iterations); the store then rehashes with the password it just checked.
 */
export const fastIterations = 1000;
const fastPrefix = "$gh-pbkdf2-sha256$";

export type HashScheme = "fast" | "argon2id";

export function hashFast(password: string, iterations = fastIterations): string {
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  return `${fastPrefix}i=${iterations}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

export function isFastHash(stored: string): boolean {
  return stored.startsWith(fastPrefix);
}

/** deviceArgon2: the argon2id cost for integrations' chosen passwords (OWASP: m=19456 KiB, t=2, p=1). */
export const deviceArgon2: Required<HashCost> = { memoryCost: 19_456, timeCost: 2 };

export function hashArgon2(password: string, cost: HashCost = {}): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id", ...deviceArgon2, ...cost });
}

/** hashFor: the hash the policy asks for. */
export function hashFor(password: string, scheme: HashScheme, cost: HashCost = {}): Promise<string> {
  return scheme === "fast" ? Promise.resolve(hashFast(password)) : hashArgon2(password, cost);
}

/**
 * Mosquitto password file hashes, verified as they are after `integrations import --mosquitto-passwd`
 * and rehashed (argon2id) on the next successful login: `$7$<iterations>$<salt>$<hash>` is
 * PBKDF2-SHA512 (mosquitto_passwd 2.x), `$6$<salt>$<hash>` SHA-512 of password and salt (1.x).
 */
export function isMosquittoHash(stored: string): boolean {
  return /^\$[67]\$/.test(stored);
}

/**
 * Bounded cost. A stored hash names its own cost, and a hash that came from outside (a Mosquitto
 * password file, an export, a restored backup, a database written by an older release) can name any.
 * These maxima bound what one login check may cost; a hash above them is refused when it is imported
 * and, at login, treated as a wrong password (and logged) without being computed:
 * - PBKDF2 (ours and Mosquitto's `$7$`): 100 000 iterations, ~40 ms of SHA-512 here, about one argon2id
 *   check of a device (mosquitto_passwd uses 101, our generated passwords 1 000);
 * - argon2: 256 MiB, t <= 16, p <= 8 (the appliance uses 19 MiB for devices, 64 MiB for admins);
 * - bcrypt: cost 14.
 */
export const hashLimits = {
  pbkdf2Iterations: 100_000,
  argon2MemoryKiB: 262_144,
  argon2TimeCost: 16,
  argon2Parallelism: 8,
  bcryptCost: 14,
} as const;

type ParsedHash =
  | { scheme: "pbkdf2"; digest: "sha256" | "sha512"; iterations: number; salt: Buffer; hash: Buffer }
  | { scheme: "sha512"; salt: Buffer; hash: Buffer }
  | { scheme: "bun" }
  | { problem: string };

/** canonicalBase64: the bytes of standard, padded base64 that re-encodes to exactly `text`; else undefined. */
function canonicalBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : undefined;
}

function saltAndHash(
  salt: string,
  hash: string,
  hashBytes: number,
): { salt: Buffer; hash: Buffer } | { problem: string } {
  const s = canonicalBase64(salt);
  if (!s) return { problem: "the salt is not base64" };
  if (s.length < 8 || s.length > 64) return { problem: `the salt has ${s.length} bytes (8 to 64 expected)` };
  const h = canonicalBase64(hash);
  if (!h) return { problem: "the hash is not base64" };
  if (h.length !== hashBytes) return { problem: `the hash has ${h.length} bytes (${hashBytes} expected)` };
  return { salt: s, hash: h };
}

function iterationsOf(text: string): number | { problem: string } {
  if (!/^[1-9]\d{0,9}$/.test(text))
    return { problem: `iteration count "${text.slice(0, 12)}" is not a positive number` };
  const n = Number(text);
  if (n > hashLimits.pbkdf2Iterations)
    return { problem: `iteration count ${n} exceeds the maximum of ${hashLimits.pbkdf2Iterations}` };
  return n;
}

function parseHash(stored: string): ParsedHash {
  if (stored.length > 1024) return { problem: "longer than any password hash" };
  let m = /^\$7\$([^$]*)\$([^$]*)\$([^$]*)$/.exec(stored);
  if (m) {
    const iterations = iterationsOf(m[1]!);
    if (typeof iterations !== "number") return iterations;
    const sh = saltAndHash(m[2]!, m[3]!, 64);
    return "problem" in sh ? sh : { scheme: "pbkdf2", digest: "sha512", iterations, ...sh };
  }
  if (stored.startsWith("$7$")) return { problem: "not $7$<iterations>$<salt>$<hash>" };
  m = /^\$6\$([^$]*)\$([^$]*)$/.exec(stored);
  if (m) {
    const sh = saltAndHash(m[1]!, m[2]!, 64);
    return "problem" in sh ? sh : { scheme: "sha512", ...sh };
  }
  if (stored.startsWith("$6$")) return { problem: "not $6$<salt>$<hash>" };
  m = /^\$gh-pbkdf2-sha256\$i=([^$]*)\$([^$]*)\$([^$]*)$/.exec(stored);
  if (m) {
    const iterations = iterationsOf(m[1]!);
    if (typeof iterations !== "number") return iterations;
    const sh = saltAndHash(m[2]!, m[3]!, 32);
    return "problem" in sh ? sh : { scheme: "pbkdf2", digest: "sha256", iterations, ...sh };
  }
  if (stored.startsWith(fastPrefix)) return { problem: `not ${fastPrefix}i=<iterations>$<salt>$<hash>` };
  m =
    /^\$argon2(?:id|i|d)\$v=(\d{1,3})\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/.exec(
      stored,
    );
  if (m) {
    const [memory, time, lanes] = [Number(m[2]), Number(m[3]), Number(m[4])];
    if (memory > hashLimits.argon2MemoryKiB)
      return { problem: `argon2 memory m=${memory} KiB exceeds the maximum of ${hashLimits.argon2MemoryKiB}` };
    if (time < 1 || time > hashLimits.argon2TimeCost)
      return { problem: `argon2 time cost t=${time} is outside 1 to ${hashLimits.argon2TimeCost}` };
    if (lanes < 1 || lanes > hashLimits.argon2Parallelism)
      return { problem: `argon2 parallelism p=${lanes} is outside 1 to ${hashLimits.argon2Parallelism}` };
    return { scheme: "bun" };
  }
  if (/^\$argon2/.test(stored)) return { problem: "not an argon2 hash Gatehouse can read" };
  m = /^\$2[abxy]\$(\d\d)\$[./A-Za-z0-9]{53}$/.exec(stored);
  if (m)
    return Number(m[1]) > hashLimits.bcryptCost
      ? { problem: `bcrypt cost ${Number(m[1])} exceeds the maximum of ${hashLimits.bcryptCost}` }
      : { scheme: "bun" };
  return { problem: "not a password hash Gatehouse can check" };
}

/** hashProblem: why a stored hash cannot be checked at a bounded cost (malformed, unknown, too costly); undefined when it can. */
export function hashProblem(stored: string): string | undefined {
  const parsed = parseHash(stored);
  return "problem" in parsed ? parsed.problem : undefined;
}

const pbkdf2Async = promisify(pbkdf2);

/**
 * verifyHash: checks a password against any stored hash, off the event loop: PBKDF2 runs as Node's
 * async pbkdf2 (the thread pool), argon2 and bcrypt as Bun.password.verify (likewise); a `$6$` hash is
 * one SHA-512 (microseconds). False for a wrong password and for a hash with a `hashProblem`, which
 * is never computed. Callers bound how many run at once (the FairScheduler).
 */
export async function verifyHash(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if ("problem" in parsed) return false;
  let actual: Buffer;
  switch (parsed.scheme) {
    case "pbkdf2":
      actual = await pbkdf2Async(password, parsed.salt, parsed.iterations, parsed.hash.length, parsed.digest);
      break;
    case "sha512":
      actual = createHash("sha512").update(password).update(parsed.salt).digest();
      break;
    case "bun":
      return Bun.password.verify(password, stored).catch(() => false);
  }
  return actual.length === parsed.hash.length && timingSafeEqual(actual, parsed.hash);
}

/** needsRehash: the stored hash's parameters are not the policy's any more (or it is Mosquitto's). */
export function needsRehash(stored: string, cost: HashCost = {}): boolean {
  if (isMosquittoHash(stored)) return true;
  if (isFastHash(stored)) return !stored.startsWith(`${fastPrefix}i=${fastIterations}$`);
  const m = /^\$argon2id\$v=\d+\$m=(\d+),t=(\d+)/.exec(stored);
  if (!m) return false; // another algorithm Bun verifies (bcrypt): left as it is
  return (
    Number(m[1]) !== (cost.memoryCost ?? deviceArgon2.memoryCost) ||
    Number(m[2]) !== (cost.timeCost ?? deviceArgon2.timeCost)
  );
}
