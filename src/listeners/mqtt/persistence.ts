import { Readable } from "node:stream";
import type { Logger } from "../../lib/logger.ts";
import { isGranted, memoryCore, type MemoryCore } from "./aedes-internals.ts";
import {
  badQueueRow,
  badSessionRow,
  type BrokerDbSnapshot,
  type Cells,
  cellsBytes,
  loadBrokerDb,
  op,
  type Op,
  packetCells,
  packetOfRow,
  rowBytes,
  type StoredPacket,
  subscriptionOfRow,
} from "./broker-db.ts";
import { BrokerJournal, BrokerStoreError, quotaExceeded } from "./broker-journal.ts";

export { BrokerStoreError } from "./broker-journal.ts";

/** StoreLimits: what one integration's devices may make the broker keep (README: MQTT limits). */
export interface StoreLimits {
  /** queued messages per persistent session; past it the oldest is dropped */
  maxQueuedMessages: number;
  /** payload bytes (with topic and properties) queued per persistent session; past it the oldest are dropped */
  maxQueuedBytes: number;
  /** everything broker.db holds; past it new queued messages and new retained topics are dropped */
  maxStoreBytes: number;
  /**
   * what one integration may hold of it (its retained topics, its persistent sessions with their subscriptions,
   * its wills; its sessions' queues and QoS 2 state as much again, apart); 0: an eighth of `maxStoreBytes`. See
   * `BrokerStore.shareBytes`.
   */
  maxIntegrationBytes: number;
  /** stored persistent sessions per integration; past it the one offline longest is dropped */
  maxSessionsPerIntegration: number;
  /** subscriptions one session (clean or not) holds at most; past it SUBACK 0x97 (MQTT 5) / 0x80 */
  maxSubscriptionsPerSession: number;
  /** subscriptions the stored sessions of one integration hold together at most; past it SUBACK 0x97 / 0x80 */
  maxSubscriptionsPerIntegration: number;
}

export interface BrokerStoreOptions extends StoreLimits {
  /** `<data-dir>/broker.db`; undefined: the same store without a file (benchmarks) */
  file?: string;
  log: Logger;
  /** largest MQTT packet accepted (--mqtt-max-packet): a row with a larger payload is not loaded */
  maxPacketBytes?: number;
  /** test seam: SQLite's max_page_count on the writer, a full disk without filling one */
  maxPageCount?: number;
}

/** StoredSession: a persistent session, whose it is and when it ends. */
export interface StoredSession {
  clientId: string;
  integrationId: number;
  /** the integration's creation time: with its id, who it is (an id can be reused after a restore) */
  integrationCreated: number;
  /**
   * integrationStamp: the integration's `updatedAt` as this store last saw it; a different one at start means it
   * was changed while the appliance was down (deactivated and reactivated, a new password): the session is
   * forgotten. null: stored by a release before the stamp.
   */
  integrationStamp: number | null;
  /** seconds it outlives its connection; null: never ends by itself */
  expiry: number | null;
  /** when its last connection closed (ms); null while connected */
  offlineSince: number | null;
}

/**
 * ChargeKind: "own", what an integration made the broker keep by its own acts (its retained topics, sessions and
 * their subscriptions, its connections' wills); "queued", what waits in its sessions' queues and QoS 2 state
 * (others may publish it). Each is checked against the share apart (attack4 F4).
 */
export type ChargeKind = "own" | "queued";

/** StaleWill: a will stored by a previous run of the appliance, whose connection that run's end cut. */
export interface StaleWill {
  clientId: string;
  integrationId: number | null;
  integrationCreated: number | null;
  packet: StoredPacket;
}

/** Msg: a message queued for one or more sessions: one row, one packet, shared by its queue entries. */
interface Msg {
  id: number;
  packet: StoredPacket;
  bytes: number;
  refs: number;
  /** its columns, until its row is written */
  cells?: Cells;
}

/** Entry: a message in one session's queue (its packet id once sent), or the PUBREL that replaced it. */
interface Entry {
  id: number;
  msg: Msg | undefined;
  messageId: number | undefined;
}

interface Queue {
  entries: Map<number, Entry>;
  /** brokerId -> brokerCounter -> entry: how aedes names a message it updates */
  byBroker: Map<string, Map<number, Entry>>;
  byPacketId: Map<number, Entry>;
  bytes: number;
}

interface Sized {
  packet: StoredPacket;
  bytes: number;
}

/** Owner: an integration (its id and creation time: an id can be reused after a restore). */
export interface Owner {
  id: number;
  created: number;
}

/** Retained: a retained message, charged to the integration that published it (null: nobody's). */
interface Retained extends Sized {
  owner: Owner | null;
}

/**
 * Publisher: who is publishing right now (`BrokerStore.publisher`): the integration, and whether it is an MQTT
 * client's QoS 0 publish, which has no acknowledgement to carry a refusal.
 */
export interface Publisher extends Owner {
  unacknowledged: boolean;
}

const sameOwner = (a: Owner | null, b: Owner | null) =>
  a === b || (!!a && !!b && a.id === b.id && a.created === b.created);

/** packetOf: what aedes reads for an entry (a fresh object: aedes may set fields on what it streams). */
const packetOf = (e: Entry): StoredPacket =>
  e.msg ? { ...e.msg.packet, messageId: e.messageId } : { cmd: "pubrel", messageId: e.messageId };

/** copyPacket: what `new Packet(original)` of aedes-packet 4 makes, as the memory persistence stores it. */
function copyPacket(o: StoredPacket): StoredPacket {
  const p: StoredPacket = {};
  if (Object.hasOwn(o, "clientId")) p.clientId = o.clientId;
  if (Object.hasOwn(o, "nl")) p.nl = o.nl;
  if (Object.hasOwn(o, "properties")) p.properties = o.properties;
  if (Object.hasOwn(o, "messageExpiry")) p.messageExpiry = o.messageExpiry;
  p.cmd = o.cmd || "publish";
  p.brokerId = o.brokerId;
  p.brokerCounter = o.brokerCounter || 0;
  p.topic = o.topic;
  p.payload = o.payload || Buffer.alloc(0);
  p.qos = o.qos || 0;
  p.retain = o.retain || false;
  p.dup = o.dup || false;
  if ((p.qos as number) > 0 || p.cmd !== "publish") p.messageId = undefined;
  return p;
}

/**
 * subscriptionBytes: what a stored subscription counts for in `--mqtt-store-max-bytes`. Memory, not its row,
 * is its cost: aedes keeps each filter in its trie, in the client and in the memory core, besides this map;
 * 100 000 filters of 215 characters grew the process by ~790 MB (attack2 F1, ~7.9 KB each, broker.db 48 MB).
 */
const subscriptionBytes = (topic: string, options: string) => 2048 + 24 * topic.length + options.length;
const sessionBytes = (clientId: string) => rowBytes + clientId.length;
const isIntId = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1;
const isFiniteNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** longestOptions: the longest a subscription's options are stored (`{"qos":2,"rh":2,...,"subscriptionIdentifier":268435455}`) */
const longestOptions = 128;

/** entryBytes: a queue entry's upkeep (its row, its object), beside its message's */
const entryBytes = 64;

