import { createHash, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import type { HashCost } from "../credentials.ts";

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

/** verifyFast: synchronous (it is cheap); false for anything malformed. */
export function verifyFast(password: string, stored: string): boolean {
  const m = /^\$gh-pbkdf2-sha256\$i=(\d{1,7})\$([A-Za-z0-9+/=]{1,64})\$([A-Za-z0-9+/=]{1,128})$/.exec(stored);
  if (!m) return false;
  const expected = Buffer.from(m[3]!, "base64");
  const actual = pbkdf2Sync(password, Buffer.from(m[2]!, "base64"), Number(m[1]), expected.length, "sha256");
  return expected.length === actual.length && timingSafeEqual(expected, actual);
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

export function verifyMosquitto(password: string, stored: string): boolean {
  let expected: Buffer;
  let actual: Buffer;
  const m7 = /^\$7\$(\d{1,7})\$([A-Za-z0-9+/=]{1,64})\$([A-Za-z0-9+/=]{1,256})$/.exec(stored);
  const m6 = /^\$6\$([A-Za-z0-9+/=]{1,64})\$([A-Za-z0-9+/=]{1,256})$/.exec(stored);
  if (m7) {
    expected = Buffer.from(m7[3]!, "base64");
    actual = pbkdf2Sync(password, Buffer.from(m7[2]!, "base64"), Number(m7[1]), expected.length, "sha512");
  } else if (m6) {
    expected = Buffer.from(m6[2]!, "base64");
    actual = createHash("sha512").update(password).update(Buffer.from(m6[1]!, "base64")).digest();
  } else return false;
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** needsRehash: the stored hash's parameters are not the policy's any more (or it is Mosquitto's). */
export function needsRehash(stored: string, cost: HashCost = {}): boolean {
  if (isMosquittoHash(stored)) return true;
  if (isFastHash(stored)) return !stored.startsWith(`${fastPrefix}i=${fastIterations}$`);
  const m = /^\$argon2id\$v=\d+\$m=(\d+),t=(\d+)/.exec(stored);
  if (!m) return false; // another algorithm Bun verifies (bcrypt): left as it is
  return Number(m[1]) !== (cost.memoryCost ?? deviceArgon2.memoryCost) || Number(m[2]) !== (cost.timeCost ?? deviceArgon2.timeCost);
}
