import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { hostname } from "node:os";
import { asc, eq } from "drizzle-orm";
import type { ActivityLog } from "../../core/activity.ts";
import { isValidTopicFilter } from "../../core/credentials.ts";
import type { Core } from "../../core/index.ts";
import { isValidTopicString } from "../../core/topics.ts";
import { ConflictError, NotFoundError, ValidationError } from "../../lib/errors.ts";
import { openSecret, SecretUnreadable, sealSecret } from "./secrets.ts";
import { type UplinkRow, uplinks } from "./schema.ts";

/**
 * defaultInflight: QoS 1 messages an uplink has unacknowledged upstream at most, unless configured. One
 * round trip carries a window: 1 000 capped a 40 ms WAN link at 25 000 messages/s, and on a saturated
 * appliance an upstream that answers in ~50 ms at the same rate (measured 7 Dec 2026: the uplink sat at
 * 1 000 unacknowledged while Mosquitto's bridge had 2 000-6 000, and sent a few messages per PUBACK that came
 * back; with 10 000 it had at most 1 400-3 100 and forwarded 3-18 % more per second, draining a backlog
 * faster). Mosquitto 2's bridge keeps no window at all (measured: 36 000 unacknowledged during a drain,
 * whatever max_inflight_messages says); what waits for a PUBACK here holds no payload (about 200 bytes each),
 * and at most 4 MiB of messages are unacknowledged whatever the window (uplink.ts). What is unacknowledged
 * at a cut goes again (at least once): the window bounds those duplicates. An MQTT 5 upstream's Receive
 * Maximum lowers it; a cloud hub with a limit of its own and no Receive Maximum needs `--inflight`.
 * Uplinks made before keep the window stored with them.
 */
export const defaultInflight = 10_000;
/** maxInflight: MQTT packet identifiers are 16 bits: no more can be unacknowledged on one connection */
export const maxInflight = 65_535;

/** Db: the admin database (the core's handle; the CLI opens the same file). */
type Db = Core["db"];

/** UplinkView: an uplink as pages, the API, the CLI and exports show it: never its password or client key. */
export interface UplinkView {
  id: number;
  name: string;
  enabled: boolean;
  urls: string[];
  username: string | null;
  /** a password is stored (it is never shown) */
  passwordSet: boolean;
  ca: string | null;
  clientCert: string | null;
  /** a client key is stored (it is never shown) */
  clientKeySet: boolean;
  clientId: string;
  protocol: 4 | 5;
  forward: string[];
  remotePrefix: string;
  subscribe: string[];
  localPrefix: string;
  qos: 0 | 1;
  inflight: number;
  inventory: boolean;
  createdAt: number;
  updatedAt: number;
}

/** UplinkConfig: what the running appliance connects with: the view plus the opened secrets. */
export interface UplinkConfig extends UplinkView {
  password?: string;
  clientKey?: string;
  /** a stored secret this data dir's key cannot open (a database from another appliance) */
  secretProblem?: string;
}

/**
 * UplinkInput: what the page, the API and the CLI set. Left out: the default (create) or unchanged
 * (update); `null` clears an optional field (a password, the CA).
 */
export interface UplinkInput {
  name?: string;
  enabled?: boolean;
  urls?: string[];
  username?: string | null;
  password?: string | null;
  ca?: string | null;
  clientCert?: string | null;
  clientKey?: string | null;
  clientId?: string;
  protocol?: number;
  forward?: string[];
  remotePrefix?: string;
  subscribe?: string[];
  localPrefix?: string;
  qos?: number;
  inflight?: number;
  inventory?: boolean;
}

/** uplinkNamePattern: what an uplink may be called (it names metrics, log lines and the API path). */
export const uplinkNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const urlSchemes = ["mqtt:", "mqtts:", "ws:", "wss:"];
const defaultPorts: Record<string, string> = { "mqtt:": "1883", "mqtts:": "8883", "ws:": "80", "wss:": "443" };

/** bindingOf: what an uplink's secrets are sealed for: the endpoints of its URLs (order and repeats aside). */
export function bindingOf(urls: string[]): string {
  return JSON.stringify([...new Set(urls.map(endpointOf))].sort());
}

/**
 * endpointOf: where a URL sends the uplink's secrets: scheme, host and port (the scheme's default if none
 * is given), and for a WebSocket the path (behind one web server, another path may be another broker).
 */
export function endpointOf(url: string): string {
  const u = URL.parse(url);
  if (!u) return url;
  const port = u.port || defaultPorts[u.protocol] || "";
  const path = u.protocol === "ws:" || u.protocol === "wss:" ? u.pathname || "/" : "";
  return `${u.protocol}//${u.hostname}:${port}${path}`;
}
const maxPemBytes = 64 * 1024;