/**
 * BrokerStore: aedes' persistence (the promise-based interface aedes 2.0.0-beta.1 calls), kept in memory
 * for every read and written through to broker.db (`BrokerJournal`, group commit): the promise of a write
 * that an acknowledgement depends on (a retained message, a message queued for a persistent session, a
 * QoS 2 packet received, a subscription, a will) resolves only once the batch holding it is on disk.
 * Retained messages and subscriptions live in aedes-persistence's own memory core, so topic matching is
 * the library's; queues, QoS 2 packets and wills are kept here, where each entry knows its row.
 * It also keeps what MQTT leaves to the broker and the appliance needs across restarts: whose each
 * persistent session is, and when it ends, with the bounds of `StoreLimits`.
 */
export class BrokerStore {
  readonly #opts: BrokerStoreOptions;
  readonly #log: Logger;
  readonly #mem: MemoryCore = memoryCore();
  readonly #journal: BrokerJournal;
  #brokerId = "";
  #retained = new Map<string, Retained>();
  /** values answered "not stored", each with the one it replaced (see `#unretain`) */
  #refusedRetained = new WeakMap<Retained, Retained | undefined>();
  /** integration id -> the bytes of broker.db its own acts made the broker keep (see `shareBytes`) */
  #charges = new Map<number, number>();
  /** integration id -> the bytes waiting in its sessions' queues and QoS 2 state, checked apart (attack4 F4) */
  #queuedCharges = new Map<number, number>();
  /** integration id -> writes refused because it held its share */
  #shareRefusals = new Map<number, number>();
  #sessions = new Map<string, StoredSession>();
  #byIntegration = new Map<number, Set<string>>();
  #subs = new Map<string, Map<string, string>>();
  /** integration id -> subscriptions its stored sessions hold */
  #subsByIntegration = new Map<number, number>();
  #queues = new Map<string, Queue>();
  #incoming = new Map<string, Map<number, Sized & { stored: boolean }>>();
  #wills = new Map<string, Sized & { integrationId: number | null; integrationCreated: number | null }>();
  #stale: StaleWill[] = [];
  #nextMsg = 1;
  #nextEntry = 1;
  #bytes = 0;
  /** a write was refused for want of room (see `full`) */
  #refused = false;
  #queued = 0;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #expiryAt = Number.POSITIVE_INFINITY;
  #lastDropLog = new Map<string, number>();
  #dropsSinceLog = new Map<string, number>();

  /** ownerOf: the integration (id, creation time) a client id belongs to now; set by the listener */
  ownerOf: (clientId: string) => { id: number; created: number } | undefined = () => undefined;
  /** keepSubscription: may this session keep the filter (aedes stores a SUBSCRIBE's refused filters too) */
  keepSubscription: (clientId: string, topic: string) => boolean = () => true;
  /** onForget: a stored session ended (expired, dropped for room, forgotten); set by the listener */
  onForget: (clientId: string) => void = () => undefined;
  /**
   * publisher: the integration whose publish aedes is handling right now (set by the listener around each
   * `broker.publish`, which calls `storeRetained` before its first turn ends); undefined: the broker's own
   */
  publisher: Publisher | undefined;

  /** counts: what the bounds dropped, for the listener's metrics */
  readonly counts = {
    queueDropped: 0,
    storeFullDropped: 0,
    retainedDropped: 0,
    sessionsDropped: 0,
    sessionsExpired: 0,
    commits: 0,
    failedCommits: 0,
    /** rows of broker.db skipped at load (damaged or not of this release) */
    badRows: 0,
    /** writes refused or dropped because their integration held its share (`shareBytes`) */
    shareRefused: 0,
  };

