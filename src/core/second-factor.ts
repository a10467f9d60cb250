import { Secret, TOTP } from "otpauth";
import { randomInt, sha256Hex } from "../lib/ids.ts";

/**
 * totpPeriodSeconds: RFC 6238's default step (30 s), SHA-1 and 6 digits: what every authenticator app
 * (Google Authenticator, Aegis, FreeOTP, 1Password, Microsoft Authenticator) reads from a QR code.
 */
export const totpPeriodSeconds = 30;

/**
 * totpWindow: a code of the step before or after now is accepted too (a phone's clock a few seconds
 * off, a code typed as it turned over): RFC 6238 §5.2 recommends at most one step of drift.
 */
export const totpWindow = 1;

/** recoveryCodeCount: codes issued at once; each works one time. */
export const recoveryCodeCount = 10;

/** newTotpSecret: a fresh 160-bit key (RFC 4226 §4 asks for at least 128, recommends 160), base32. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totpOf(secret: string, label = "admin"): TOTP {
  return new TOTP({
    issuer: "Gatehouse",
    label,
    algorithm: "SHA1",
    digits: 6,
    period: totpPeriodSeconds,
    secret: Secret.fromBase32(secret),
  });
}

/** totpUri: the `otpauth://` URI the QR code carries (issuer "Gatehouse", the admin's name as label). */
export function totpUri(secret: string, label: string, issuer = "Gatehouse"): string {
  const t = totpOf(secret, label);
  t.issuer = issuer;
  return t.toString();
}

/** totpCode: the code for `at` (ms); tests and the CLI's checks use it. */
export function totpCode(secret: string, at = Date.now()): string {
  return totpOf(secret).generate({ timestamp: at });
}

/**
 * totpStep: the 30-second step a code belongs to, or undefined if it is no code of now, the step before
 * or the step after. The caller accepts it only if that step is later than the last one used (no replay).
 */
export function totpStep(secret: string, code: string, at = Date.now()): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const delta = totpOf(secret).validate({ token: code, timestamp: at, window: totpWindow });
  if (delta === null) return undefined;
  return Math.floor(at / 1000 / totpPeriodSeconds) + delta;
}

const recoveryAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"; // 32 symbols, no look-alikes

/** newRecoveryCode: 16 symbols of 32 (80 bits), shown as `xxxx-xxxx-xxxx-xxxx`. */
export function newRecoveryCode(): string {
  let s = "";
  for (let i = 0; i < 16; i++) s += recoveryAlphabet[randomInt(recoveryAlphabet.length)];
  return s.match(/.{4}/g)!.join("-");
}

/**
 * normalRecoveryCode: what a person typed as a recovery code (any case, with or without dashes or
 * spaces), in the one form that is hashed; undefined if it cannot be one.
 */
export function normalRecoveryCode(typed: string): string | undefined {
  const s = typed.toLowerCase().replace(/[\s-]/g, "");
  return /^[a-z2-9]{16}$/.test(s) ? s : undefined;
}

/**
 * recoveryCodeHash: SHA-256 of the normal form. A fast hash is enough: a code has 80 random bits
 * (no dictionary to try), and who holds the database holds the TOTP key already.
 */
export function recoveryCodeHash(normal: string): string {
  return sha256Hex(`gatehouse-recovery:${normal}`);
}
