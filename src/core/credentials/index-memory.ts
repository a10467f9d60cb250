import type { IntegrationRow } from "../../db/schema.ts";
import type { Integration } from "../types.ts";
import { vrpcAgentIdentity } from "../vrpc.ts";
import { parseStoredFilters } from "./validation.ts";

/** LastLogin: a login's time and origin, held until it is written behind. */
export interface LastLogin {
  at: number;
  clientId?: string;
  remote?: string;
}

/** StoredIntegration: an integration with its password hash, as held in memory; never leaves the core. */
export interface StoredIntegration extends Integration {
  passwordHash: string;
}

/** publicView: a copy without the hash. */
export function publicView(r: StoredIntegration): Integration {
  const { passwordHash: _, ...rest } = r;
  return {
    ...rest,
    publishAcl: [...r.publishAcl],
    subscribeAcl: [...r.subscribeAcl],
    denyPublishAcl: [...r.denyPublishAcl],
    denySubscribeAcl: [...r.denySubscribeAcl],
  };
}

/** storedRow: the database row an integration in memory stands for (to apply a change to it without reading it back). */
export function storedRow(r: StoredIntegration): IntegrationRow {
  return {
    id: r.id,
    username: r.username,
    type: r.type,
    description: r.description,
    passwordHash: r.passwordHash,
    active: r.active,
    publishAcl: JSON.stringify(r.publishAcl),
    subscribeAcl: JSON.stringify(r.subscribeAcl),
    denyPublishAcl: JSON.stringify(r.denyPublishAcl),
    denySubscribeAcl: JSON.stringify(r.denySubscribeAcl),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    lastLoginAt: r.lastLoginAt,
    lastLoginClientId: r.lastLoginClientId,
    lastLoginRemote: r.lastLoginRemote,
  };
}

/** aclKey: every topic permission of an integration as one comparable string. */
export function aclKey(
  i: Pick<Integration, "publishAcl" | "subscribeAcl" | "denyPublishAcl" | "denySubscribeAcl">,
): string {
  return JSON.stringify([i.publishAcl, i.subscribeAcl, i.denyPublishAcl, i.denySubscribeAcl]);
}

/** sameRow: does the database row say what memory holds? (last login is written behind and not compared) */
export function sameRow(r: StoredIntegration, row: IntegrationRow): boolean {
  return (
    r.username === row.username &&
    r.type === row.type &&
    r.description === row.description &&
    r.passwordHash === row.passwordHash &&
    r.active === row.active &&
    r.updatedAt === row.updatedAt &&
    JSON.stringify(r.publishAcl) === row.publishAcl &&
    JSON.stringify(r.subscribeAcl) === row.subscribeAcl &&
    JSON.stringify(r.denyPublishAcl) === row.denyPublishAcl &&
    JSON.stringify(r.denySubscribeAcl) === row.denySubscribeAcl
  );
}

/** parsedFilters: stored permission lists already parsed, by their JSON text (bounded; cleared when full). */
const parsedFilters = new Map<string, string[]>();

/**
 * filtersOf: a stored permission list, parsed once per distinct text: a fleet shares a few lists (the
 * type's defaults), and loading 100 000 rows parsed 400 000 small JSON texts. The lists are frozen: one
 * array serves every integration with that text, and nothing may change it in place.
 */
function filtersOf(json: string): string[] {
  let list = parsedFilters.get(json);
  if (!list) {
    if (parsedFilters.size >= 4096) parsedFilters.clear();
    parsedFilters.set(json, (list = Object.freeze(parseStoredFilters(json)) as string[]));
  }
  return list;
}

/**
 * IntegrationIndex: every integration in memory, by id and by username (10 000 rows are a few MB),
 * so a login never reads the disk. Each stored version gets a new revision number.
 */
export class IntegrationIndex {
  #byId = new Map<number, StoredIntegration>();
  #byUsername = new Map<string, number>();
  /** how many VRPC integrations are named `<domain>/<name>`, per domain (the VRPC domains) */
  #vrpcDomains = new Map<string, number>();
  #vrpcDomainList: string[] = [];
  #revision = 0;

