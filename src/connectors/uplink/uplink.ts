import { type IPublishPacket, type MqttClient, ReasonCodes } from "mqtt";
import { messageProperties, type PublishedMessage } from "../../core/bus.ts";
import type { Core } from "../../core/index.ts";
import { mayPublish, type TopicSpace } from "../../core/permissions.ts";
import { isValidTopicString, topicMatches } from "../../core/topics.ts";
import type { Integration } from "../../core/types.ts";
import { type Logger, shownName } from "../../lib/logger.ts";
import { type Backoff, statusTopic, UplinkConnection } from "./connection.ts";
import type { Outbox, QueuedMessage } from "./outbox.ts";
import type { OutboxRow } from "./outbox-protocol.ts";
import { maxInflight, type UplinkConfig } from "./store.ts";
import { PacketTooLarge, PublishBatch } from "./wire.ts";

/** Bounds: an uplink's queue on disk holds at most this much; past it the oldest go (counted). */
export interface Bounds {
  maxMessages: number;
  maxBytes: number;
}

/** UplinkStatus: what the page, the API, /metrics, /readyz and `gatehouse uplinks status` show of an uplink. */
export interface UplinkStatus {
  name: string;
  enabled: boolean;
  connected: boolean;
  /** the node in use while connected */
  url: string | null;
  connectedSince: number | null;
  disconnectedSince: number | null;
  lastError: string | null;
  queued: number;
  queuedBytes: number;
  oldestQueuedAgeS: number;
  forwarded: number;
  forwardedPerSecond: number;
  /** dropped: messages the uplink will not send (its bounds, refused upstream, and ones nobody waited for that could not be queued) */
  dropped: number;
  /** refused: messages it could not queue (a full disk) whose publishers were told no (they send them again) */
  refused: number;
  resent: number;
  /** messages brought down (subscriptions) and published locally */
  received: number;
  /** when this status was taken (the CLI tells a running appliance's from a stale one) */
  at: number;
}

/** the counters that survive a restart (kept with the status in the outbox file) */
type Counters = Pick<UplinkStatus, "forwarded" | "dropped" | "refused" | "resent" | "received">;

/**
 * unanswered: rows whose publisher did not wait for the outbox (an MQTT QoS 0 publish, a message only QoS 0
 * uplinks take): if their write fails they count as dropped. Any other row's publisher is told no.
 */
export const unanswered = new WeakSet<OutboxRow>();

/** propsText: the forwardable properties of a message as stored in the outbox (JSON; bytes as base64). */
export function propsText(properties: Record<string, unknown> | undefined): string | null {
  if (!properties) return null;
  const kept: Record<string, unknown> = {};
  for (const k of messageProperties) {
    const v = properties[k];
    if (v === undefined) continue;
    kept[k] = Buffer.isBuffer(v) || v instanceof Uint8Array ? { base64: Buffer.from(v).toString("base64") } : v;
  }
  return Object.keys(kept).length ? JSON.stringify(kept) : null;
}

function propsOf(text: string | null): Record<string, unknown> | undefined {
  if (!text) return undefined;
  try {
    const p = JSON.parse(text) as Record<string, unknown>;
    const c = p.correlationData as { base64?: string } | undefined;
    if (c?.base64 !== undefined) p.correlationData = Buffer.from(c.base64, "base64");
    return p;
  } catch {
    return undefined;
  }
}

/**
 * forwards: does a local publish on `topic` match an uplink's forward filters? With the core's shields:
 * `#` and `+` never reach `$` topics [MQTT-4.7.2-1] nor into a VRPC domain; a filter naming them does.
 */
export function forwards(filters: readonly string[], topic: string, space: TopicSpace): boolean {
  let shielded = -1;
  for (let i = 0; i < filters.length; i++) {
    const f = filters[i]!;
    const c = f.charCodeAt(0);
    if (c === 35 /* # */ || c === 43 /* + */) {
      if (shielded < 0) shielded = space.vrpcDomainOf(topic) === undefined ? 0 : 1;
      if (shielded === 1) continue;
    }
    if (topicMatches(f, topic)) return true;
  }
  return false;
}

/** rows of an uplink kept in memory after their write, at most (see `Uplink.#keep`) */
const maxReady = 1000;
const maxReadyBytes = 4 * 1024 * 1024;

/** closes in a row with the same head and nothing acknowledged before the uplink says the head holds it (see `#stuck`) */
const stuckAfter = 3;

/** Unacked: a message handed to the connection and not yet acknowledged upstream. */
interface Unacked extends QueuedMessage {
  /** sent on the current connection (false: to be sent again after a reconnect) */
  sent: boolean;
  /** sent before, on an earlier connection: goes again with DUP set */
  again: boolean;
  /** the bytes of its PUBLISH as last sent (header, topic with the remote prefix, payload; 0: not sent yet) */
  wire: number;
}

/** inventoryTopic: the retained summary of this appliance's integrations upstream (`--inventory`). */
export const inventoryTopic = (remotePrefix: string) => `${remotePrefix}$gatehouse/integrations`;