const list = (json: string): string[] => {
  try {
    const v = JSON.parse(json);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
};

/** viewOf: a row without its secrets. */
function viewOf(r: UplinkRow): UplinkView {
  return {
    id: r.id,
    name: r.name,
    enabled: r.enabled,
    urls: list(r.urls),
    username: r.username,
    passwordSet: r.password !== null,
    ca: r.ca,
    clientCert: r.clientCert,
    clientKeySet: r.clientKey !== null,
    clientId: r.clientId,
    protocol: r.protocol === 5 ? 5 : 4,
    forward: list(r.forward),
    remotePrefix: r.remotePrefix,
    subscribe: list(r.subscribe),
    localPrefix: r.localPrefix,
    qos: r.qos === 0 ? 0 : 1,
    inflight: r.inflight,
    inventory: r.inventory,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** prefixProblem: a prefix is empty or topic levels ending in `/`, without wildcards. */
function prefixProblem(prefix: string, local: boolean): string | undefined {
  if (prefix === "") return undefined;
  if (prefix.length > 256) return "at most 256 characters";
  if (!isValidTopicString(prefix) || /[#+]/.test(prefix)) return "no wildcards (+, #), no NUL";
  if (!prefix.endsWith("/")) return 'must end with "/" (topic levels)';
  if (local && prefix.startsWith("$")) return "must not start with $ (the broker's own topics)";
  return undefined;
}

function urlProblem(raw: string): string | undefined {
  if (raw.length > 512 || !URL.canParse(raw)) return `"${raw.slice(0, 64)}" is not a URL`;
  const u = new URL(raw);
  if (!urlSchemes.includes(u.protocol)) return `"${raw.slice(0, 64)}": use mqtt://, mqtts://, ws:// or wss://`;
  if (!u.hostname) return `"${raw.slice(0, 64)}" names no host`;
  // a password in a URL would end up in every log line and status that names the node in use
  if (u.username || u.password) return `"${u.protocol}//${u.host}": give the user name and password separately`;
  return undefined;
}

function pemProblem(pem: string, what: "certificate" | "key"): string | undefined {
  if (Buffer.byteLength(pem) > maxPemBytes) return `at most ${maxPemBytes} bytes`;
  try {
    if (what === "key") createPrivateKey(pem);
    else {
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (blocks.length === 0) return "not a PEM certificate";
      for (const b of blocks) new X509Certificate(b);
    }
  } catch {
    return what === "key" ? "not a PEM private key" : "not a PEM certificate";
  }
  return undefined;
}

/**
 * defaultClientId: stable across restarts (stored at creation), recognisable on the cluster, and unique: a
 * random part, since appliances cloned from one image share their host name and uplink names (found from
 * outside: two of them took each other's session upstream over and over).
 */
export function defaultClientId(name: string): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9-]/g, "")
      .slice(0, 40) || "appliance";
  return `${`gatehouse-${host}-${name}`.slice(0, 119)}-${randomBytes(4).toString("hex")}`;
}

/**
 * validate: every field of the uplink as it would be stored (`next`: the old values with the change
 * applied); each problem named by its field.
 */
function validate(next: Required<Omit<UplinkInput, "password" | "clientKey">> & { clientKeySet: boolean }) {
  const fields: Record<string, string> = {};
  if (!uplinkNamePattern.test(next.name)) fields.name = "1-64 letters, digits, . _ - (starting with a letter or digit)";
  if (next.urls.length === 0 || next.urls.length > 16) fields.urls = "name 1 to 16 broker URLs";
  else {
    const bad = next.urls.map(urlProblem).find((p) => p !== undefined);
    if (bad) fields.urls = bad;
  }
  const filterList = (filters: string[], field: "forward" | "subscribe", min: number) => {
    if (filters.length < min || filters.length > 100)
      fields[field] = `${min ? "1" : "0"} to 100 topic filters${min ? " (what goes upstream)" : ""}`;
    else if (!filters.every((f) => f.length <= 1024 && isValidTopicFilter(f) && isValidTopicString(f)))
      fields[field] = "each must be an MQTT topic filter (+ and # as whole levels, # last)";
  };
  filterList(next.forward, "forward", 1);
  filterList(next.subscribe, "subscribe", 0);
  const remote = prefixProblem(next.remotePrefix, false);
  if (remote) fields.remotePrefix = remote;
  const local = prefixProblem(next.localPrefix, true);
  if (local) fields.localPrefix = local;
  else if (next.subscribe.length > 0 && next.localPrefix === "")
    fields.localPrefix = "name the local prefix: messages from upstream are published only under it";
  if (next.qos !== 0 && next.qos !== 1) fields.qos = "0 or 1";
  if (next.protocol !== 4 && next.protocol !== 5) fields.protocol = "4 (MQTT 3.1.1) or 5";
  if (!Number.isInteger(next.inflight) || next.inflight < 1 || next.inflight > maxInflight)
    fields.inflight = `1 to ${maxInflight}`;
  if (next.clientId.length === 0 || next.clientId.length > 128 || /[\u0000-\u001f\u007f]/.test(next.clientId))
    fields.clientId = "1 to 128 printable characters";
  if (next.username !== null && (next.username.length > 512 || next.username.includes("\0")))
    fields.username = "at most 512 characters";
  if (next.ca !== null) {
    const p = pemProblem(next.ca, "certificate");
    if (p) fields.ca = p;
  }
  if (next.clientCert !== null) {
    const p = pemProblem(next.clientCert, "certificate");
    if (p) fields.clientCert = p;
  }
  if ((next.clientCert !== null) !== next.clientKeySet)
    fields.clientCert = "a client certificate and its key go together";
  return fields;
}

/**
 * UplinkStore: the uplinks in the admin database, for the page, the API and the CLI alike (the CLI
 * works on the file while the appliance runs; the appliance follows within a second). Every change is
 * in the activity log, attributed to who made it.
 */
export class UplinkStore {
  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
    private readonly activity?: ActivityLog,
  ) {}

  #row(name: string): UplinkRow {
    const r = this.db.select().from(uplinks).where(eq(uplinks.name, name)).get();
    if (!r) throw new NotFoundError(`uplink "${name.slice(0, 64)}"`);
    return r;
  }

  list(): UplinkView[] {
    return this.db.select().from(uplinks).orderBy(asc(uplinks.name)).all().map(viewOf);
  }

  get(name: string): UplinkView {
    return viewOf(this.#row(name));
  }

  /** configs: every uplink with its secrets opened, for the running appliance. */
  configs(): UplinkConfig[] {
    return this.db
      .select()
      .from(uplinks)
      .orderBy(asc(uplinks.id))
      .all()
      .map((r) => {
        const c: UplinkConfig = viewOf(r);
        try {
          if (r.password !== null) c.password = openSecret(this.dataDir, r.password, bindingOf(c.urls));
          if (r.clientKey !== null) c.clientKey = openSecret(this.dataDir, r.clientKey, bindingOf(c.urls));
        } catch (err) {
          if (!(err instanceof SecretUnreadable)) throw err;
          c.secretProblem = err.message;
        }
        return c;
      });
  }

  #checked(old: UplinkView | undefined, input: UplinkInput) {
    const name = input.name ?? old?.name ?? "";
    const keyAfter = input.clientKey === undefined ? (old?.clientKeySet ?? false) : input.clientKey !== null;
    const next = {
      name,
      enabled: input.enabled ?? old?.enabled ?? true,
      urls: input.urls ?? old?.urls ?? [],
      username: input.username === undefined ? (old?.username ?? null) : input.username || null,
      ca: input.ca === undefined ? (old?.ca ?? null) : input.ca || null,
      clientCert: input.clientCert === undefined ? (old?.clientCert ?? null) : input.clientCert || null,
      clientId: input.clientId || old?.clientId || defaultClientId(name),
      protocol: input.protocol ?? old?.protocol ?? 4,
      forward: input.forward ?? old?.forward ?? [],
      remotePrefix: input.remotePrefix ?? old?.remotePrefix ?? "",
      subscribe: input.subscribe ?? old?.subscribe ?? [],
      localPrefix: input.localPrefix ?? old?.localPrefix ?? "",
      qos: input.qos ?? old?.qos ?? 1,
      inflight: input.inflight === undefined ? (old?.inflight ?? defaultInflight) : input.inflight,
      inventory: input.inventory ?? old?.inventory ?? false,
      clientKeySet: keyAfter && input.clientKey !== "",
    };
    const fields = validate(next);
    const passwordAfter = input.password === undefined ? (old?.passwordSet ?? false) : !!input.password;
    // [MQTT-3.1.2-22] 3.1.1 has no password without a user name (brokers close such a CONNECT)
    if (passwordAfter && next.username === null && next.protocol !== 5)
      fields.username = "a password needs a user name (MQTT 3.1.1)";
    if (input.password != null && (input.password.length > 1024 || input.password.includes("\0")))
      fields.password = "at most 1024 characters";
    // A stored secret goes only to the endpoints it was given for (found from outside: changing the URL
    // alone sent the stored password to any host an admin or token named, so it could be read back there;
    // then, to another port or scheme of the same host: mqtts:// to plain mqtt://, in clear text).
    if (old && input.urls !== undefined && !fields.urls) {
      const known = new Set(old.urls.map(endpointOf));
      const moved = next.urls.map(endpointOf).filter((e) => !known.has(e));
      const again = `give it again: ${moved.join(", ")} is not where the stored one was given for (scheme, host, port)`;
      if (moved.length && old.passwordSet && input.password === undefined) fields.password = again;
      if (moved.length && old.clientKeySet && input.clientKey === undefined) fields.clientKey = again;
    }
    if (input.clientKey) {
      const p = pemProblem(input.clientKey, "key");
      if (p) fields.clientKey = p;
      else if (next.clientCert) {
        try {
          if (!new X509Certificate(next.clientCert).checkPrivateKey(createPrivateKey(input.clientKey)))
            fields.clientKey = "this key does not belong to the client certificate";
        } catch {
          fields.clientKey = "this key does not belong to the client certificate";
        }
      }
    }
    if (Object.keys(fields).length) throw new ValidationError(fields);
    const { clientKeySet: _, ...columns } = next;
    return {
      ...columns,
      urls: JSON.stringify(next.urls),
      forward: JSON.stringify(next.forward),
      subscribe: JSON.stringify(next.subscribe),
    };
  }

  #seal(value: string | null | undefined, urls: string[]): string | null | undefined {
    if (value === undefined) return undefined;
    return value === null || value === "" ? null : sealSecret(this.dataDir, value, bindingOf(urls));
  }

  /**
   * reseal: a stored secret sealed again for changed URLs (the change is one `#checked` allowed: only to
   * endpoints it was given for); one that does not open stays as it is (the uplink says so).
   */
  #reseal(sealed: string | null, from: string[], to: string[]): string | null | undefined {
    if (sealed === null || bindingOf(from) === bindingOf(to)) return undefined;
    try {
      return sealSecret(this.dataDir, openSecret(this.dataDir, sealed, bindingOf(from)), bindingOf(to));
    } catch (err) {
      if (err instanceof SecretUnreadable) return undefined;
      throw err;
    }
  }

  create(input: UplinkInput): UplinkView {
    const columns = this.#checked(undefined, input);
    const urls = list(columns.urls);
    if (this.db.select({ id: uplinks.id }).from(uplinks).where(eq(uplinks.name, columns.name)).get())
      throw new ConflictError(`an uplink named "${columns.name}" exists`, { name: "taken" });
    const now = Date.now();
    const row = this.db
      .insert(uplinks)
      .values({
        ...columns,
        password: this.#seal(input.password, urls) ?? null,
        clientKey: this.#seal(input.clientKey, urls) ?? null,
        createdAt: now,
        updatedAt: now,
      })
      .returning()
      .get();
    this.activity?.record("uplink.created", row.name, `to ${list(row.urls).join(", ")}`);
    return viewOf(row);
  }

  update(name: string, input: UplinkInput): UplinkView {
    const stored = this.#row(name);
    const old = viewOf(stored);
    const columns = this.#checked(old, input);
    if (columns.name !== old.name && this.db.select().from(uplinks).where(eq(uplinks.name, columns.name)).get())
      throw new ConflictError(`an uplink named "${columns.name}" exists`, { name: "taken" });
    const urls = list(columns.urls);
    // a secret given now is sealed for the new URLs; one kept is sealed again for them
    const password =
      input.password !== undefined ? this.#seal(input.password, urls) : this.#reseal(stored.password, old.urls, urls);
    const clientKey =
      input.clientKey !== undefined
        ? this.#seal(input.clientKey, urls)
        : this.#reseal(stored.clientKey, old.urls, urls);
    const row = this.db
      .update(uplinks)
      .set({
        ...columns,
        ...(password !== undefined ? { password } : {}),
        ...(clientKey !== undefined ? { clientKey } : {}),
        updatedAt: Date.now(),
      })
      .where(eq(uplinks.id, old.id))
      .returning()
      .get();
    const what = [
      ...Object.keys(input).filter((k) => k !== "password" && k !== "clientKey" && k !== "enabled"),
      ...(input.password !== undefined ? ["password"] : []),
      ...(input.clientKey !== undefined ? ["client key"] : []),
    ];
    if (input.enabled !== undefined && input.enabled !== old.enabled)
      this.activity?.record(input.enabled ? "uplink.enabled" : "uplink.disabled", row.name);
    if (what.length) this.activity?.record("uplink.updated", row.name, `changed ${what.join(", ")}`);
    return viewOf(row);
  }

  setEnabled(name: string, enabled: boolean): UplinkView {
    return this.update(name, { enabled });
  }

  remove(name: string): UplinkView {
    const r = this.#row(name);
    this.db.delete(uplinks).where(eq(uplinks.id, r.id)).run();
    this.activity?.record("uplink.removed", r.name);
    return viewOf(r);
  }

  /**
   * exportAll: every uplink for `gatehouse export`; with `full` also its password and client key in
   * plain text (the export file is 0600 and meant for the next appliance, whose key file differs).
   */
  exportAll(full: boolean): UplinkExport[] {
    return this.configs().map((c) => {
      const { id: _, passwordSet, clientKeySet, createdAt: __, updatedAt: ___, password, clientKey, ...rest } = c;
      const { secretProblem: _p, ...fields } = rest;
      return full ? { ...fields, password: password ?? null, clientKey: clientKey ?? null } : fields;
    });
  }

  /** checkImport: would `importAll` take these? Throws what it would refuse; writes nothing. */
  checkImport(items: UplinkExport[]): void {
    const names = new Set<string>();
    for (const item of items) {
      this.#checked(undefined, item);
      if (names.has(item.name) || this.db.select().from(uplinks).where(eq(uplinks.name, item.name)).get())
        throw new ConflictError(`an uplink named "${item.name.slice(0, 64)}" exists`, { name: "taken" });
      names.add(item.name);
    }
  }

  /**
   * importAll: uplinks of an export (checked by `parseUplinkExport`); all or nothing (bun:sqlite's
   * transaction: a savepoint inside the import's own transaction).
   */
  importAll(items: UplinkExport[]): number {
    this.db.$client.transaction(() => {
      for (const item of items) this.create(item);
    })();
    return items.length;
  }
}

