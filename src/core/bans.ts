import { isIP } from "node:net";
import type { Db } from "../db/client.ts";
import { ConflictError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { formatIp, ipBytes } from "../lib/client-address.ts";
import { currentActor, type ActivityLog } from "./activity.ts";
import type { SessionRegistry } from "./sessions.ts";
import type { SessionInfo } from "./types.ts";

/** banKinds: what a ban matches: the client's address (one or a CIDR block), its client id, or its username. */
export const banKinds = ["address", "clientId", "username"] as const;
export type BanKind = (typeof banKinds)[number];

/** maxBans: live bans at most (the list is held in memory and read on every connect). */
export const maxBans = 10_000;
/** maxBanMinutes: the longest ban, one year; a client that must never come back is deleted instead. */
export const maxBanMinutes = 525_600;
/** maxBanValueLength: the longest client id or username a ban names (longer ones cannot log in anyway). */
export const maxBanValueLength = 256;

/** bannedReason: why a live session was dropped when a ban matching it was added. */
export const bannedReason = "banned";

/** Ban: one entry of the list, as the page, the API and the CLI show it. */
export interface Ban {
  id: number;
  kind: BanKind;
  value: string;
  createdAt: number;
  expiresAt: number;
  createdBy: string;
  /** connects refused by it since this process started */
  hits: number;
  lastHitAt: number | null;
}

/** BanInput: what an admin asks for. */
export interface BanInput {
  kind: BanKind;
  value: string;
  minutes: number;
}

interface AddressBan {
  bytes: Uint8Array;
  prefix: number;
}

/**
 * parseBanAddress: `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`, `::ffff:10.0.0.0/104` (an IPv4-mapped
 * block is its IPv4 block, /8) -> the block with its host bits cleared and its canonical text. Names,
 * ports, zones (`%eth0`) and prefix lengths out of range are refused.
 */
export function parseBanAddress(text: string): AddressBan & { text: string } {
  const bad = (why: string) =>
    new ValidationError({ address: `"${text.slice(0, 64)}" ${why} (examples: 192.0.2.7, 10.0.0.0/8, 2001:db8::/32)` });
  const m = /^([0-9A-Fa-f:.]{2,45})(?:\/(\d{1,3}))?$/.exec(text.trim());
  const bytes = m ? ipBytes(m[1]!) : undefined;
  if (!m || !bytes) throw bad("is not an IP address or CIDR block");
  const max = bytes.length * 8;
  const mapped = isIP(m[1]!) === 6 && bytes.length === 4;
  const prefix = m[2] === undefined ? max : Number(m[2]) - (mapped ? 96 : 0);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
    throw bad(`has a prefix length outside ${mapped ? "96-128" : `0-${max}`}`);
  const masked = maskTo(bytes, prefix);
  return { bytes: masked, prefix, text: prefix === max ? formatIp(masked) : `${formatIp(masked)}/${prefix}` };
}

/**
 * mappedPrefix: an IPv6 block of this prefix length or shorter may contain the IPv4-mapped range
 * (`::ffff:0:0/96`); a longer one in that range is written as its IPv4 block (parseBanAddress).
 */
const mappedPrefix = 96;

/**
 * asMapped: an IPv4 address as its IPv4-mapped IPv6 address, so an IPv6 block that contains the mapped
 * range (`::/0`, `::/80`, `::ffff:0:0/96` itself) covers the IPv4 clients in it, as the mathematics says.
 */
function asMapped(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

function maskTo(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let bits = prefix;
  for (let i = 0; i < bytes.length && bits > 0; i++, bits -= 8)
    out[i] = bytes[i]! & (bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff);
  return out;
}

/**
 * blockKey: one block's key in the address index: its length, prefix and the bytes the prefix covers
 * (masked), as characters. Built without a copy: the accept check asks once per prefix length in use.
 */
function blockKey(bytes: Uint8Array, prefix: number): string {
  let key = `${bytes.length}/${prefix}/`;
  for (let i = 0, bits = prefix; bits > 0; i++, bits -= 8)
    key += String.fromCharCode(bits >= 8 ? bytes[i]! : bytes[i]! & ((0xff << (8 - bits)) & 0xff));
  return key;
}

interface Row {
  id: number;
  kind: string;
  value: string;
  created_at: number;
  expires_at: number;
  created_by: string;
}

/**
 * BanList: the banned clients (EMQX's "banned clients"). Every ban lives in SQLite (the `bans` table)
 * and in memory, where every connect asks it before any password work:
 * - `addressBanned(remote)` at accept, from the accept pool, before a byte is read (core/accept-pool.ts);
 * - `match(username, meta)` at CONNECT / login on every listener (credentials.verify), which also sees
 *   the client's address behind a trusted proxy (forward auth, the device API).
 *
 * Lookups cost no scan: exact names are a Map; address blocks are a Map keyed by the masked address,
 * looked up once per prefix length in use (at most 33 for IPv4, 129 for IPv6). An IPv4-mapped IPv6
 * address (`::ffff:192.0.2.7`) is the IPv4 address, and an IPv6 block that contains the mapped range
 * (`::/0`, `::/80`) covers every IPv4 client too (asked once more per IPv6 prefix length up to /96 in use).
 * A ban ends by itself at `expiresAt` (memory checks the time; `sweep` deletes the row and records it). At
 * most `maxBans` live at once.
 *
 * Another process (the CLI) writes the same table: `reload` follows it, and drops the live sessions a
 * ban it added matches, as one added here does.
 */
export class BanList {
  #byId = new Map<number, Ban>();
  #addresses = new Map<string, Ban>();
  /** prefix lengths in use, per address length (4 or 16): how many address bans have each */
  #prefixes = new Map<number, Map<number, number>>();
  #clientIds = new Map<string, Ban>();
  #usernames = new Map<string, Ban>();
  #parsed = new Map<string, Uint8Array | undefined>();
  /** connects refused, by kind (a counter for /metrics) */
  readonly refused: Record<BanKind, number> = { address: 0, clientId: 0, username: 0 };

  constructor(
    private readonly db: Db,
    private readonly activity?: ActivityLog,
    private readonly sessions?: SessionRegistry,
    private readonly now: () => number = Date.now,
  ) {
    this.reload();
  }

  get size(): number {
    return this.#byId.size;
  }

  /** list: the live bans, soonest to expire first. */
  list(): Ban[] {
    const t = this.now();
    return [...this.#byId.values()]
      .filter((b) => b.expiresAt > t)
      .sort((a, b) => a.expiresAt - b.expiresAt || a.id - b.id);
  }

  get(id: number): Ban | undefined {
    const b = this.#byId.get(id);
    return b && b.expiresAt > this.now() ? b : undefined;
  }

  /** normalise: the value as stored (a canonical block for an address), or a ValidationError. */
  static normalise(kind: BanKind, raw: string): string {
    if (kind === "address") return parseBanAddress(raw).text;
    const field = kind;
    if (raw.length === 0)
      throw new ValidationError({ [field]: `the ${kind === "clientId" ? "client id" : kind} is empty` });
    if (raw.length > maxBanValueLength)
      throw new ValidationError({ [field]: `at most ${maxBanValueLength} characters` });
    return raw;
  }

  /**
   * add: a new ban, written, in memory, in the activity log; every live session it matches is dropped
   * at once. A second ban of the same value is a conflict (remove it first, or let it expire).
   */
  add(input: BanInput): Ban {
    if (!banKinds.includes(input.kind)) throw new ValidationError({ kind: "address, clientId or username" });
    if (!Number.isInteger(input.minutes) || input.minutes < 1 || input.minutes > maxBanMinutes)
      throw new ValidationError({ minutes: `a whole number of minutes from 1 to ${maxBanMinutes} (a year)` });
    const value = BanList.normalise(input.kind, input.value);
    const t = this.now();
    const existing = this.#lookup(input.kind).get(input.kind === "address" ? this.#addressKey(value) : value);
    if (existing && existing.expiresAt > t)
      throw new ConflictError(`${input.kind} ${value} is already banned (ban ${existing.id})`, {
        [input.kind]: "already banned",
      });
    const sqlite = this.db.$client;
    const row = sqlite.transaction(() => {
      // expired rows do not count (the sweep deletes them); the bound holds for every process writing
      const live = sqlite.query("SELECT count(*) AS n FROM bans WHERE expires_at > ?").get(t) as { n: number };
      if (live.n >= maxBans)
        throw new ConflictError(`the ban list is full (${maxBans} bans); remove some or let them expire`);
      return sqlite
        .query("INSERT INTO bans (kind, value, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING *")
        .get(input.kind, value, t, t + input.minutes * 60_000, currentActor().slice(0, 200)) as Row;
    })();
    const ban = this.#put(row);
    this.activity?.record(
      "ban.added",
      `${ban.kind} ${ban.value}`,
      `for ${input.minutes} min, until ${iso(ban.expiresAt)}`,
    );
    this.#dropSessions(ban);
    return ban;
  }

  /** remove: lifts a ban now. */
  remove(id: number): Ban {
    const ban = this.get(id);
    if (!ban) throw new NotFoundError(`ban ${id}`);
    this.db.$client.query("DELETE FROM bans WHERE id = ?").run(id);
    this.#drop(ban);
    this.activity?.record("ban.removed", `${ban.kind} ${ban.value}`, `had until ${iso(ban.expiresAt)}`);
    return ban;
  }

  /**
   * sweep: deletes the bans that have expired and records each (the appliance runs it every few
   * seconds; enforcement does not wait for it: an expired ban already matches nothing).
   */
  sweep(): number {
    const t = this.now();
    let n = 0;
    for (const ban of [...this.#byId.values()]) {
      if (ban.expiresAt > t) continue;
      this.#drop(ban);
      // another process may have swept it already: recorded once, by whoever deleted the row
      const res = this.db.$client.query("DELETE FROM bans WHERE id = ? AND expires_at <= ?").run(ban.id, t);
      if (res.changes === 1) {
        n++;
        this.activity?.record("ban.expired", `${ban.kind} ${ban.value}`, `at ${iso(ban.expiresAt)}`, "system");
      }
    }
    return n;
  }

  /**
   * reload: memory follows the table (at start, and when another process wrote it). A ban that appears
   * drops the live sessions it matches; the process that wrote it recorded it in the activity log.
   */
  reload(): void {
    const rows = this.db.$client.query("SELECT * FROM bans").all() as Row[];
    const seen = new Set<number>();
    const added: Ban[] = [];
    for (const row of rows) {
      if (!banKinds.includes(row.kind as BanKind)) continue; // written by a newer version: ignored
      seen.add(row.id);
      const had = this.#byId.get(row.id);
      if (had) {
        had.expiresAt = row.expires_at;
        continue;
      }
      try {
        added.push(this.#put(row));
      } catch {
        // a value this version cannot read (edited by hand): ignored, not fatal
      }
    }
    for (const ban of [...this.#byId.values()]) if (!seen.has(ban.id)) this.#drop(ban);
    for (const ban of added) this.#dropSessions(ban);
  }

  // ---------------------------------------------------------------- the checks (hot path)

  /** addressBanned: at accept, before any byte is read; free while no address is banned. */
  addressBanned(remote: string): boolean {
    if (this.#addresses.size === 0) return false;
    const ban = this.#matchAddress(remote);
    if (!ban) return false;
    this.#hit(ban);
    return true;
  }

  /** match: at CONNECT / login, before any password work: the ban that refuses this client, if any. */
  match(username: string, meta: { remote?: string; clientId?: string }): Ban | undefined {
    const ban =
      (this.#usernames.size ? this.#live(this.#usernames.get(username)) : undefined) ??
      (this.#clientIds.size && meta.clientId !== undefined
        ? this.#live(this.#clientIds.get(meta.clientId))
        : undefined) ??
      (this.#addresses.size && meta.remote ? this.#matchAddress(meta.remote) : undefined);
    if (ban) this.#hit(ban);
    return ban;
  }

  /** matchesSession: would this ban refuse the client behind a live session? */
  static matchesSession(
    ban: Pick<Ban, "kind" | "value">,
    s: Pick<SessionInfo, "username" | "clientId" | "remote">,
  ): boolean {
    if (ban.kind === "username") return s.username === ban.value;
    if (ban.kind === "clientId") return s.clientId === ban.value;
    if (!s.remote) return false;
    const block = parseBanAddress(ban.value);
    let bytes = ipBytes(s.remote);
    if (bytes?.length === 4 && block.bytes.length === 16) bytes = asMapped(bytes);
    return (
      bytes !== undefined &&
      bytes.length === block.bytes.length &&
      blockKey(maskTo(bytes, block.prefix), block.prefix) === blockKey(block.bytes, block.prefix)
    );
  }

  /** covers: does this (not yet added) address ban cover `remote`? For the admin's own-address warning. */
  static covers(address: string, remote: string | undefined): boolean {
    if (!remote) return false;
    try {
      return BanList.matchesSession(
        { kind: "address", value: BanList.normalise("address", address) },
        { username: "", remote },
      );
    } catch {
      return false;
    }
  }

  #matchAddress(remote: string): Ban | undefined {
    const bytes = this.#bytesOf(remote);
    if (!bytes) return undefined;
    for (const prefix of this.#prefixes.get(bytes.length)?.keys() ?? []) {
      const ban = this.#live(this.#addresses.get(blockKey(bytes, prefix)));
      if (ban) return ban;
    }
    // an IPv4 client is also inside an IPv6 block that contains the whole mapped range (`::/0`)
    if (bytes.length === 4) {
      let mapped: Uint8Array | undefined;
      for (const prefix of this.#prefixes.get(16)?.keys() ?? []) {
        if (prefix > mappedPrefix) continue;
        mapped ??= asMapped(bytes);
        const ban = this.#live(this.#addresses.get(blockKey(mapped, prefix)));
        if (ban) return ban;
      }
    }
    return undefined;
  }

  /**
   * #bytesOf: a peer's address as bytes, remembered: parsing costs microseconds and a device reconnects
   * from the same address (at most 4 096 remembered; a spray of addresses clears them and pays the parse).
   */
  #bytesOf(remote: string): Uint8Array | undefined {
    let bytes = this.#parsed.get(remote);
    if (bytes === undefined && !this.#parsed.has(remote)) {
      bytes = ipBytes(remote);
      if (this.#parsed.size >= 4096) this.#parsed.clear();
      this.#parsed.set(remote, bytes);
    }
    return bytes;
  }

  #live(ban: Ban | undefined): Ban | undefined {
    return ban && ban.expiresAt > this.now() ? ban : undefined;
  }

  #hit(ban: Ban): void {
    ban.hits++;
    ban.lastHitAt = this.now();
    this.refused[ban.kind]++;
  }

  #lookup(kind: BanKind): Map<string, Ban> {
    return kind === "address" ? this.#addresses : kind === "clientId" ? this.#clientIds : this.#usernames;
  }

  #addressKey(value: string): string {
    const block = parseBanAddress(value);
    return blockKey(block.bytes, block.prefix);
  }

  #put(row: Row): Ban {
    const kind = row.kind as BanKind;
    const key = kind === "address" ? this.#addressKey(row.value) : row.value;
    const ban: Ban = {
      id: row.id,
      kind,
      value: row.value,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      createdBy: row.created_by,
      hits: 0,
      lastHitAt: null,
    };
    const map = this.#lookup(kind);
    const old = map.get(key);
    if (old) this.#drop(old); // an expired one not swept yet
    map.set(key, ban);
    this.#byId.set(ban.id, ban);
    if (kind === "address") {
      const { bytes, prefix } = parseBanAddress(row.value);
      let counts = this.#prefixes.get(bytes.length);
      if (!counts) this.#prefixes.set(bytes.length, (counts = new Map()));
      counts.set(prefix, (counts.get(prefix) ?? 0) + 1);
    }
    return ban;
  }

  #drop(ban: Ban): void {
    if (this.#byId.get(ban.id) !== ban) return;
    this.#byId.delete(ban.id);
    const key = ban.kind === "address" ? this.#addressKey(ban.value) : ban.value;
    const map = this.#lookup(ban.kind);
    if (map.get(key) === ban) map.delete(key);
    if (ban.kind === "address") {
      const { bytes, prefix } = parseBanAddress(ban.value);
      const counts = this.#prefixes.get(bytes.length)!;
      const n = (counts.get(prefix) ?? 1) - 1;
      if (n > 0) counts.set(prefix, n);
      else counts.delete(prefix);
    }
  }

  /** #dropSessions: a new ban ends every live session it matches, on every listener. */
  #dropSessions(ban: Ban): void {
    if (!this.sessions) return;
    for (const s of this.sessions.list())
      if (BanList.matchesSession(ban, s)) this.sessions.kickSession(s.id, `${bannedReason} (${ban.kind} ${ban.value})`);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
