import { isIP } from "node:net";
import { ConfigError } from "./options.ts";

/**
 * Client addresses behind reverse proxies. A request's `X-Forwarded-For` is the client's to write
 * unless a proxy the admin named rewrote it, so it is read only when the direct peer is one of the
 * `--trusted-proxies`, and then walked from the right: each trusted proxy appended the address it saw,
 * and the first address (from the right) that is not itself a trusted proxy is the client. Whatever
 * lies to the left of it was written by the client or by a proxy nobody vouched for.
 */

/** IpRange: one trusted address or CIDR block, as bytes (4 for IPv4, 16 for IPv6) and a prefix length. */
interface IpRange {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** TrustedProxies: the parsed `--trusted-proxies` list; empty trusts nobody. */
export interface TrustedProxies {
  readonly ranges: readonly IpRange[];
  /** the list as given, normalised (for logs and `--help`-style messages) */
  readonly text: readonly string[];
}

export const noTrustedProxies: TrustedProxies = Object.freeze({ ranges: [], text: [] });

/** maxHops: the most X-Forwarded-For entries looked at; a longer chain ends at the last trusted one. */
const maxHops = 16;

/**
 * ipBytes: an IPv4 or IPv6 address as bytes, IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as IPv4, a zone
 * (`fe80::1%eth0`) dropped; undefined for anything else (ports, brackets, names, `unknown`).
 */
export function ipBytes(text: string): Uint8Array | undefined {
  const address = text.replace(/%[\w.-]{1,32}$/, "");
  const kind = isIP(address);
  if (kind === 4) return Uint8Array.from(address.split(".").map(Number));
  if (kind !== 6) return undefined;
  // isIP vouched for the syntax: expand `::`, turn a trailing dotted quad into two words
  const words = (part: string) =>
    (part === "" ? [] : part.split(":")).flatMap((w) => {
      if (!w.includes(".")) return [w];
      const b = w.split(".").map(Number);
      return [((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16)];
    });
  const [head, tail] = address.split("::");
  const left = words(head!);
  const right = tail === undefined ? [] : words(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    const n = parseInt(w, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket: the same client as a.b.c.d
  if (out.subarray(0, 10).every((b) => b === 0) && out[10] === 0xff && out[11] === 0xff) return out.slice(12);
  return out;
}

/** formatIp: the canonical text of an address (RFC 5952 for IPv6: lower case, the longest zero run as `::`). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (list: number[]) => list.map((w) => w.toString(16)).join(":");
  return best < 0 ? hex(words) : `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLength))}`;
}

function inRange(bytes: Uint8Array, range: IpRange): boolean {
  if (bytes.length !== range.bytes.length) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (range.bytes[i]! & mask)) return false;
  }
  return true;
}

/** parseTrustedProxies: `127.0.0.1,10.0.0.0/8,::1` -> ranges. Throws ConfigError naming the bad entry. */
export function parseTrustedProxies(raw: string | undefined): TrustedProxies {
  if (raw === undefined || raw.trim() === "" || raw.trim() === "none") return noTrustedProxies;
  const ranges: IpRange[] = [];
  const text: string[] = [];
  for (const entry of raw.split(",").map((e) => e.trim())) {
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(entry);
    const bytes = m ? ipBytes(m[1]!) : undefined;
    if (!m || !bytes || m[1]!.includes("%")) {
      throw new ConfigError(
        `--trusted-proxies: "${entry}" is not an IP address or CIDR block (example: 127.0.0.1,10.0.0.0/8,::1)`,
      );
    }
    const max = bytes.length * 8;
    // a mapped IPv6 block (::ffff:10.0.0.0/104) becomes its IPv4 block (/8)
    const given = m[2] === undefined ? max : Number(m[2]) - (isIP(m[1]!) === 6 && bytes.length === 4 ? 96 : 0);
    if (!Number.isInteger(given) || given < 0 || given > max)
      throw new ConfigError(`--trusted-proxies: "${entry}" has a prefix length outside 0-${max}`);
    ranges.push({ bytes, prefix: given });
    text.push(given === max ? formatIp(bytes) : `${formatIp(bytes)}/${given}`);
  }
  return Object.freeze({ ranges: Object.freeze(ranges), text: Object.freeze(text) });
}

/** isTrusted: the address is one of the trusted proxies. */
export function isTrusted(trusted: TrustedProxies, address: string): boolean {
  if (trusted.ranges.length === 0) return false;
  const bytes = ipBytes(address);
  return bytes !== undefined && trusted.ranges.some((r) => inRange(bytes, r));
}

/**
 * clientAddress: who sent the request. The peer itself unless it is a trusted proxy; then the rightmost
 * `X-Forwarded-For` entry that is not a trusted proxy. A malformed entry ends the walk at the last
 * trusted hop (the proxy that passed it on is the best we know), as does a chain of more than 16 hops.
 * IPv4-mapped peers are reported as IPv4, so one client has one throttle key.
 */
export function clientAddress(peer: string, forwardedFor: string | null, trusted: TrustedProxies): string {
  const peerBytes = ipBytes(peer);
  const self = peerBytes ? formatIp(peerBytes) : peer;
  if (!forwardedFor || !peerBytes || !trusted.ranges.some((r) => inRange(peerBytes, r))) return self;
  let last = self;
  let end = forwardedFor.length;
  for (let hop = 0; hop < maxHops && end > 0; hop++) {
    const start = forwardedFor.lastIndexOf(",", end - 1) + 1;
    const entry = forwardedFor.slice(start, end).trim();
    end = start - 1;
    const bytes = entry.length <= 64 ? ipBytes(entry) : undefined;
    if (!bytes) return last;
    const text = formatIp(bytes);
    if (!trusted.ranges.some((r) => inRange(bytes, r))) return text;
    last = text;
  }
  return last;
}