/** UplinkExport: one uplink in an export document (secrets only from `export --full`). */
export type UplinkExport = Omit<UplinkInput, "name"> & { name: string };

const exportKeys = new Set([
  "name",
  "enabled",
  "urls",
  "username",
  "password",
  "ca",
  "clientCert",
  "clientKey",
  "clientId",
  "protocol",
  "forward",
  "remotePrefix",
  "subscribe",
  "localPrefix",
  "qos",
  "inflight",
  "inventory",
]);

/**
 * parseUplinkExport: the `uplinks` of an export are a file from outside: each entry is checked for its
 * shape here (and by the store's validation when imported); any problem is listed, and refuses the file.
 */
export function parseUplinkExport(value: unknown): { items: UplinkExport[]; problems: string[] } {
  if (value === undefined) return { items: [], problems: [] };
  if (!Array.isArray(value) || value.length > 1000)
    return { items: [], problems: ["uplinks must be a list of at most 1000"] };
  const problems: string[] = [];
  const strings = (v: unknown) => Array.isArray(v) && v.length <= 100 && v.every((x) => typeof x === "string");
  const optional = (v: unknown) => v === undefined || v === null || typeof v === "string";
  for (const [i, e] of value.entries()) {
    const at = `uplink ${i + 1}`;
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      problems.push(`${at}: not an object`);
      continue;
    }
    const o = e as Record<string, unknown>;
    const extra = Object.keys(o).find((k) => !exportKeys.has(k));
    if (extra) problems.push(`${at}: unknown field ${JSON.stringify(extra.slice(0, 32))}`);
    if (typeof o.name !== "string") problems.push(`${at}: name must be a string`);
    for (const k of ["urls", "forward", "subscribe"])
      if (o[k] !== undefined && !strings(o[k])) problems.push(`${at}: ${k} must be a list of strings`);
    for (const k of ["username", "password", "ca", "clientCert", "clientKey"])
      if (!optional(o[k])) problems.push(`${at}: ${k} must be a string or null`);
    for (const k of ["clientId", "remotePrefix", "localPrefix"])
      if (o[k] !== undefined && typeof o[k] !== "string") problems.push(`${at}: ${k} must be a string`);
    for (const k of ["protocol", "qos", "inflight"])
      if (o[k] !== undefined && typeof o[k] !== "number") problems.push(`${at}: ${k} must be a number`);
    for (const k of ["enabled", "inventory"])
      if (o[k] !== undefined && typeof o[k] !== "boolean") problems.push(`${at}: ${k} must be true or false`);
  }
  return { items: problems.length ? [] : (value as UplinkExport[]), problems };
}