/** every(ms): true at most once per `ms` (rate-limited log lines). */
function every(ms: number) {
  let last = Number.NEGATIVE_INFINITY;
  return () => {
    const now = performance.now();
    if (now - last < ms) return false;
    last = now;
    return true;
  };
}

export interface UplinkDeps {
  core: Core;
  log: Logger;
  outbox: Outbox;
  bounds: Bounds;
  backoff: Backoff;
  /** the largest packet an uplink takes from its upstream (`--uplink-max-packet`) */
  maxPacket: number;
  /** the uplink's visible state changed (connected, disconnected, configuration): pages refresh */
  changed(): void;
  /** the retained summary of every integration (`--inventory`) */
  inventory(): string;
}

/**
 * Uplink: one upstream broker (a cluster of nodes). Messages its forward filters match are appended to
 * its part of the outbox as they are published (the durable tap); once on disk they are read in order
 * and sent with the uplink's QoS, at most `inflight` unacknowledged at once, and deleted when the
 * upstream acknowledges them. After a reconnect what was unacknowledged goes again first (DUP set), so
 * delivery is at least once and first arrivals are in order; after a restart the forwarder starts at the
 * head of what is still on disk. Messages its subscriptions bring down are published locally under its
 * local prefix, through the core's bus and permissions, and never go back up.
 */
export class Uplink {
  cfg: UplinkConfig;
  #deps: UplinkDeps;
  #connection: UplinkConnection | undefined;
  #client: MqttClient | undefined;
  #queued: number;
  #queuedBytes: number;
  /** the last id read from disk (or taken from `#ready`) into the send pipeline */
  #cursor = 0;
  /**
   * rows just written, to be sent from memory instead of read back from disk: while `#inMemory`, every row
   * of this uplink on disk after `#cursor` is here, in order (false: the pump reads them from disk).
   */
  #ready: Unacked[] = [];
  /** where `#ready` starts (what was taken before it is compacted away now and then, not shifted per take) */
  #readyHead = 0;
  #readyBytes = 0;
  #inMemory = false;
  #unacked = new Map<number, Unacked>();
  /** what is in flight on the current connection, by packet identifier: their PUBACKs settle them */
  #byMid = new Map<number, Unacked>();
  /** the current connection's PUBLISHes not yet written (one write per pump) */
  #batch: PublishBatch | undefined;
  /**
   * of `#unacked`, how many are sent on the current connection (what the window counts); the rest went
   * unacknowledged with an earlier connection and are sent again first
   */
  #inFlight = 0;
  /** the upstream's Receive Maximum (MQTT 5); else no limit of its own */
  #serverMax = Number.POSITIVE_INFINITY;
  /** the birth and the inventory unacknowledged on this connection: they count against `#serverMax` too */
  #controlInFlight = 0;
  #unackedBytes = 0;
  /** ids dropped by the bounds whose delete is not on disk yet (with the write they go in) */
  #droppedPending = new Map<number, number>();
  /** ids appended and not yet on disk, with their time: the oldest queued before a write lands */
  #unwritten: OutboxRow[] = [];
  #counters: Counters;
  #lastError: string | null = null;
  /**
   * the outbox's trouble, said before any connection's (found from outside: with the disk full during an
   * outage, the status showed the connection's error and the disk's only reached the log); it lasts until
   * the outbox writes again, the uplink next connects (an outbox set aside), or for good (none opened)
   */
  #outboxError: { text: string; until: "written" | "connected" | "never" } | null = null;
  /** `#lastError` is the connection's (cleared by the next CONNACK); else a message's, kept until another */
  #lastErrorOfConnection = false;
  #url: string | null = null;
  #connectedSince: number | null = null;
  #disconnectedSince: number | null = Date.now();
  #pumping = false;
  #pumpScheduled = false;
  #trimScheduled = false;
  #rate = { at: performance.now(), forwarded: 0, perSecond: 0 };
  #inventoryTimer: ReturnType<typeof setTimeout> | undefined;
  #logDrop = every(10_000);
  #logError = every(10_000);
  #logOutbox = every(10_000);
  #logRefusedDown = every(10_000);
  #droppedSinceLog = 0;
  /** who the uplink publishes locally as: only inside its local prefix, under the core's topic rules */
  #downlinkAs: Integration;
  /** PUBACKs heard on the current connection */
  #ackedOnConnection = 0;
  /**
   * the oldest unacknowledged message, sent on connections the upstream then closed with nothing
   * acknowledged, and how many in a row. An MQTT 3.1.1 broker cannot say its largest packet, and one that
   * closes the connection at a message past it holds the queue behind that message (found from outside:
   * 463 reconnects in 40 s, nothing moved, and the status said only that the connection closed). After
   * `stuckAfter` such closes it is said as the uplink's last error (newer news, such as a connection refused,
   * takes its place), until something is acknowledged again; a start (enable, a changed configuration)
   * counts afresh.
   */
  #stuck: { id: number; topic: string; wire: number; closes: number } | undefined;
  /** the last error that `#stuck` said, while it is the last error (cleared when something is acknowledged) */
  #stuckSaid: string | null = null;