  get(id: number): StoredIntegration | undefined {
    return this.#byId.get(id);
  }

  byUsername(username: string): StoredIntegration | undefined {
    const id = this.#byUsername.get(username);
    return id === undefined ? undefined : this.#byId.get(id);
  }

  ownerOf(username: string): number | undefined {
    return this.#byUsername.get(username);
  }

  get size(): number {
    return this.#byId.size;
  }

  values(): IterableIterator<StoredIntegration> {
    return this.#byId.values();
  }

  ids(): number[] {
    return [...this.#byId.keys()];
  }

  /**
   * vrpcDomainOf: the first level of `topic` if some VRPC integration (active or not) is named
   * `<level>/<name>`. Asked per message: with a few domains (the usual case) it compares in place
   * instead of cutting a new string to look up.
   */
  vrpcDomainOf(topic: string): string | undefined {
    const n = this.#vrpcDomainList.length;
    if (n === 0) return undefined;
    if (n <= 8) {
      for (let k = 0; k < n; k++) {
        const d = this.#vrpcDomainList[k]!;
        if (topic.startsWith(d) && (topic.length === d.length || topic.charCodeAt(d.length) === 47) /* "/" */) return d;
      }
      return undefined;
    }
    const cut = topic.indexOf("/");
    const level = cut < 0 ? topic : topic.slice(0, cut);
    return this.#vrpcDomains.has(level) ? level : undefined;
  }

  /** vrpcDomains: every VRPC domain with how many VRPC integrations it has. */
  vrpcDomains(): ReadonlyMap<string, number> {
    return this.#vrpcDomains;
  }

  #countDomain(r: Pick<Integration, "type" | "username">, by: 1 | -1): void {
    const domain = r.type === "vrpc" ? vrpcAgentIdentity(r.username)?.domain : undefined;
    if (domain === undefined) return;
    const n = (this.#vrpcDomains.get(domain) ?? 0) + by;
    if (n > 0) this.#vrpcDomains.set(domain, n);
    else this.#vrpcDomains.delete(domain);
    if (n <= 1) this.#vrpcDomainList = [...this.#vrpcDomains.keys()]; // a domain came or went
  }

  /** put: stores a row read from or written to the database; the last login is the newer of row and memory. */
  put(row: IntegrationRow, newerLogin?: LastLogin): StoredIntegration {
    const previous = this.#byId.get(row.id);
    if (previous && previous.username !== row.username) this.#byUsername.delete(previous.username);
    if (previous) this.#countDomain(previous, -1);
    const r: StoredIntegration = {
      id: row.id,
      username: row.username,
      type: row.type,
      description: row.description,
      active: row.active,
      publishAcl: filtersOf(row.publishAcl),
      subscribeAcl: filtersOf(row.subscribeAcl),
      denyPublishAcl: filtersOf(row.denyPublishAcl),
      denySubscribeAcl: filtersOf(row.denySubscribeAcl),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      ...(newerLogin !== undefined && (row.lastLoginAt ?? 0) < newerLogin.at
        ? {
            lastLoginAt: newerLogin.at,
            lastLoginClientId: newerLogin.clientId ?? null,
            lastLoginRemote: newerLogin.remote ?? null,
          }
        : {
            lastLoginAt: row.lastLoginAt,
            lastLoginClientId: row.lastLoginClientId,
            lastLoginRemote: row.lastLoginRemote,
          }),
      revision: ++this.#revision,
      passwordHash: row.passwordHash,
    };
    this.#byId.set(r.id, r);
    this.#byUsername.set(r.username, r.id);
    this.#countDomain(r, 1);
    return r;
  }

  delete(r: StoredIntegration): void {
    if (this.#byId.get(r.id) === r) this.#countDomain(r, -1);
    this.#byId.delete(r.id);
    if (this.#byUsername.get(r.username) === r.id) this.#byUsername.delete(r.username);
  }
}
