import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { join } from "node:path";
import { narrowToPrivate, readBounded, TargetError, writePrivateFile } from "../../lib/files.ts";

/**
 * Secrets Gatehouse presents upstream (an uplink's password, its client key) must be stored usable, unlike
 * the integrations' passwords (hashes only). They are sealed with AES-256-GCM under a key kept in its own
 * file in the data dir (`uplink-secrets.key`, 32 random bytes, 0600, made on first use): the database, a
 * backup of it or an export without `--full` holds only the sealed text, useless without the key file.
 * Whoever can read the data dir (root, the service's user) can read both, as with any credential a
 * service must present; the key file keeps the secrets out of every copy of the database alone.
 */
export const secretKeyFile = "uplink-secrets.key";

const keys = new Map<string, Buffer>();

/** SecretUnreadable: a sealed secret that this data dir's key cannot open (a database from another appliance). */
export class SecretUnreadable extends Error {
  override name = "SecretUnreadable";
}

/** keyOf: the data dir's key, read once (made on first use; two processes making it at once agree on one). */
function keyOf(dataDir: string): Buffer {
  const path = join(dataDir, secretKeyFile);
  const known = keys.get(path);
  if (known) return known;
  let key: Buffer;
  try {
    // a file in the data dir: never through a link (root's CLI must not be led to another file), owner only
    narrowToPrivate(path);
    key = readBounded(path, 64, { noFollow: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    try {
      writePrivateFile(path, randomBytes(32), { replace: false });
    } catch (made) {
      if (!(made instanceof TargetError)) throw made; // another process made it first: read theirs
    }
    key = readBounded(path, 64, { noFollow: true });
  }
  if (key.length !== 32) throw new SecretUnreadable(`${path} is not a 32-byte key`);
  keys.set(path, key);
  return key;
}

/**
 * sealSecret: `v2:` + base64(iv | ciphertext | tag), bound to `boundTo` (authenticated, not stored: where
 * the secret may go, see the store's `bindingOf`), so a database whose row was edited outside Gatehouse (a
 * doctored backup, restored) cannot send it elsewhere: it no longer opens. (`v1:`, before: bound to nothing.)
 */
export function sealSecret(dataDir: string, plain: string, boundTo: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyOf(dataDir), iv);
  cipher.setAAD(Buffer.from(boundTo, "utf8"));
  const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
  return `v2:${Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64")}`;
}

/**
 * openSecret: the plain text of a sealed secret; throws SecretUnreadable if this data dir's key cannot open
 * it, or (`v2:`) it was sealed for another `boundTo`. A `v1:` secret (an earlier release's) opens unbound.
 */
export function openSecret(dataDir: string, sealed: string, boundTo: string): string {
  const version = sealed.slice(0, 3);
  const raw = version === "v1:" || version === "v2:" ? Buffer.from(sealed.slice(3), "base64") : undefined;
  if (!raw || raw.length < 28) throw new SecretUnreadable("not a sealed secret");
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyOf(dataDir), raw.subarray(0, 12));
    if (version === "v2:") decipher.setAAD(Buffer.from(boundTo, "utf8"));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString("utf8");
  } catch (err) {
    if (err instanceof SecretUnreadable) throw err;
    throw new SecretUnreadable(
      version === "v2:"
        ? `the secret does not open for these URLs: it was given for others (the database was changed outside Gatehouse, a doctored backup?) or sealed with another key than ${secretKeyFile}: enter it again`
        : `the secret was sealed with another key than ${secretKeyFile} in this data dir (a database from another appliance?): enter it again`,
    );
  }
}