  constructor(deps: UplinkDeps, cfg: UplinkConfig, queue: { count: number; bytes: number }, counters?: Counters) {
    this.#deps = deps;
    this.cfg = cfg;
    this.#queued = queue.count;
    this.#queuedBytes = queue.bytes;
    // nothing of it on disk: it is not read for (the file may have no index by uplink: another's rows are read)
    this.#inMemory = queue.count === 0;
    this.#counters = counters ?? { forwarded: 0, dropped: 0, refused: 0, resent: 0, received: 0 };
    this.#rate.forwarded = this.#counters.forwarded;
    this.#downlinkAs = this.#identity(cfg);
  }

  #identity(cfg: UplinkConfig): Integration {
    const now = Date.now();
    return {
      id: -cfg.id,
      username: `uplink:${cfg.name}`,
      type: "mqtt",
      description: "",
      active: true,
      publishAcl: cfg.localPrefix ? [`${cfg.localPrefix}#`] : [],
      subscribeAcl: [],
      denyPublishAcl: [],
      denySubscribeAcl: [],
      createdAt: now,
      updatedAt: now,
      lastLoginAt: null,
      lastLoginClientId: null,
      lastLoginRemote: null,
      revision: 0,
    };
  }

  get id(): number {
    return this.cfg.id;
  }

  get origin(): string {
    return `connector:uplink/${this.cfg.name}`;
  }

  /** matches: does a local publish on `topic` go up this uplink? (see `forwards`) */
  matches(topic: string): boolean {
    return forwards(this.cfg.forward, topic, this.#deps.core.topicSpace);
  }

  /** append: the durable tap's share: the message into this uplink's queue, in publish order. */
  append(m: PublishedMessage, props: string | null): OutboxRow {
    const payload = typeof m.payload === "string" ? Buffer.from(m.payload) : m.payload;
    const row = this.#deps.outbox.append(this.cfg.id, m.topic, payload, m.retain, props);
    this.#queued++;
    this.#queuedBytes += row[6];
    this.#unwritten.push(row);
    if (this.#overBounds()) this.#scheduleTrim();
    return row;
  }

  /** written: rows of this uplink are on disk: they can be sent, or dropped by the bounds. */
  written(rows: OutboxRow[]): void {
    const last = rows[rows.length - 1]![0];
    if (this.#inMemory) this.#keep(rows);
    let i = 0;
    while (i < this.#unwritten.length && this.#unwritten[i]![0] <= last) i++;
    this.#unwritten.splice(0, i);
    // the outbox writes again (room on the disk): its last failure is no longer the news
    if (this.#outboxError?.until === "written") this.#outboxError = null;
    if (this.#overBounds()) this.#scheduleTrim();
    this.#pump();
  }

  /**
   * failed: a write that held rows of this uplink failed (a full disk): they are not queued; said and
   * counted: as refused where the publisher was told no (see `unanswered`), else as dropped.
   */
  failed(rows: OutboxRow[], error: string): void {
    const ids = new Set(rows.map((r) => r[0]));
    this.#unwritten = this.#unwritten.filter((u) => !ids.has(u[0]));
    let lost = 0;
    for (const r of rows) {
      this.#queued--;
      this.#queuedBytes -= r[6];
      if (unanswered.has(r)) lost++;
    }
    this.#counters.dropped += lost;
    this.#counters.refused += rows.length - lost;
    this.#outboxFailed(error, rows.length ? "written" : "never");
  }

  /**
   * notQueued: the outbox could not take `n` messages at all (`error` says why): refused to their publishers
   * (`refused`), or dropped. Said as the outbox's state: for good (set aside, not open), or until this
   * uplink's rows are written again (its writer behind, see outbox.ts `maxBehind`).
   */
  notQueued(error: string, n: number, refused: boolean, until: "written" | "never" = "never"): void {
    if (refused) this.#counters.refused += n;
    else this.#counters.dropped += n;
    this.#outboxFailed(error, until, until === "written" ? "uplink outbox not taking messages" : undefined);
  }

  #outboxFailed(error: string, until: "written" | "never", what = "uplink outbox write failed"): void {
    const said = this.#outboxError;
    if (this.#logOutbox()) this.#deps.log.error(what, { uplink: this.cfg.name, error });
    if (said?.text === error && said.until === until) return; // a flood of them: the status changes once
    this.#outboxError = { text: error, until };
    this.#deps.changed();
  }

  /**
   * keep: rows on disk that the pump has not read go to `#ready` (what a read of the disk would give, without
   * the read). Bounded: past it they stay on disk only, and the pump reads them from there as after an outage.
   */
  #keep(rows: OutboxRow[]): void {
    let tail = this.#ready.length > this.#readyHead ? this.#ready[this.#ready.length - 1]!.id : this.#cursor;
    for (const [id, , at, topic, payload, retain, size, props] of rows) {
      if (id <= tail) continue; // read from disk already (its write landed before this report of it)
      tail = id;
      // shaped as what the pump keeps until the upstream's PUBACK: it takes these as they are
      this.#ready.push({
        id,
        at,
        topic,
        retain: retain === 1,
        props,
        size,
        payload: Buffer.isBuffer(payload)
          ? payload
          : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        sent: false,
        again: false,
        wire: 0,
      });
      this.#readyBytes += size;
    }
    if (this.#ready.length > maxReady || this.#readyBytes > maxReadyBytes) this.#forget();
  }

  /** forget: what waits in `#ready` is read from disk instead (bounds reached, a trim, a purge). */
  #forget(): void {
    this.#ready = [];
    this.#readyHead = 0;
    this.#readyBytes = 0;
    this.#inMemory = false;
  }

  #overBounds(): boolean {
    return this.#queued > this.#deps.bounds.maxMessages || this.#queuedBytes > this.#deps.bounds.maxBytes;
  }

  #scheduleTrim(): void {
    if (this.#trimScheduled) return;
    this.#trimScheduled = true;
    setImmediate(() => {
      this.#trimScheduled = false;
      this.#trim();
    });
  }

  /**
   * trim: past a bound the oldest queued messages that were not sent yet go, down to 99% of it (so one
   * read drops a batch, not one message per publish): never the newest retained message of a topic
   * while anything else can go; counted, and logged at most every 10 s.
   */
  #trim(): void {
    const { maxMessages, maxBytes } = this.#deps.bounds;
    const outbox = this.#deps.outbox;
    // what it drops is chosen on disk, and may be in `#ready`: the pump reads the rest from disk again
    this.#forget();
    let needCount = this.#queued > maxMessages ? this.#queued - Math.floor(maxMessages * 0.99) : 0;
    let needBytes = this.#queuedBytes > maxBytes ? this.#queuedBytes - Math.floor(maxBytes * 0.99) : 0;
    let after = this.#cursor;
    for (const id of this.#droppedPending.keys()) after = Math.max(after, id);
    let anyKind = false;
    const drop: number[] = [];
    while (needCount > 0 || needBytes > 0) {
      const rows = outbox.oldest(this.cfg.id, after, Math.min(10_000, Math.max(needCount, 256)), anyKind);
      if (rows.length === 0) {
        if (anyKind) break; // the rest is not on disk yet: the next write trims again
        anyKind = true;
        continue;
      }
      for (const r of rows) {
        after = r.id;
        if (needCount <= 0 && needBytes <= 0) break;
        drop.push(r.id);
        needCount--;
        needBytes -= r.size;
        this.#queued--;
        this.#queuedBytes -= r.size;
      }
    }
    if (drop.length === 0) return;
    const batch = outbox.pendingBatch;
    for (const id of drop) this.#droppedPending.set(id, batch);
    outbox.remove(drop);
    this.#counters.dropped += drop.length;
    this.#droppedSinceLog += drop.length;
    if (this.#logDrop()) {
      this.#deps.log.warn("uplink queue full: oldest messages dropped", {
        uplink: this.cfg.name,
        dropped: this.#droppedSinceLog,
        queued: this.#queued,
        queuedBytes: this.#queuedBytes,
        maxMessages,
        maxBytes,
      });
      this.#droppedSinceLog = 0;
    }
    this.#deps.changed();
  }

  /**
   * outboxLost: the outbox was set aside while the appliance runs: what it held is not sent from here (it is
   * in the set-aside file), so it is no longer queued and counts as dropped (found from outside: the page and
   * /metrics said "queued 3000" for good); what is in flight settles with its PUBACK.
   */
  outboxLost(): void {
    this.#forget();
    this.#counters.dropped += Math.max(0, this.#queued - this.#unacked.size);
    this.#queued = this.#unacked.size;
    this.#queuedBytes = this.#unackedBytes;
    this.#unwritten = [];
    this.#deps.changed();
  }

  /** outboxSetAside: an unreadable outbox was set aside at start (`why`): said until the uplink connects. */
  outboxSetAside(why: string): void {
    this.#outboxError = { text: why, until: "connected" };
    this.#deps.changed();
  }

  start(): void {
    this.#forgetStuck();
    if (this.#connection || !this.cfg.enabled) return;
    if (this.cfg.secretProblem) {
      this.#lastError = this.cfg.secretProblem;
      return;
    }
    const limits = { backoff: this.#deps.backoff, maxPacket: this.#deps.maxPacket };
    this.#connection = new UplinkConnection(this.cfg, limits, this.#deps.log, {
      connected: (client, url, _session, receiveMaximum, maximumPacketSize) =>
        this.#connected(client, url, receiveMaximum, maximumPacketSize),
      // the uplink writes its PUBLISHes itself (see PublishBatch): their PUBACKs are settled here
      acks: (acks) => {
        for (let k = 0; k < acks.length; k += 2) if (!this.#byMid.has(acks[k]!)) return false;
        for (let k = 0; k < acks.length; k += 2) this.#puback(acks[k]!, acks[k + 1]);
        return true;
      },
      puback: (messageId, reasonCode, reasonString) => this.#puback(messageId, reasonCode, reasonString),
      lost: (reason) => this.#lost(reason),
      error: (message, lasting) => {
        this.#lastError = message;
        this.#lastErrorOfConnection = !lasting;
        if (this.#logError()) this.#deps.log.warn("uplink error", { uplink: this.cfg.name, error: message });
        this.#deps.changed();
      },
    });
    this.#connection.start();
  }

  async stop(): Promise<void> {
    const c = this.#connection;
    this.#connection = undefined;
    if (this.#inventoryTimer) clearTimeout(this.#inventoryTimer);
    this.#inventoryTimer = undefined;
    await c?.stop();
  }

  /** reconfigure: a changed configuration; the connection starts again if anything it uses changed. */
  async reconfigure(cfg: UplinkConfig): Promise<void> {
    const old = this.cfg;
    this.cfg = cfg;
    this.#downlinkAs = this.#identity(cfg);
    const same = (k: keyof UplinkConfig) => JSON.stringify(old[k]) === JSON.stringify(cfg[k]);
    const reconnect = (
      [
        "urls",
        "username",
        "password",
        "ca",
        "clientCert",
        "clientKey",
        "clientId",
        "protocol",
        "remotePrefix",
        "subscribe",
        "localPrefix",
        "enabled",
        "secretProblem",
      ] as const
    ).some((k) => !same(k));
    if (reconnect) {
      await this.stop();
      this.start();
    } else this.#pump(); // a larger window
    if (!cfg.secretProblem && old.secretProblem) this.#lastError = null;
    this.#deps.changed();
  }

  #connected(client: MqttClient, url: string, receiveMaximum?: number, maximumPacketSize?: number): void {
    this.#client = client;
    // MQTT 5 [MQTT-3.3.4-7]: never more unacknowledged QoS 1 PUBLISHes than the upstream's Receive Maximum
    // (HiveMQ says 10 by default and may disconnect past it, 0x93), the birth and the inventory included
    this.#serverMax = receiveMaximum && receiveMaximum > 0 ? receiveMaximum : Number.POSITIVE_INFINITY;
    this.#controlInFlight = 0;
    this.#ackedOnConnection = 0;
    this.#byMid.clear();
    this.#batch = new PublishBatch(
      this.cfg.protocol,
      maximumPacketSize && maximumPacketSize > 0 ? maximumPacketSize : Number.POSITIVE_INFINITY,
    );
    this.#url = url;
    this.#connectedSince = Date.now();
    this.#disconnectedSince = null;
    // what the last connection failed on is over; a message the upstream refused stays the news (found
    // from outside: a reconnect right after refusals left no word of why messages were dropped)
    if (this.#lastErrorOfConnection) this.#lastError = null;
    this.#lastErrorOfConnection = false;
    if (this.#outboxError?.until === "connected") this.#outboxError = null;
    const cfg = this.cfg;
    this.#deps.log.info("uplink connected", { uplink: cfg.name, url });
    this.#deps.core.activity.record("uplink.connected", cfg.name, `node ${url}`, "system");
    this.#controlPublish(client, statusTopic(cfg.remotePrefix), "online");
    // Down: what the upstream sends on our subscriptions is published here before we acknowledge it.
    client.handleMessage = (packet, done) => this.#down(packet, done);
    if (cfg.subscribe.length)
      client.subscribe(
        // MQTT 5: No Local, so what this uplink sends up never comes back on its own subscriptions
        Object.fromEntries(
          cfg.subscribe.map((f) => [f, { qos: 1 as const, ...(cfg.protocol === 5 ? { nl: true } : {}) }]),
        ),
        (err, granted) => {
          const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
          if (err || refused.length) {
            this.#say(`upstream refused the subscription ${err ? err.message : refused.join(", ")}`);
            this.#deps.changed();
          }
        },
      );
    if (cfg.inventory) this.publishInventory(0);
    this.#deps.changed();
    this.#pump();
  }

  #lost(reason: string): void {
    if (!this.#client) return;
    this.#client = undefined;
    this.#byMid.clear();
    this.#batch = undefined;
    this.#url = null;
    this.#connectedSince = null;
    this.#disconnectedSince = Date.now();
    this.#noteStuck();
    // what was in flight goes again first on the next connection, DUP set
    for (const u of this.#unacked.values()) {
      if (u.sent) u.again = true;
      u.sent = false;
    }
    this.#inFlight = 0;
    this.#deps.log.info("uplink disconnected", { uplink: this.cfg.name, reason });
    this.#deps.core.activity.record("uplink.disconnected", this.cfg.name, reason, "system");
    this.#deps.changed();
  }

  /**
   * noteStuck: a connection was lost: did the oldest message go out on it with nothing acknowledged? After
   * `stuckAfter` such closes in a row it is said (see `#stuck`).
   */
  #noteStuck(): void {
    const head = this.#unacked.values().next().value as Unacked | undefined;
    if (!head?.sent || this.#ackedOnConnection > 0) {
      this.#stuck = undefined;
      return;
    }
    if (this.#stuck?.id === head.id) this.#stuck.closes++;
    else this.#stuck = { id: head.id, topic: head.topic, wire: head.wire, closes: 1 };
    const s = this.#stuck;
    if (s.closes < stuckAfter) return;
    if (s.closes === stuckAfter)
      this.#deps.log.warn("uplink queue held by one message", {
        uplink: this.cfg.name,
        topic: head.topic.slice(0, 256),
        packetBytes: s.wire,
        closes: stuckAfter,
      });
    // The upstream does not say which PUBLISH it refused: the oldest, sent first, is what holds the queue
    // (found from outside: one sent after it was the one refused, and the note called the oldest too large)
    this.#stuckSaid = `the upstream closed the connection ${s.closes} times in a row before acknowledging anything; each time the oldest queued message, ${shownName(s.topic)} (a PUBLISH of ${s.wire} bytes), went first, and it and everything behind it wait. It or one sent after it may be more than the upstream takes (an MQTT 3.1.1 broker cannot say its limit): raise the upstream's limit, or remove the uplink to drop its queue`;
    this.#say(this.#stuckSaid);
  }

  /**
   * forgetStuck: no message holds the queue any more (something was acknowledged, the held one left the
   * queue, a start): the count starts over, and what `#noteStuck` said is no longer the last error
   */
  #forgetStuck(): void {
    this.#stuck = undefined;
    if (this.#stuckSaid !== null && this.#lastError === this.#stuckSaid) this.#lastError = null;
    this.#stuckSaid = null;
  }

  /**
   * down: a message from upstream, published locally under the local prefix (the remote prefix, where
   * the topic has it, replaced) as this uplink: `mayPublish` keeps it inside the prefix and away from
   * what no client may publish ($SYS, VRPC announcements); local subscribers get it under their own read
   * permissions. The upstream's PUBACK waits for the local publish; one that cannot ever be delivered
   * is acknowledged and dropped (logged), one the local broker could not take is not (it comes again).
   */
  #down(packet: IPublishPacket, done: (err?: Error) => void): void {
    const cfg = this.cfg;
    const remote = packet.topic;
    // its own birth and inventory, back on a subscription that covers them (MQTT 3.1.1 has no No Local)
    if (remote === statusTopic(cfg.remotePrefix) || remote === inventoryTopic(cfg.remotePrefix)) {
      done();
      return;
    }
    const rest =
      cfg.remotePrefix && remote.startsWith(cfg.remotePrefix) ? remote.slice(cfg.remotePrefix.length) : remote;
    const local = `${cfg.localPrefix}${rest}`;
    // The upstream may lie (found from outside with a hostile broker): only what this uplink subscribed
    // to comes down, and only as a topic a client could publish (no wildcard, not empty), so nothing
    // lands locally that no local client could then clear (a retained `.../#`).
    if (
      !cfg.localPrefix ||
      rest === "" ||
      /[+#]/.test(remote) ||
      !cfg.subscribe.some((filter) => topicMatches(filter, remote)) ||
      !isValidTopicString(local) ||
      !mayPublish(this.#downlinkAs, local, this.#deps.core.topicSpace)
    ) {
      if (this.#logRefusedDown())
        this.#deps.log.warn("uplink message from upstream refused", { uplink: cfg.name, topic: local.slice(0, 256) });
      done();
      return;
    }
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    this.#deps.core.bus
      .publish({ topic: local, payload, retain: packet.retain, qos: packet.qos > 0 ? 1 : 0 }, this.origin)
      .then(
        () => {
          this.#counters.received++;
          done();
        },
        (err) => {
          this.#say(`could not publish ${shownName(local)} locally: ${(err as Error).message}`);
          // not acknowledged: the persistent session upstream delivers it again on the next connection
          this.#client?.end(true);
        },
      );
  }

  /**
   * pump: sends while the window has room: first what an earlier connection left unacknowledged, then
   * the next messages on disk, in id order (one uplink's FIFO).
   */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      // 65 535 packet identifiers, two of them kept for the birth and the inventory
      const window = Math.min(this.cfg.inflight, maxInflight - 2, this.#serverMax - this.#controlInFlight);
      if (window <= 0) return; // the birth or inventory holds the upstream's whole Receive Maximum: after it
      const maxBytes = 4 * 1024 * 1024;
      // what an earlier connection left unacknowledged (looked through only when there is any)
      if (this.#inFlight < this.#unacked.size)
        for (const u of this.#unacked.values()) {
          if (!this.#client || this.#inFlight >= window) return;
          if (!u.sent) this.#send(u);
        }
      // read the disk in batches: once a quarter of the window (at most 16) is free again; what was just
      // written is sent from memory as soon as there is room
      const batch = Math.min(16, Math.ceil(window / 4));
      while (
        this.#client &&
        (window - this.#unacked.size >= (this.#ready.length > this.#readyHead ? 1 : batch) ||
          this.#unacked.size === 0) &&
        (this.#unackedBytes < maxBytes || this.#unacked.size === 0)
      ) {
        const room = Math.min(256, window - this.#unacked.size);
        // at most `maxBytes` unacknowledged (one message however large): found from outside, a backlog of
        // 1 MiB messages went out 256 at a time, read whole from disk for every pump, and never drained
        const bytes = maxBytes - this.#unackedBytes;
        let rows: QueuedMessage[];
        const fromMemory = this.#ready.length > this.#readyHead;
        if (fromMemory) {
          rows = this.#takeReady(room, bytes);
        } else if (this.#inMemory) break;
        else {
          this.#pruneDropped();
          const read = this.#deps.outbox.fetch(this.cfg.id, this.#cursor, room, bytes);
          rows = read.rows;
          // all that is on disk was read: what is written from now on is sent from memory
          if (!read.more) this.#inMemory = true;
          if (rows.length === 0) break;
        }
        for (const r of rows) {
          this.#cursor = r.id;
          if (this.#droppedPending.has(r.id)) continue;
          const u: Unacked = fromMemory
            ? (r as Unacked)
            : {
                id: r.id,
                at: r.at,
                topic: r.topic,
                retain: r.retain,
                props: r.props,
                size: r.size,
                payload: r.payload,
                sent: false,
                again: false,
                wire: 0,
              };
          this.#unacked.set(r.id, u);
          this.#unackedBytes += r.size;
          this.#send(u);
          if (!this.#client) break;
        }
      }
    } finally {
      this.#pumping = false;
      this.#flush();
    }
  }

  /** flush: what this pump encoded, to the socket as one chunk. */
  #flush(): void {
    const chunk = this.#batch?.take();
    // a socket that is going: the close that follows makes everything in flight go again
    if (chunk && this.#client?.stream.writable) this.#client.stream.write(chunk);
  }

  /** say: a message's trouble (a refusal, the outbox, the downlink) as the last error, kept across reconnects. */
  #say(error: string): void {
    this.#lastError = error;
    this.#lastErrorOfConnection = false;
  }

  /** puback: the upstream's acknowledgement of a PUBLISH of the current connection. */
  #puback(mid: number, reasonCode: number | undefined, reasonString?: string): void {
    const u = this.#byMid.get(mid);
    if (!u) return; // not ours (the birth, the inventory: mqtt.js' own) or a stray
    this.#byMid.delete(mid);
    this.#ackedOnConnection++;
    if (this.#stuck) this.#forgetStuck();
    this.#client?.options.messageIdProvider?.deallocate(mid);
    // MQTT 5: a reason code of 0x80 or more is a refusal (not authorized, quota, ...); 0x10 is no subscriber
    if (reasonCode !== undefined && reasonCode >= 0x80) {
      const name = ReasonCodes[reasonCode as keyof typeof ReasonCodes] ?? "unknown";
      const why = `reason 0x${reasonCode.toString(16)} ${name}${reasonString ? ` (${String(reasonString).slice(0, 200)})` : ""}`;
      this.#settle(u, "refused", `${why}; dropped, not sent again`);
    } else this.#settle(u, "acked");
  }

  /**
   * takeReady: up to `n` rows from the head of `#ready`, at most `maxBytes` together (at least one); `#ready`
   * is compacted once most of it was taken.
   */
  #takeReady(n: number, maxBytes: number): Unacked[] {
    const head = this.#readyHead;
    let end = head;
    for (let bytes = 0; end < this.#ready.length && end - head < n; end++) {
      bytes += this.#ready[end]!.size;
      if (end > head && bytes > maxBytes) break;
    }
    const rows = this.#ready.slice(head, end);
    for (const r of rows) this.#readyBytes -= r.size;
    this.#readyHead = head + rows.length;
    if (this.#readyHead === this.#ready.length) {
      this.#ready = [];
      this.#readyHead = 0;
    } else if (this.#readyHead >= 4096 && this.#readyHead * 2 >= this.#ready.length) {
      this.#ready = this.#ready.slice(this.#readyHead);
      this.#readyHead = 0;
    }
    return rows;
  }

  /** pruneDropped: drops whose delete is on disk can no longer be read back: forget them. */
  #pruneDropped(): void {
    if (this.#droppedPending.size === 0) return;
    const written = this.#deps.outbox.lastWritten;
    for (const [id, batch] of this.#droppedPending)
      if (batch <= written || id <= this.#cursor) this.#droppedPending.delete(id);
  }

  #send(u: Unacked): void {
    const client = this.#client!;
    const cfg = this.cfg;
    const payload = u.payload ?? this.#deps.outbox.payload(u.id);
    u.payload = undefined; // read again from disk if it must go again: what waits for its PUBACK holds no payload
    if (!payload) {
      this.#settle(u, "gone");
      return;
    }
    const stored = propsOf(u.props);
    let properties = cfg.protocol === 5 ? stored : undefined;
    const expiry = stored?.messageExpiryInterval;
    if (typeof expiry === "number") {
      // MQTT 5 §3.3.2.3.3: the time it waited here counts; an expired message is not sent, whatever the
      // upstream speaks (found from outside: a 3.1.1 uplink sent what had expired while it waited)
      const left = expiry - Math.floor((Date.now() - u.at) / 1000);
      if (left <= 0) {
        this.#settle(u, "expired");
        return;
      }
      if (properties) properties = { ...properties, messageExpiryInterval: left };
    }
    const qos = cfg.qos > 0 ? 1 : 0;
    let mid = 0;
    if (qos) {
      // never null within the window (two identifiers are kept for the birth and the inventory); if it is,
      // the message waits for the next pump
      const next = client.options.messageIdProvider?.allocate();
      if (typeof next !== "number") {
        u.payload = payload;
        return;
      }
      mid = next;
    }
    const dup = u.again && qos > 0;
    try {
      u.wire = this.#batch!.add({
        topic: `${cfg.remotePrefix}${u.topic}`,
        payload,
        qos,
        retain: u.retain,
        dup,
        id: mid,
        properties,
      });
    } catch (err) {
      if (mid) client.options.messageIdProvider?.deallocate(mid);
      if (err instanceof PacketTooLarge) {
        this.#settle(u, "unsendable", (err as Error).message);
        return;
      }
      // properties the encoder refuses (none that the local broker took should be): dropped, counted, said
      this.#settle(u, "unsendable", `its MQTT 5 properties could not be encoded (${(err as Error).message})`);
      return;
    }
    if (u.again) this.#counters.resent++;
    u.sent = true;
    this.#inFlight++;
    if (!qos) {
      this.#settle(u, "acked"); // QoS 0: forwarded once written
      return;
    }
    this.#byMid.set(mid, u);
  }

  /** settle: a message leaves the queue: acknowledged upstream, refused by it, expired or gone. */
  #settle(u: Unacked, how: "acked" | "refused" | "unsendable" | "expired" | "gone", why?: string): void {
    if (this.#unacked.get(u.id) !== u) return;
    this.#unacked.delete(u.id);
    // the message that held the queue is gone (expired, dropped, refused): the note no longer says anything
    // true (found from outside: an expired head left "it and everything behind it wait" over an empty queue)
    if (this.#stuck?.id === u.id) this.#forgetStuck();
    if (u.sent) this.#inFlight--;
    this.#unackedBytes -= u.size;
    this.#queued--;
    this.#queuedBytes -= u.size;
    if (how === "acked") this.#counters.forwarded++;
    else {
      this.#counters.dropped++;
      if (how === "refused" || how === "unsendable") {
        this.#say(`${how === "refused" ? "upstream refused" : "could not send"} ${shownName(u.topic)}: ${why}`);
        if (this.#logError())
          this.#deps.log.warn(`uplink message ${how === "refused" ? "refused upstream" : "could not be sent"}`, {
            uplink: this.cfg.name,
            topic: u.topic,
            why,
          });
      }
    }
    if (how !== "gone") this.#deps.outbox.removeOne(u.id);
    // acknowledgements come in bursts: one read of the queue for all of them
    this.#schedulePump();
  }

  /**
   * controlPublish: the birth or the inventory (retained, QoS 1), counted against the upstream's Receive
   * Maximum until acknowledged; false when there is no room for it now.
   */
  #controlPublish(client: MqttClient, topic: string, payload: string): boolean {
    if (this.#inFlight + this.#controlInFlight >= this.#serverMax) return false;
    this.#controlInFlight++;
    client.publish(topic, payload, { qos: 1, retain: true }, () => {
      if (this.#client !== client) return; // a later connection counts afresh
      this.#controlInFlight--;
      this.#schedulePump();
    });
    return true;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** publishInventory: the retained summary of integrations, after `delayMs` (changes come in bursts). */
  publishInventory(delayMs = 2000): void {
    if (!this.cfg.inventory || this.#inventoryTimer) return;
    this.#inventoryTimer = setTimeout(() => {
      this.#inventoryTimer = undefined;
      const client = this.#client;
      // no room under the upstream's Receive Maximum: again a moment later (the data has its share)
      if (client && !this.#controlPublish(client, inventoryTopic(this.cfg.remotePrefix), this.#deps.inventory()))
        this.publishInventory(200);
    }, delayMs);
  }

  /** purge: the uplink is removed: its queue goes. */
  purge(): void {
    this.#deps.outbox.purge(this.cfg.id);
    this.#forget();
    this.#queued = 0;
    this.#queuedBytes = 0;
    this.#unacked.clear();
    this.#byMid.clear();
    this.#inFlight = 0;
  }

  status(): UplinkStatus {
    const now = Date.now();
    const first = this.#unacked.values().next().value as Unacked | undefined;
    const oldestAt =
      this.#queued === 0
        ? undefined
        : (first?.at ?? this.#deps.outbox.oldestAt(this.cfg.id, this.#cursor + 1) ?? this.#unwritten[0]?.[2]);
    return {
      name: this.cfg.name,
      enabled: this.cfg.enabled,
      connected: this.#client !== undefined,
      url: this.#url,
      connectedSince: this.#connectedSince,
      disconnectedSince: this.cfg.enabled ? this.#disconnectedSince : null,
      lastError: this.#outboxError?.text ?? this.#lastError,
      queued: this.#queued,
      queuedBytes: this.#queuedBytes,
      oldestQueuedAgeS: oldestAt === undefined ? 0 : Math.max(0, Math.round((now - oldestAt) / 1000)),
      ...this.#counters,
      forwardedPerSecond: this.#rate.perSecond,
      at: now,
    };
  }

  /** tick: once a second: the forwarding rate. */
  tick(): void {
    const now = performance.now();
    const dt = (now - this.#rate.at) / 1000;
    if (dt <= 0) return;
    this.#rate.perSecond = Math.round((this.#counters.forwarded - this.#rate.forwarded) / dt);
    this.#rate.forwarded = this.#counters.forwarded;
    this.#rate.at = now;
  }
}