  constructor(opts: BrokerStoreOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#journal = new BrokerJournal({
      file: opts.file,
      log: opts.log,
      maxPageCount: opts.maxPageCount,
      snapshot: () => this.#snapshot(),
      onCommit: (ok) => (ok ? this.counts.commits++ : this.counts.failedCommits++),
    });
  }

  /** opened: `open` was called (a store is opened once; a listener started again makes a new one) */
  opened = false;

  /** open: reads broker.db into memory (made empty if it is new) and starts its writer. */
  async open(): Promise<void> {
    this.opened = true;
    const cleanup: Op[] = [];
    if (this.#opts.file) {
      const rows = loadBrokerDb(this.#opts.file, (msg, fields) => this.#log.error(msg, fields));
      await this.#load(rows, cleanup);
    }
    await this.#journal.open();
    for (const o of cleanup) this.#journal.write(o);
    this.#armExpiry();
  }

  /** close: what is pending is written; the writer closes broker.db. */
  async close(): Promise<void> {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    await this.#journal.close();
  }

  get durable(): boolean {
    return this.#journal.durable;
  }

  /** failing: broker.db refuses writes (disk full, I/O error) and the gap is not healed yet */
  get failing(): boolean {
    return this.#journal.failing;
  }

  /**
   * full: broker.db had no room for a message (or holds `maxStoreBytes`), and has not fallen below 90 % of
   * it since
   */
  get full(): boolean {
    if (this.#refused && this.#bytes < this.#opts.maxStoreBytes * 0.9) this.#refused = false;
    return this.#refused || this.#bytes >= this.#opts.maxStoreBytes;
  }

  /**
   * shareBytes: what one integration may hold of broker.db (`--mqtt-store-max-integration-bytes`, by default an
   * eighth of the store), so that one device credential cannot fill it for every other integration (attack2
   * F6). Charged to it: the retained topics it published (as they are stored: a topic another integration
   * publishes next moves to that one), and its persistent sessions with their subscriptions, queued messages
   * (a message queued for two sessions is charged to each) and QoS 2 packets held, and the wills of its
   * connections. Not charged: retained rows stored before broker.db version 3 (nobody's). What waits in its
   * sessions' queues (queued messages, QoS 2 state) is checked against the share apart from the rest
   * (`ChargeKind`), so that another integration filling its queue stops only more queuing (attack4 F4).
   */
  get shareBytes(): number {
    return this.#opts.maxIntegrationBytes > 0
      ? this.#opts.maxIntegrationBytes
      : Math.floor(this.#opts.maxStoreBytes / 8);
  }

  /** chargeOf: the bytes of broker.db charged to integration `id` of `kind` (both kinds together when none given) */
  chargeOf(id: number, kind?: ChargeKind): number {
    if (kind === "queued") return this.#queuedCharges.get(id) ?? 0;
    if (kind === "own") return this.#charges.get(id) ?? 0;
    return (this.#charges.get(id) ?? 0) + (this.#queuedCharges.get(id) ?? 0);
  }

  /** charges: the bytes charged of `kind`, by integration id */
  charges(kind: ChargeKind = "own"): IterableIterator<[number, number]> {
    return (kind === "own" ? this.#charges : this.#queuedCharges).entries();
  }

  /** overShare: would `more` bytes of `kind` take integration `id` past its share (each kind is checked apart) */
  overShare(id: number, more = 0, kind: ChargeKind = "own"): boolean {
    return this.chargeOf(id, kind) + more > this.shareBytes;
  }

  /** subscriptionOverShare: would a new filter `topic` take integration `id` past its share (its options at their longest) */
  subscriptionOverShare(id: number, topic: string): boolean {
    return this.overShare(id, subscriptionBytes(topic, "") + longestOptions);
  }

  /** shareRefusals: writes refused (or not queued) per integration id because it held its share */
  get shareRefusals(): ReadonlyMap<number, number> {
    return this.#shareRefusals;
  }

  #charge(id: number | undefined, delta: number, kind: ChargeKind = "own") {
    if (id === undefined || delta === 0) return;
    const charges = kind === "own" ? this.#charges : this.#queuedCharges;
    const n = (charges.get(id) ?? 0) + delta;
    if (n <= 0) charges.delete(id);
    else charges.set(id, n);
  }

  /** #chargeClient: the stored session `clientId`'s integration (none: a clean session, nothing stored) */
  #chargeClient(clientId: string, delta: number, kind: ChargeKind = "own") {
    this.#charge(this.#sessions.get(clientId)?.integrationId, delta, kind);
  }

  /** #refusedShare: a write refused because integration `id` holds its share: counted per integration, logged at most once a minute. */
  #refusedShare(id: number, what: string, fields: Record<string, unknown>) {
    this.counts.shareRefused++;
    this.#shareRefusals.set(id, (this.#shareRefusals.get(id) ?? 0) + 1);
    this.#dropped(`share:${id}`, `mqtt store: the integration holds its share of broker.db; ${what}`, {
      integrationId: id,
      charged: this.chargeOf(id),
      share: this.shareBytes,
      ...fields,
    });
  }

  /**
   * disown: integration `id` was deleted: what it still has charged goes. Its retained messages stay (they are
   * the plant's last values, and other integrations may read them) as nobody's; its sessions were forgotten.
   */
  disown(id: number): void {
    let any = false;
    for (const r of this.#retained.values())
      if (r.owner?.id === id) {
        this.#charge(id, -r.bytes);
        r.owner = null;
        any = true;
      }
    if (any) this.#journal.write([op.retainedDisown, id]);
    this.#shareRefusals.delete(id);
  }

  /** disownGone: at start, retained messages of integrations that are gone (`alive` says no) become nobody's. */
  disownGone(alive: (owner: Owner) => boolean): void {
    // an id reused by another integration (after a restore) is not charged for the old one's rows: the creation time tells
    for (const r of this.#retained.values())
      if (r.owner && !alive(r.owner)) {
        this.#charge(r.owner.id, -r.bytes);
        r.owner = null;
        this.#journal.write(retainedOp(r));
      }
  }

  /** subscriptionsOf: the subscriptions the stored sessions of integration `id` hold together */
  subscriptionsOf(id: number): number {
    return this.#subsByIntegration.get(id) ?? 0;
  }

  /** limits: the bounds this store was made with */
  get limits(): StoreLimits {
    return this.#opts;
  }

  #countSubs(clientId: string, delta: number) {
    const id = this.#sessions.get(clientId)?.integrationId;
    if (id === undefined || delta === 0) return;
    const n = (this.#subsByIntegration.get(id) ?? 0) + delta;
    if (n <= 0) this.#subsByIntegration.delete(id);
    else this.#subsByIntegration.set(id, n);
  }

  /** hasSubscription: the stored session `clientId` keeps the filter `topic` */
  hasSubscription(clientId: string, topic: string): boolean {
    return this.#subs.get(clientId)?.has(topic) === true;
  }

  get stats() {
    return {
      bytes: this.#bytes,
      fileBytes: this.#journal.fileBytes,
      retained: this.#retained.size,
      sessions: this.#sessions.size,
      queued: this.#queued,
    };
  }

  // ---- loading -------------------------------------------------------------------------------------

  async #load(rows: BrokerDbSnapshot, cleanup: Op[]): Promise<void> {
    const now = Date.now();
    // A row this release did not write (damaged, edited by hand) is skipped and deleted, counted per table and
    // logged once: it costs that row, never the start (README: What the broker keeps).
    const bad = new Map<string, number>();
    const skip = (table: string, reason: string, del?: Op) => {
      bad.set(`${table}.${reason}`, (bad.get(`${table}.${reason}`) ?? 0) + 1);
      this.counts.badRows++;
      if (del && del.slice(1).every((v) => typeof v === "string" || typeof v === "number")) cleanup.push(del);
    };
    for (const r of rows.sessions) {
      const why = badSessionRow(r);
      if (why) {
        skip("sessions", why, [op.sessionDel, r.client_id]);
        continue;
      }
      // A session whose connection a crash cut is offline from now: it gets its whole expiry again.
      const s: StoredSession = {
        clientId: r.client_id,
        integrationId: r.integration_id,
        integrationCreated: r.integration_created,
        integrationStamp: r.integration_updated ?? null,
        expiry: r.expiry,
        offlineSince: r.offline_since ?? now,
      };
      this.#addSession(s);
      this.#bytes += sessionBytes(s.clientId);
      this.#charge(s.integrationId, sessionBytes(s.clientId));
    }
    const subsByClient = new Map<string, object[]>();
    for (const r of rows.subscriptions) {
      const options = subscriptionOfRow(r);
      if (typeof options === "string") {
        skip("subscriptions", options, [op.subDel, r.client_id, r.topic]);
        continue;
      }
      if (!this.#sessions.has(r.client_id)) {
        cleanup.push([op.subDel, r.client_id, r.topic]);
        continue;
      }
      let mine = this.#subs.get(r.client_id);
      if (!mine) this.#subs.set(r.client_id, (mine = new Map()));
      mine.set(r.topic, r.options);
      this.#countSubs(r.client_id, 1);
      this.#bytes += subscriptionBytes(r.topic, r.options);
      this.#chargeClient(r.client_id, subscriptionBytes(r.topic, r.options));
      let list = subsByClient.get(r.client_id);
      if (!list) subsByClient.set(r.client_id, (list = []));
      list.push({ ...options, topic: r.topic });
    }
    for (const [clientId, subs] of subsByClient) await this.#mem.addSubscriptions({ id: clientId }, subs);
    for (const r of rows.retained) {
      const packet = packetOfRow(r, this.#opts.maxPacketBytes);
      if (typeof packet === "string") {
        skip("retained", packet, [op.retainedDel, r.topic]);
        continue;
      }
      await this.#mem.storeRetained(packet);
      const bytes = r.topic.length + r.payload.length + (r.extra?.length ?? 0) + rowBytes;
      // charged again as it was when stored, so a restart gives back every integration's charge; an owner column
      // of a row this release did not write makes the row nobody's (its value is still good)
      const owner = isIntId(r.owner) && isFiniteNum(r.owner_created) ? { id: r.owner, created: r.owner_created } : null;
      this.#retained.set(r.topic, { packet, bytes, owner });
      this.#bytes += bytes;
      this.#charge(owner?.id, bytes);
    }
    const msgs = new Map<number, Msg>();
    for (const r of rows.messages) {
      const packet = isIntId(r.id) ? packetOfRow(r, this.#opts.maxPacketBytes) : "id";
      if (typeof packet === "string") {
        skip("messages", packet, [op.messageDel, r.id]);
        continue;
      }
      const bytes = r.topic.length + r.payload.length + (r.extra?.length ?? 0) + rowBytes;
      msgs.set(r.id, { id: r.id, packet, bytes, refs: 0 });
      if (r.id >= this.#nextMsg) this.#nextMsg = r.id + 1;
    }
    for (const r of rows.queue) {
      const why = badQueueRow(r);
      if (why) {
        skip("queue", why, [op.queueDel, r.id]);
        continue;
      }
      if (r.id >= this.#nextEntry) this.#nextEntry = r.id + 1;
      const msg = r.message === null ? undefined : msgs.get(r.message);
      if (!this.#sessions.has(r.client_id) || (r.pubrel === 0 && !msg)) {
        cleanup.push([op.queueDel, r.id]);
        continue;
      }
      this.#addEntry(r.client_id, {
        id: r.id,
        msg: r.pubrel === 1 ? undefined : msg,
        messageId: r.packet_id ?? undefined,
      });
    }
    for (const m of msgs.values()) {
      if (m.refs === 0) cleanup.push([op.messageDel, m.id]);
      else this.#bytes += m.bytes;
    }
    for (const r of rows.incoming) {
      const packet =
        isIntId(r.packet_id) && r.packet_id <= 65535 ? packetOfRow(r, this.#opts.maxPacketBytes) : "packet_id";
      if (typeof packet === "string" || typeof r.client_id !== "string") {
        skip("incoming", typeof packet === "string" ? packet : "client_id", [op.incomingDel, r.client_id, r.packet_id]);
        continue;
      }
      if (!this.#sessions.has(r.client_id)) {
        cleanup.push([op.incomingDel, r.client_id, r.packet_id]);
        continue;
      }
      let mine = this.#incoming.get(r.client_id);
      if (!mine) this.#incoming.set(r.client_id, (mine = new Map()));
      const bytes = r.topic.length + r.payload.length + (r.extra?.length ?? 0) + rowBytes;
      mine.set(r.packet_id, { packet: { ...packet, messageId: r.packet_id }, bytes, stored: true });
      this.#bytes += bytes;
      this.#chargeClient(r.client_id, bytes, "queued");
    }
    // Wills of the previous run: their connections ended with it. The listener publishes (or drops) them.
    for (const r of rows.wills) {
      const packet = packetOfRow(r, this.#opts.maxPacketBytes);
      const owner = { integrationId: r.integration_id, integrationCreated: r.integration_created };
      if (
        typeof packet === "string" ||
        typeof r.client_id !== "string" ||
        !(owner.integrationId === null || isIntId(owner.integrationId)) ||
        !(owner.integrationCreated === null || typeof owner.integrationCreated === "number")
      ) {
        skip("wills", typeof packet === "string" ? packet : "owner", [op.willDel, r.client_id]);
        continue;
      }
      const bytes = r.topic.length + r.payload.length + (r.extra?.length ?? 0) + rowBytes;
      this.#stale.push({ clientId: r.client_id, ...owner, packet });
      this.#wills.set(r.client_id, { packet, bytes, ...owner });
      this.#bytes += bytes;
      this.#charge(owner.integrationId ?? undefined, bytes);
    }
    if (bad.size > 0)
      this.#log.error("broker.db: rows this release did not write were skipped and deleted", Object.fromEntries(bad));
  }

  /** staleWills: the wills a previous run stored (each still stored until published or dropped: `dropStaleWill`). */
  staleWills(): StaleWill[] {
    return this.#stale.splice(0);
  }

  /** holdsWill: the stale will is still the one stored for its client id (its client has not come back). */
  holdsWill(will: StaleWill): boolean {
    return this.#wills.get(will.clientId)?.packet === will.packet;
  }

  /** dropStaleWill: the will is done with (published, or not allowed any more), unless its client stored a new one. */
  dropStaleWill(will: StaleWill): void {
    if (this.#wills.get(will.clientId)?.packet === will.packet) this.#dropWill(will.clientId);
  }

  // ---- sessions ------------------------------------------------------------------------------------

  sessions(): StoredSession[] {
    return [...this.#sessions.values()];
  }

  session(clientId: string): StoredSession | undefined {
    return this.#sessions.get(clientId);
  }

  /**
   * roomFor: may the integration store the session `clientId` now: it has one under that id already, or
   * fewer than the limit, or one offline that can make room.
   */
  roomFor(integrationId: number, clientId: string): boolean {
    const mine = this.#byIntegration.get(integrationId);
    if (!mine || mine.has(clientId) || mine.size < this.#opts.maxSessionsPerIntegration) return true;
    for (const id of mine) if (this.#sessions.get(id)?.offlineSince !== null) return true;
    return false;
  }

  /**
   * openSession: a client logged in asking for a persistent session. `cleanStart` (3.1.1 clean session
   * off never has it; MQTT 5 Clean Start, or an id whose earlier owner is gone) discards what was stored.
   * Past the integration's limit, its session offline longest is dropped.
   */
  openSession(s: {
    clientId: string;
    integrationId: number;
    integrationCreated: number;
    integrationStamp: number;
    expiry: number | null;
    cleanStart: boolean;
  }) {
    const old = this.#sessions.get(s.clientId);
    if (old && (s.cleanStart || old.integrationId !== s.integrationId)) this.#dropState(s.clientId);
    if (old && old.integrationId !== s.integrationId) this.#unindex(old);
    const mine = this.#byIntegration.get(s.integrationId);
    if (mine && !mine.has(s.clientId) && mine.size >= this.#opts.maxSessionsPerIntegration) {
      let oldest: StoredSession | undefined;
      for (const id of mine) {
        const o = this.#sessions.get(id)!;
        if (o.offlineSince !== null && (!oldest || o.offlineSince < oldest.offlineSince!)) oldest = o;
      }
      if (oldest) {
        this.counts.sessionsDropped++;
        this.#log.warn("mqtt session dropped: the integration has its most persistent sessions", {
          clientId: oldest.clientId.slice(0, 128),
          integrationId: s.integrationId,
          limit: this.#opts.maxSessionsPerIntegration,
        });
        this.forget(oldest.clientId);
      }
    }
    const session: StoredSession = {
      clientId: s.clientId,
      integrationId: s.integrationId,
      integrationCreated: s.integrationCreated,
      integrationStamp: s.integrationStamp,
      expiry: s.expiry,
      offlineSince: null,
    };
    if (!old) this.#bytes += sessionBytes(s.clientId);
    // its row moves to the integration that holds the id now (its state went with #dropState, charged to the old one)
    if (old) this.#charge(old.integrationId, -sessionBytes(s.clientId));
    this.#charge(s.integrationId, sessionBytes(s.clientId));
    this.#addSession(session);
    this.#writeSession(session);
  }

  /**
   * restamp: the integration was changed while running (permissions, password, activated): its stored sessions
   * carry its new `updatedAt`, so the next start keeps them (only a change made while it was down forgets them).
   */
  restamp(integrationId: number, stamp: number): void {
    for (const clientId of this.#byIntegration.get(integrationId) ?? []) {
      const s = this.#sessions.get(clientId)!;
      if (s.integrationStamp === stamp) continue;
      s.integrationStamp = stamp;
      this.#writeSession(s);
    }
  }

  /** closeSession: the session's last connection closed; it ends after `expiry` seconds (null: never, 0: now). */
  closeSession(clientId: string, expiry: number | null): void {
    const s = this.#sessions.get(clientId);
    if (!s) return;
    if (expiry === 0) {
      this.forget(clientId);
      return;
    }
    s.offlineSince = Date.now();
    s.expiry = expiry;
    this.#writeSession(s);
    // the timer already runs for an earlier end: nothing to rearm
    if (expiry !== null && (!this.#expiryTimer || s.offlineSince + expiry * 1000 < this.#expiryAt)) this.#armExpiry();
  }

  /**
   * forget: the stored session goes, with its subscriptions, its queue and its QoS 2 state (not its will:
   * that one belongs to the connection and is published or deleted with it).
   */
  forget(clientId: string): void {
    const s = this.#sessions.get(clientId);
    this.#dropState(clientId);
    if (!s) return;
    this.#unindex(s);
    this.#sessions.delete(clientId);
    this.#bytes -= sessionBytes(clientId);
    this.#charge(s.integrationId, -sessionBytes(clientId));
    this.#journal.write([op.sessionDel, clientId]);
    this.onForget(clientId);
  }

  /** dropVolatile: a clean session's connection closed: its QoS 2 state (kept in memory only) goes. */
  dropVolatile(clientId: string): void {
    if (this.#sessions.has(clientId)) return;
    const mine = this.#incoming.get(clientId);
    if (!mine) return;
    for (const e of mine.values()) if (e.stored) this.#bytes -= e.bytes;
    this.#incoming.delete(clientId);
  }

  #addSession(s: StoredSession) {
    this.#sessions.set(s.clientId, s);
    let mine = this.#byIntegration.get(s.integrationId);
    if (!mine) this.#byIntegration.set(s.integrationId, (mine = new Set()));
    mine.add(s.clientId);
  }

  #unindex(s: StoredSession) {
    const mine = this.#byIntegration.get(s.integrationId);
    mine?.delete(s.clientId);
    if (mine?.size === 0) this.#byIntegration.delete(s.integrationId);
  }

  #writeSession(s: StoredSession) {
    this.#journal.write(sessionOp(s));
  }

  /** #dropState: subscriptions, queue and QoS 2 state of a client id, in memory and on disk. */
  #dropState(clientId: string) {
    const subs = this.#subs.get(clientId);
    if (subs) {
      for (const [topic, options] of subs) {
        this.#bytes -= subscriptionBytes(topic, options);
        this.#chargeClient(clientId, -subscriptionBytes(topic, options));
      }
      this.#countSubs(clientId, -subs.size);
      this.#subs.delete(clientId);
      this.#journal.write([op.subsClear, clientId]);
    }
    void this.#mem.cleanSubscriptions({ id: clientId });
    const q = this.#queues.get(clientId);
    if (q) {
      for (const e of [...q.entries.values()]) this.#removeEntry(clientId, q, e, false);
      this.#journal.write([op.queueClear, clientId]);
    }
    const incoming = this.#incoming.get(clientId);
    if (incoming) {
      for (const e of incoming.values())
        if (e.stored) {
          this.#bytes -= e.bytes;
          this.#chargeClient(clientId, -e.bytes, "queued");
        }
      this.#incoming.delete(clientId);
      this.#journal.write([op.incomingClear, clientId]);
    }
  }

  /** #armExpiry: one timer, at the next session's end. */
  #armExpiry() {
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.#sessions.values())
      if (s.offlineSince !== null && s.expiry !== null) next = Math.min(next, s.offlineSince + s.expiry * 1000);
    if (next === this.#expiryAt && this.#expiryTimer) return;
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#expiryAt = next;
    if (next === Number.POSITIVE_INFINITY) return;
    const delay = Math.min(Math.max(0, next - Date.now()), 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expiryAt = Number.POSITIVE_INFINITY;
      const now = Date.now();
      for (const s of [...this.#sessions.values()]) {
        if (s.offlineSince === null || s.expiry === null || s.offlineSince + s.expiry * 1000 > now) continue;
        this.counts.sessionsExpired++;
        this.forget(s.clientId);
      }
      this.#armExpiry();
    }, delay);
    this.#expiryTimer.unref?.();
  }

  // ---- aedes' persistence interface ----------------------------------------------------------------

  async setup(broker: { id: string }): Promise<void> {
    this.#brokerId = broker.id;
    await this.#mem.setup(broker);
  }

  async storeRetained(packet: StoredPacket): Promise<void> {
    const topic = packet.topic!;
    const old = this.#retained.get(topic);
    // read before the first await: it is set only while aedes' publish runs its first turn
    const by = this.publisher;
    if (!packet.payload || packet.payload.length === 0) {
      // clearing a retained topic always works, whoever holds it (permissions decided who may), and frees its charge
      await this.#mem.storeRetained(packet);
      if (!old) return;
      this.#retained.delete(topic);
      this.#bytes -= old.bytes;
      this.#charge(old.owner?.id, -old.bytes);
      this.#journal.write([op.retainedDel, topic]);
      return this.#journal.committed();
    }
    const stored = { ...packet, retainedAt: Date.now() }; // our copy carries the time; aedes' packet stays its own
    const cells = packetCells(stored);
    const bytes = cellsBytes(cells);
    // A retained topic already stored can always be replaced by a value no larger (it is the plant's current
    // value); a new one, or a replacement by what it grows (attack4 F3: twelve topics swollen to 900 KB each took
    // the store ten times past its cap), is refused once it does not fit.
    if (bytes - (old?.bytes ?? 0) > 0 && this.#bytes + bytes - (old?.bytes ?? 0) > this.#opts.maxStoreBytes) {
      this.#refused = true;
      this.counts.retainedDropped++;
      this.#dropped("retained", "mqtt store full: a new retained topic was not kept", { topic: topic.slice(0, 256) });
      return;
    }
    // The publisher's share (attack2 F6): a new topic, or one another integration held, is charged whole to it; its
    // own value replaced only by what it grows. Past the share it is refused, not dropped: an MQTT 5 PUBACK 0x97,
    // a 3.1.1 connection closed without PUBACK, HTTP 503 (a QoS 0 MQTT publish has nothing to carry that: dropped).
    const owner: Owner | null = by ? { id: by.id, created: by.created } : null;
    const grows = old && sameOwner(old.owner, owner) ? bytes - old.bytes : bytes;
    if (owner && grows > 0 && this.overShare(owner.id, grows)) {
      this.#refusedShare(owner.id, "a retained value was not kept", { topic: topic.slice(0, 256) });
      if (by?.unacknowledged) return;
      throw new BrokerStoreError("the integration holds its share of the broker store", quotaExceeded);
    }
    // counted before the first await: publishes handled at once each see the others' bytes (attack2 F6:
    // checked first and counted after, a burst of new topics passed the check together, 54 % over the cap)
    const mine: Retained = { packet: stored, bytes, owner };
    this.#retained.set(topic, mine);
    this.#bytes += bytes - (old?.bytes ?? 0);
    this.#charge(old?.owner?.id, -(old?.bytes ?? 0));
    this.#charge(owner?.id, bytes);
    this.#journal.write(retainedOp(mine));
    const done = this.#orUndo(() => this.#unretain(topic, mine, old)); // this batch's, taken before the await
    await this.#mem.storeRetained(packet);
    return done;
  }

  /**
   * #unretain: a retained value answered "not stored" is not kept either (attack2 F8: the heal after a full
   * disk wrote it, and it was served later): the value before it comes back, unless a newer one replaced it;
   * one before it that was refused too is skipped.
   */
  async #unretain(topic: string, mine: Retained, old: Retained | undefined) {
    this.#refusedRetained.set(mine, old);
    if (this.#retained.get(topic) !== mine) return;
    let back = old;
    while (back && this.#refusedRetained.has(back)) back = this.#refusedRetained.get(back);
    this.#bytes -= mine.bytes - (back?.bytes ?? 0);
    this.#charge(mine.owner?.id, -mine.bytes);
    this.#charge(back?.owner?.id, back?.bytes ?? 0);
    if (back) {
      this.#retained.set(topic, back);
      this.#journal.write(retainedOp(back));
    } else {
      this.#retained.delete(topic);
      this.#journal.write([op.retainedDel, topic]);
    }
    await this.#mem.storeRetained(back?.packet ?? { ...mine.packet, payload: Buffer.alloc(0) });
  }

  /** #orUndo: the batch's promise; when it fails, `undo` takes back from memory what this write added. */
  #orUndo(undo: () => void | Promise<void>): Promise<void> {
    return this.#journal.committed().catch(async (err) => {
      await undo();
      throw err;
    });
  }

  /** retainedAt: when the retained value of `topic` now held was stored (ms; kept across restarts in broker.db). */
  retainedAt(topic: string): number | undefined {
    const at = this.#retained.get(topic)?.packet.retainedAt;
    return typeof at === "number" ? at : undefined;
  }

  createRetainedStream(pattern: string): Readable {
    return this.#mem.createRetainedStream(pattern);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return this.#mem.createRetainedStreamCombi(patterns);
  }

  async addSubscriptions(client: { id: string }, subs: (StoredPacket & { topic: string })[]): Promise<void> {
    const id = client.id;
    // only a stored session keeps subscriptions (aedes asks for persistent ones only; a session forgotten
    // while its client is still being dropped keeps none)
    if (!this.#sessions.has(id)) return;
    let mine = this.#subs.get(id);
    if (!mine) this.#subs.set(id, (mine = new Map()));
    const full = this.full;
    const kept = subs.filter((s) => isGranted(s) && this.keepSubscription(id, s.topic) && (!full || mine.has(s.topic)));
    let wrote = false;
    for (const sub of kept) {
      const record: Record<string, unknown> = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      const options = JSON.stringify(record);
      const old = mine.get(sub.topic);
      // the same again: nothing to write, unless broker.db refuses writes (found from outside: the first
      // SUBSCRIBE on a full disk closed its connection, the same one again got a SUBACK with the subscription
      // in memory only, lost at the next restart while the session said "present"): written again, so it
      // is acknowledged only once it is on disk
      if (old === options && !this.#journal.failing) continue;
      if (old !== undefined) {
        this.#bytes -= subscriptionBytes(sub.topic, old);
        this.#chargeClient(id, -subscriptionBytes(sub.topic, old));
      } else this.#countSubs(id, 1);
      mine.set(sub.topic, options);
      this.#bytes += subscriptionBytes(sub.topic, options);
      this.#chargeClient(id, subscriptionBytes(sub.topic, options));
      this.#journal.write([op.subPut, id, sub.topic, options]);
      wrote = true;
    }
    await this.#mem.addSubscriptions(client, kept);
    if (wrote) return this.#journal.committed();
  }

  async removeSubscriptions(client: { id: string }, topics: string[]): Promise<void> {
    const mine = this.#subs.get(client.id);
    let wrote = false;
    for (const topic of topics) {
      const old = mine?.get(topic);
      if (old === undefined) continue;
      mine!.delete(topic);
      this.#countSubs(client.id, -1);
      this.#bytes -= subscriptionBytes(topic, old);
      this.#chargeClient(client.id, -subscriptionBytes(topic, old));
      this.#journal.write([op.subDel, client.id, topic]);
      wrote = true;
    }
    if (mine?.size === 0) this.#subs.delete(client.id);
    await this.#mem.removeSubscriptions(client, topics);
    if (wrote) return this.#journal.committed();
  }

  subscriptionsByClient(client: { id: string }) {
    return this.#mem.subscriptionsByClient(client);
  }

  countOffline() {
    return this.#mem.countOffline();
  }

  subscriptionsByTopic(topic: string) {
    return this.#mem.subscriptionsByTopic(topic);
  }

  async cleanSubscriptions(client: { id: string }): Promise<void> {
    const mine = this.#subs.get(client.id);
    if (mine) {
      for (const [topic, options] of mine) {
        this.#bytes -= subscriptionBytes(topic, options);
        this.#chargeClient(client.id, -subscriptionBytes(topic, options));
      }
      this.#countSubs(client.id, -mine.size);
      this.#subs.delete(client.id);
      this.#journal.write([op.subsClear, client.id]);
    }
    await this.#mem.cleanSubscriptions(client);
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    return this.outgoingEnqueueCombi([sub], packet);
  }

  async outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void> {
    let msg: Msg | undefined;
    const added: [string, Entry][] = [];
    for (const sub of subs) {
      if (!this.#sessions.has(sub.clientId)) continue;
      if (!msg) {
        // one compact copy (what `new Packet(packet)` keeps), shared by every session it is queued for
        const cells = packetCells(packet);
        msg = { id: 0, packet: copyPacket(packet), bytes: cellsBytes(cells), refs: 0, cells };
      }
      if (msg.refs === 0 && this.#bytes + msg.bytes > this.#opts.maxStoreBytes) {
        this.#refused = true;
        this.counts.storeFullDropped += subs.length;
        this.#dropped("store", "mqtt store full: a message was not queued for persistent sessions", {
          topic: (packet.topic ?? "").slice(0, 256),
          sessions: subs.length,
          limit: this.#opts.maxStoreBytes,
        });
        break;
      }
      // a subscriber's integration at its share gets no more queued: the message is not queued for this session,
      // as for a full store (its publisher is not refused: another integration's share is none of its business)
      const owner = this.#sessions.get(sub.clientId)!.integrationId;
      if (this.overShare(owner, msg.bytes + entryBytes, "queued")) {
        this.#refusedShare(owner, "a message was not queued for its persistent session", {
          clientId: sub.clientId.slice(0, 128),
        });
        continue;
      }
      let q = this.#queues.get(sub.clientId);
      if (msg.bytes > this.#opts.maxQueuedBytes) {
        this.counts.queueDropped++;
        this.#dropped("queue", "mqtt queue full: message larger than a session's queue", { clientId: sub.clientId });
        continue;
      }
      // drop-oldest: the newest values matter most to a device coming back
      while (q && (q.entries.size >= this.#opts.maxQueuedMessages || q.bytes + msg.bytes > this.#opts.maxQueuedBytes)) {
        const oldest = q.entries.values().next().value as Entry;
        this.#removeEntry(sub.clientId, q, oldest);
        this.counts.queueDropped++;
        this.#dropped("queue", "mqtt queue full: the oldest queued message was dropped", {
          clientId: sub.clientId.slice(0, 128),
          limit: this.#opts.maxQueuedMessages,
          limitBytes: this.#opts.maxQueuedBytes,
        });
        q = this.#queues.get(sub.clientId);
      }
      if (msg.refs === 0) {
        msg.id = this.#nextMsg++;
        this.#bytes += msg.bytes;
        this.#journal.write([op.messagePut, msg.id, ...msg.cells!]);
        msg.cells = undefined;
      }
      const entry: Entry = { id: this.#nextEntry++, msg, messageId: undefined };
      this.#addEntry(sub.clientId, entry);
      this.#journal.write([op.queuePut, entry.id, sub.clientId, msg.id, null, 0]);
      added.push([sub.clientId, entry]);
    }
    if (added.length === 0) return;
    // answered "not stored": not delivered later either (attack2 F8), so its queue entries go
    return this.#orUndo(() => {
      for (const [clientId, e] of added) {
        const q = this.#queues.get(clientId);
        if (q?.entries.get(e.id) === e) this.#removeEntry(clientId, q, e);
      }
    });
  }

  async outgoingUpdate(client: { id: string }, packet: StoredPacket): Promise<void> {
    const q = this.#queues.get(client.id);
    if (!q) return;
    const messageId = packet.messageId as number;
    if (packet.brokerId) {
      const e = q.byBroker.get(packet.brokerId as string)?.get(packet.brokerCounter as number);
      if (e) {
        if (e.messageId !== messageId) {
          this.#indexPacketId(q, e, messageId);
          this.#journal.write([op.queuePacketId, e.id, messageId]);
        }
        return;
      }
    }
    // The memory persistence's other rule: an entry of another broker (a PUBREL has none) with this
    // packet id is replaced. A message this store dropped (its queue was full) is not found: aedes
    // delivers it anyway, where the memory persistence would fail the client.
    const e = q.byPacketId.get(messageId);
    if (!e || (e.msg?.packet.brokerId ?? undefined) === packet.brokerId) return;
    if (packet.cmd === "pubrel") {
      if (e.msg) this.#unindexBroker(q, e);
      if (e.msg) this.#unref(client.id, q, e.msg);
      e.msg = undefined;
      this.#journal.write([op.queuePubrel, e.id, messageId]);
    }
  }

  async outgoingClearMessageId(client: { id: string }, packet: StoredPacket): Promise<StoredPacket | undefined> {
    const q = this.#queues.get(client.id);
    if (!q) return undefined;
    let e = q.byPacketId.get(packet.messageId as number);
    if (!e) {
      for (const x of q.entries.values())
        if (x.messageId === packet.messageId) {
          e = x;
          break;
        }
    }
    if (!e) return undefined;
    const removed = packetOf(e);
    this.#removeEntry(client.id, q, e);
    return removed;
  }

  outgoingStream(client: { id: string }): Readable {
    const q = this.#queues.get(client.id);
    return Readable.from(q ? [...q.entries.values()].map(packetOf) : []);
  }

  async incomingStorePacket(client: { id: string }, packet: StoredPacket): Promise<void> {
    let mine = this.#incoming.get(client.id);
    if (!mine) this.#incoming.set(client.id, (mine = new Map()));
    const copy = copyPacket(packet);
    copy.messageId = packet.messageId;
    const messageId = packet.messageId as number;
    const cells = packetCells(copy);
    const bytes = cellsBytes(cells);
    // QoS 2 messages received and not released yet are bounded like a queue: a client holding more is
    // refused (aedes closes its connection) instead of growing memory and broker.db
    let held = 0;
    for (const e of mine.values()) held += e.bytes;
    if (mine.size >= this.#opts.maxQueuedMessages || held + bytes > this.#opts.maxQueuedBytes)
      throw new Error("too many QoS 2 messages not released");
    const old = mine.get(messageId);
    if (old?.stored) {
      this.#bytes -= old.bytes;
      this.#chargeClient(client.id, -old.bytes, "queued");
    }
    // a clean session's QoS 2 state ends with its connection: memory only
    if (!this.#sessions.has(client.id)) {
      mine.set(messageId, { packet: copy, bytes, stored: false });
      return;
    }
    if (this.#bytes + bytes > this.#opts.maxStoreBytes) throw new Error("broker store full");
    const owner = this.#sessions.get(client.id)!.integrationId;
    if (this.overShare(owner, bytes, "queued")) {
      this.#refusedShare(owner, "a QoS 2 message was not received", { clientId: client.id.slice(0, 128) });
      throw new BrokerStoreError("the integration holds its share of the broker store", quotaExceeded);
    }
    const entry = { packet: copy, bytes, stored: true };
    mine.set(messageId, entry);
    this.#bytes += bytes;
    this.#charge(owner, bytes, "queued");
    this.#journal.write([op.incomingPut, client.id, messageId, ...cells]);
    // not acknowledged (no PUBREC): the client sends it again, so the copy held here goes
    return this.#orUndo(() => {
      const now = this.#incoming.get(client.id);
      if (now?.get(messageId) !== entry) return;
      now.delete(messageId);
      if (now.size === 0) this.#incoming.delete(client.id);
      this.#bytes -= bytes;
      this.#chargeClient(client.id, -bytes, "queued");
      this.#journal.write([op.incomingDel, client.id, messageId]);
    });
  }

  async incomingGetPacket(client: { id: string }, packet: StoredPacket): Promise<StoredPacket> {
    const e = this.#incoming.get(client.id)?.get(packet.messageId as number);
    if (!e) throw new Error("no such packet");
    return e.packet;
  }

  async incomingDelPacket(client: { id: string }, packet: StoredPacket): Promise<void> {
    const mine = this.#incoming.get(client.id);
    const messageId = packet.messageId as number;
    const e = mine?.get(messageId);
    if (!e) throw new Error("no such packet");
    mine!.delete(messageId);
    if (mine!.size === 0) this.#incoming.delete(client.id);
    if (!e.stored) return;
    this.#bytes -= e.bytes;
    this.#chargeClient(client.id, -e.bytes, "queued");
    this.#journal.write([op.incomingDel, client.id, messageId]);
  }

  /**
   * willRefused: why a CONNECT's will would not be kept (attack4 F1): it would take the store past its cap
   * ("store") or integration `id` past its share ("share"); undefined: it fits. The listener refuses such a
   * CONNECT (MQTT 5 CONNACK 0x97, 3.1.1 CONNACK 3); `putWill` checks again, as it stores.
   */
  willRefused(id: number, clientId: string, will: object): "store" | "share" | undefined {
    const bytes = cellsBytes(packetCells({ ...will, brokerId: this.#brokerId, clientId } as StoredPacket));
    const old = this.#wills.get(clientId);
    const grows = bytes - (old?.bytes ?? 0);
    if (grows > 0 && this.#bytes + grows > this.#opts.maxStoreBytes) return "store";
    if (this.overShare(id, old?.integrationId === id ? grows : bytes)) return "share";
    return undefined;
  }

  async putWill(client: { id: string }, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.#brokerId;
    packet.clientId = client.id;
    const owner = this.ownerOf(client.id);
    const cells = packetCells(packet);
    const bytes = cellsBytes(cells);
    const old = this.#wills.get(client.id);
    // A will counts toward the store and its integration's share like a retained value (attack4 F1: 150
    // connections' wills filled the store past its cap, charged to nobody). Checked again here, counted at once:
    // CONNECTs checked together (`willRefused`) cannot pass the bounds together.
    const grows = bytes - (old?.bytes ?? 0);
    const why =
      grows > 0 && this.#bytes + grows > this.#opts.maxStoreBytes
        ? "store"
        : owner && this.overShare(owner.id, old?.integrationId === owner.id ? grows : bytes)
          ? "share"
          : undefined;
    if (why) {
      if (why === "share" && owner)
        this.#refusedShare(owner.id, "a will was not kept", { clientId: client.id.slice(0, 128) });
      else {
        this.#refused = true;
        this.#dropped("will", "mqtt store full: a will was not kept", { clientId: client.id.slice(0, 128) });
      }
      throw new BrokerStoreError("no room for the will in the broker store", quotaExceeded);
    }
    if (old) {
      this.#bytes -= old.bytes;
      this.#charge(old.integrationId ?? undefined, -old.bytes);
    }
    this.#wills.set(client.id, {
      packet,
      bytes,
      integrationId: owner?.id ?? null,
      integrationCreated: owner?.created ?? null,
    });
    this.#bytes += bytes;
    this.#charge(owner?.id, bytes);
    this.#journal.write([op.willPut, client.id, owner?.id ?? null, owner?.created ?? null, ...cells]);
    // A will that cannot be written (a full disk) is kept in memory: the device logs in, and its will goes
    // out if it drops while this process runs (found from outside: on a full disk every CONNECT with a will
    // was closed without a CONNACK, a VRPC agent's offline announcement is its will, and the refused
    // connection's will was published anyway). The store's heal writes it with the rest once there is room.
    return this.#journal.committed().catch((err) => {
      if (!(err instanceof BrokerStoreError)) throw err;
    });
  }

  async getWill(client: { id: string }): Promise<StoredPacket | undefined> {
    return this.#wills.get(client.id)?.packet;
  }

  async delWill(client: { id: string }): Promise<StoredPacket | undefined> {
    return this.#dropWill(client.id);
  }

  #dropWill(clientId: string): StoredPacket | undefined {
    const w = this.#wills.get(clientId);
    if (!w) return undefined;
    this.#wills.delete(clientId);
    this.#bytes -= w.bytes;
    this.#charge(w.integrationId ?? undefined, -w.bytes);
    this.#journal.write([op.willDel, clientId]);
    return w.packet;
  }

  /**
   * streamWill: aedes' sweep for wills of brokers that stopped, meant for a cluster. This appliance is one
   * broker: a previous run's wills are published by the listener at start (`staleWills`), asked against
   * their integration's permissions; the sweep would publish them as the broker, asking nobody.
   */
  streamWill(_brokers?: unknown): Readable {
    return Readable.from([]);
  }

  getClientList(topic: string): Readable {
    return this.#mem.getClientList(topic);
  }

  async destroy(): Promise<void> {
    await this.close();
  }

  // ---- queues --------------------------------------------------------------------------------------

  #addEntry(clientId: string, e: Entry) {
    let q = this.#queues.get(clientId);
    if (!q)
      this.#queues.set(clientId, (q = { entries: new Map(), byBroker: new Map(), byPacketId: new Map(), bytes: 0 }));
    q.entries.set(e.id, e);
    const brokerId = e.msg?.packet.brokerId as string | undefined;
    if (brokerId) {
      let counters = q.byBroker.get(brokerId);
      if (!counters) q.byBroker.set(brokerId, (counters = new Map()));
      counters.set(e.msg!.packet.brokerCounter as number, e);
    }
    if (e.messageId !== undefined && e.messageId !== null) q.byPacketId.set(e.messageId, e);
    if (e.msg) {
      e.msg.refs++;
      q.bytes += e.msg.bytes;
    }
    // each session's integration is charged for what its queue holds, a message shared with others included
    this.#chargeClient(clientId, entryBytes + (e.msg?.bytes ?? 0), "queued");
    this.#bytes += entryBytes;
    this.#queued++;
  }

  #indexPacketId(q: Queue, e: Entry, messageId: number) {
    if (e.messageId !== undefined && q.byPacketId.get(e.messageId) === e) q.byPacketId.delete(e.messageId);
    e.messageId = messageId;
    q.byPacketId.set(messageId, e);
  }

  #unindexBroker(q: Queue, e: Entry) {
    const brokerId = e.msg?.packet.brokerId as string | undefined;
    if (!brokerId) return;
    const counters = q.byBroker.get(brokerId);
    const counter = e.msg!.packet.brokerCounter as number;
    if (counters?.get(counter) !== e) return;
    counters.delete(counter);
    if (counters.size === 0) q.byBroker.delete(brokerId);
  }

  #removeEntry(clientId: string, q: Queue, e: Entry, writeRow = true) {
    q.entries.delete(e.id);
    this.#unindexBroker(q, e);
    if (e.messageId !== undefined && q.byPacketId.get(e.messageId) === e) q.byPacketId.delete(e.messageId);
    if (e.msg) this.#unref(clientId, q, e.msg);
    if (writeRow) this.#journal.write([op.queueDel, e.id]);
    this.#bytes -= entryBytes;
    this.#chargeClient(clientId, -entryBytes, "queued");
    this.#queued--;
    if (q.entries.size === 0) this.#queues.delete(clientId);
  }

  #unref(clientId: string, q: Queue, msg: Msg) {
    q.bytes -= msg.bytes;
    this.#chargeClient(clientId, -msg.bytes, "queued");
    if (--msg.refs > 0) return;
    this.#bytes -= msg.bytes;
    this.#journal.write([op.messageDel, msg.id]);
  }

  /** #dropped: a bound dropped something: counted always, logged at most once a minute per kind. */
  #dropped(kind: string, msg: string, fields: Record<string, unknown>) {
    const n = (this.#dropsSinceLog.get(kind) ?? 0) + 1;
    const now = Date.now();
    if (now - (this.#lastDropLog.get(kind) ?? 0) < 60_000) {
      this.#dropsSinceLog.set(kind, n);
      return;
    }
    this.#lastDropLog.set(kind, now);
    this.#dropsSinceLog.set(kind, 0);
    this.#log.warn(msg, { ...fields, dropped: n });
  }

  /** #snapshot: the whole state as ops, to write over a file a failed batch left behind. */
  #snapshot(): Op[] {
    const ops: Op[] = [];
    for (const r of this.#retained.values()) ops.push(retainedOp(r));
    for (const s of this.#sessions.values()) ops.push(sessionOp(s));
    for (const [clientId, subs] of this.#subs)
      for (const [topic, options] of subs) ops.push([op.subPut, clientId, topic, options]);
    const written = new Set<Msg>();
    for (const [clientId, q] of this.#queues)
      for (const e of q.entries.values()) {
        if (e.msg && !written.has(e.msg)) {
          written.add(e.msg);
          ops.push([op.messagePut, e.msg.id, ...packetCells(e.msg.packet)]);
        }
        ops.push([op.queuePut, e.id, clientId, e.msg?.id ?? null, e.messageId ?? null, e.msg ? 0 : 1]);
      }
    for (const [clientId, mine] of this.#incoming)
      for (const [pid, e] of mine) if (e.stored) ops.push([op.incomingPut, clientId, pid, ...packetCells(e.packet)]);
    for (const [clientId, w] of this.#wills)
      ops.push([op.willPut, clientId, w.integrationId, w.integrationCreated, ...packetCells(w.packet)]);
    return ops;
  }
}

/** retainedOp: the write of a retained message's row, with its owner. */
function retainedOp(r: Retained): Op {
  return [op.retainedPut, ...packetCells(r.packet), r.owner?.id ?? null, r.owner?.created ?? null];
}

/** sessionOp: the write of a stored session's row. */
function sessionOp(s: StoredSession): Op {
  return [
    op.sessionPut,
    s.clientId,
    s.integrationId,
    s.integrationCreated,
    s.expiry,
    s.offlineSince,
    s.integrationStamp,
  ];
}
