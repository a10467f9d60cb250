import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type DurableTap, isFromConnector, type PublishedMessage } from "../../core/bus.ts";
import type { Core } from "../../core/index.ts";
import { integrationStateEvents } from "../../core/events.ts";
import { statusOf } from "../../core/types.ts";
import type { Logger } from "../../lib/logger.ts";
import type { Backoff } from "./connection.ts";
import { Outbox, type OutboxOpened, outboxFileName, outboxRefusal, setAside } from "./outbox.ts";
import { type OutboxRow, unreadable } from "./outbox-protocol.ts";
import { noteSetAside } from "./status-file.ts";
import { type UplinkConfig, UplinkStore } from "./store.ts";
import { type Bounds, forwards, propsText, unanswered, Uplink, type UplinkDeps, type UplinkStatus } from "./uplink.ts";

export interface UplinkOptions {
  bounds: Bounds;
  backoff: Backoff;
  /** the largest packet an uplink takes from its upstream */
  maxPacket: number;
}

/** how many messages published before the uplinks started are held in memory for them, at most */
const maxEarly = 100_000;

/**
 * UplinkManager: every uplink of the admin database, running. It follows the table (the page and the API
 * call `sync` after a change; the CLI's changes arrive through the core's watch of the database within
 * half a second), owns the outbox, and is the durable tap on the core's bus: a message an enabled uplink
 * forwards is in the outbox before its publisher hears yes.
 *
 * The tap is there from `create` on (before the listeners start): what devices publish while the rest
 * of the appliance starts is held in memory (bounded) and taken into the outbox as soon as it is open, and
 * those publishers are answered then. After `stop` began a matching QoS 1 message is not acknowledged
 * at all: its device sends it again to the next run.
 */
export class UplinkManager {
  readonly store: UplinkStore;
  #core: Core;
  #log: Logger;
  #dataDir: string;
  #opts: UplinkOptions;
  #version: string;
  #outbox: Outbox | undefined;
  #uplinks = new Map<number, Uplink>();
  /** the enabled uplinks, in id order: what the tap asks per message */
  #active: Uplink[] = [];
  /** configurations known before start (to hold only what an enabled uplink would take) */
  #early:
    | {
        configs: UplinkConfig[];
        held: {
          m: PublishedMessage;
          origin: string;
          answered: boolean;
          release: () => void;
          refuse: (e: Error) => void;
        }[];
      }
    | undefined;
  #state: "created" | "started" | "stopping" = "created";
  #offs: (() => void)[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #syncing: Promise<void> = Promise.resolve();
  #lastStatus = new Map<number, string>();
  #changedTimer: ReturnType<typeof setTimeout> | undefined;
  #outboxProblem: string | undefined;
  /**
   * with no outbox (it could not be opened): the enabled uplinks' configurations, and what each would have
   * taken: refused to its publisher (a QoS 1 uplink, a publisher that waits), or else counted as dropped
   * (found from outside: the README said so, and the count stayed 0)
   */
  #idle: { configs: UplinkConfig[]; dropped: Map<number, number>; refused: Map<number, number> } = {
    configs: [],
    dropped: new Map(),
    refused: new Map(),
  };

  constructor(deps: { core: Core; log: Logger; dataDir: string; version: string }, opts: UplinkOptions) {
    this.#core = deps.core;
    this.#log = deps.log;
    this.#dataDir = deps.dataDir;
    this.#version = deps.version;
    this.#opts = opts;
    this.store = new UplinkStore(deps.core.db, deps.dataDir, deps.core.activity);
    const configs = this.store.configs();
    this.#early = { configs: configs.filter((c) => c.enabled), held: [] };
    // the tap stays after stop (the listeners stop after the connectors): it then refuses (see `#tap`)
    this.#core.bus.addTap(this.#tap);
    // Prometheus: one series per uplink and figure (the page and `gatehouse uplinks status` show the same)
    const series = (name: string, help: string, pick: (s: UplinkStatus) => number, type?: "counter") =>
      this.#offs.push(
        this.#core.metrics.gauge({
          name,
          help,
          type,
          read: () => this.statuses().map((s) => [{ uplink: s.name }, pick(s)]),
        }),
      );
    series("gatehouse_uplink_connected", "1 while the uplink is connected upstream", (s) => (s.connected ? 1 : 0));
    series("gatehouse_uplink_queued_messages", "Messages in the uplink's outbox", (s) => s.queued);
    series("gatehouse_uplink_queued_bytes", "Bytes (topics and payloads) in the uplink's outbox", (s) => s.queuedBytes);
    series("gatehouse_uplink_oldest_queued_age_seconds", "Age of the oldest queued message", (s) => s.oldestQueuedAgeS);
    series("gatehouse_uplink_forwarded_total", "Messages acknowledged upstream", (s) => s.forwarded, "counter");
    series(
      "gatehouse_uplink_dropped_total",
      "Messages dropped (queue bounds, refused upstream, expired; QoS 0 ones the outbox could not write)",
      (s) => s.dropped,
      "counter",
    );
    series(
      "gatehouse_uplink_refused_total",
      "Messages the outbox could not queue (a full disk), refused to their publishers (they send them again)",
      (s) => s.refused,
      "counter",
    );
    series("gatehouse_uplink_resent_total", "Messages sent again after a reconnect", (s) => s.resent, "counter");
    series("gatehouse_uplink_received_total", "Messages from upstream published locally", (s) => s.received, "counter");
  }

  /** the durable tap (see the class comment) */
  #tap: DurableTap = (m, origin, answered) => {
    if (isFromConnector(origin)) return undefined; // what came down never goes back up
    if (this.#state === "created") return this.#hold(m, origin, answered);
    if (this.#state === "stopping") {
      // The outbox is closing or closed, and the listeners stop after the connectors: a message a QoS 1
      // uplink would take is not acknowledged at all (found from outside: the tap was removed at stop, and
      // what came in until the listeners closed was acknowledged and in no outbox). MQTT: no PUBACK, its
      // device sends it again to the next run; HTTP, OPC UA: refused (503, BadResourceUnavailable).
      const takes =
        this.#active.some((u) => u.cfg.qos === 1 && u.matches(m.topic)) || this.#qos1Takes(this.#idle.configs, m.topic);
      if (!takes || !answered) return undefined;
      if (origin === "mqtt") return new Promise<void>(() => {});
      return Promise.reject(outboxRefusal("the appliance is stopping; try again"));
    }
    const outbox = this.#outbox;
    if (!outbox) {
      const taking = this.#idle.configs.filter((c) => forwards(c.forward, m.topic, this.#core.topicSpace));
      const refused = answered && taking.some((c) => c.qos === 1);
      const count = refused ? this.#idle.refused : this.#idle.dropped;
      for (const c of taking) count.set(c.id, (count.get(c.id) ?? 0) + 1);
      if (refused) {
        this.changed();
        const why = this.#outboxProblem ?? "the outbox is not open";
        return Promise.reject(outboxRefusal(why));
      }
      return undefined;
    }
    let wait = false;
    let props: string | null | undefined;
    let row: OutboxRow | undefined;
    let more: OutboxRow[] | undefined;
    let unqueued: Uplink[] | undefined;
    // why the outbox cannot take it (set aside, or its writer behind): asked once, when an uplink takes it
    let notTaking: string | undefined | null = null;
    for (const u of this.#active) {
      if (!u.matches(m.topic)) continue;
      if (u.cfg.qos === 1) wait = true;
      if (notTaking === null) notTaking = outbox.broken ?? outbox.behind();
      if (notTaking) {
        (unqueued ??= []).push(u);
        continue;
      }
      props ??= propsText(m.properties);
      const r = u.append(m, props);
      if (row) (more ??= []).push(r);
      else row = r;
    }
    // A QoS 1 uplink holds the message before its publisher hears yes; if it cannot (the outbox set aside,
    // its write failed on a full disk), the publisher hears no and sends it again. A message nobody waits
    // for (MQTT QoS 0) or that only QoS 0 uplinks take is counted as dropped if it cannot be queued.
    const refused = wait && answered;
    if (!refused && row) {
      unanswered.add(row);
      for (const r of more ?? []) unanswered.add(r);
    }
    if (unqueued) {
      // set aside: for good; behind: until the uplink's rows are written again
      const why = notTaking!;
      const forGood = outbox.broken !== undefined;
      for (const u of unqueued) u.notQueued(why, 1, refused, forGood ? "never" : "written");
      if (refused) return Promise.reject(outboxRefusal(why, !forGood));
    }
    return refused ? outbox.durable() : undefined;
  };

  /**
   * hold: before start: a message an enabled uplink will take waits in memory (bounded) for the outbox. Past
   * the bound, one whose publisher waits is refused (it sends it again), as on a full disk.
   */
  #hold(m: PublishedMessage, origin: string, answered: boolean): Promise<void> | undefined {
    const early = this.#early;
    if (!early) return undefined;
    if (!this.#qos1Takes(early.configs, m.topic)) return undefined;
    if (early.held.length >= maxEarly)
      return answered ? Promise.reject(outboxRefusal("the appliance is starting; try again", true)) : undefined;
    const wait = new Promise<void>((release, refuse) => early.held.push({ m, origin, answered, release, refuse }));
    return answered ? wait : undefined;
  }

  /** qos1Takes: does one of these (enabled) QoS 1 uplinks forward `topic`? */
  #qos1Takes(configs: UplinkConfig[], topic: string): boolean {
    return configs.some((c) => c.qos === 1 && forwards(c.forward, topic, this.#core.topicSpace));
  }

  #uplinkDeps(): UplinkDeps {
    return {
      core: this.#core,
      log: this.#log,
      outbox: this.#outbox!,
      bounds: this.#opts.bounds,
      backoff: this.#opts.backoff,
      maxPacket: this.#opts.maxPacket,
      changed: () => this.changed(),
      inventory: () => this.#inventory(),
    };
  }

  async start(): Promise<void> {
    await this.sync();
    this.#state = "started";
    // what was published while the appliance started goes in now, in order, and its publishers are answered
    const held = this.#early?.held ?? [];
    this.#early = undefined;
    for (const h of held) {
      const wait = this.#tap(h.m, h.origin, h.answered);
      if (wait) wait.then(h.release, h.refuse);
      else h.release();
    }
    this.#offs.push(this.#core.followExternal(() => void this.sync()));
    const republish = () => {
      for (const u of this.#active) u.publishInventory();
    };
    for (const name of integrationStateEvents) this.#offs.push(this.#core.events.on(name, republish));
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#timer.unref?.();
  }

  /** sync: brings the running uplinks in line with the table (serialised: one sync at a time). */
  sync(): Promise<void> {
    this.#syncing = this.#syncing.then(
      () => this.#sync(),
      () => this.#sync(),
    );
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    if (this.#state === "stopping") return;
    const configs = this.store.configs();
    // an outbox that could not be opened (a link planted at its name, an unreadable file) is tried again
    // at the next change of the uplinks, once someone has seen its error and acted
    if (!this.#outbox && (configs.length > 0 || existsSync(join(this.#dataDir, outboxFileName))))
      await this.#openOutbox(configs);
    const outbox = this.#outbox;
    if (!outbox) {
      this.#active = [];
      this.#idle.configs = configs.filter((c) => c.enabled);
      return;
    }
    this.#idle.configs = [];
    const seen = new Set<number>();
    for (const c of configs) {
      seen.add(c.id);
      const u = this.#uplinks.get(c.id);
      if (!u) {
        outbox.own(c.id, c.createdAt);
        const fresh = new Uplink(this.#uplinkDeps(), c, this.#queueOf(c.id), this.#countersOf(c.id));
        this.#uplinks.set(c.id, fresh);
        if (this.#setAsideNews) fresh.outboxSetAside(this.#setAsideNews);
        fresh.start();
      } else if (u.cfg.updatedAt !== c.updatedAt || JSON.stringify(u.cfg) !== JSON.stringify(c)) await u.reconfigure(c);
    }
    this.#setAsideNews = undefined; // the uplinks there were when it happened said it; later ones have no part in it
    for (const [id, u] of this.#uplinks) {
      if (seen.has(id)) continue;
      this.#uplinks.delete(id);
      this.#lastStatus.delete(id);
      await u.stop();
      const { queued } = u.status();
      u.purge();
      // how many acknowledged messages went with it (found from outside: the line did not say)
      this.#log.info("uplink removed: its queue is deleted", { uplink: u.cfg.name, queued });
    }
    this.#active = [...this.#uplinks.values()].filter((u) => u.cfg.enabled).sort((a, b) => a.id - b.id);
    this.changed();
  }

  #opened: Awaited<ReturnType<typeof Outbox.open>> | undefined;

  /**
   * openOrSetAside: the outbox; one SQLite says is damaged or not a database (a power cut on a bad card, a
   * file from elsewhere) is set aside and a new one made, said in the log, the activity log and as each
   * uplink's last error. Found from outside: with a damaged outbox every uplink stood still while its
   * devices' messages were acknowledged, and nothing said how to get going again.
   */
  async #openOrSetAside(): Promise<OutboxOpened> {
    try {
      return await Outbox.open(this.#dataDir);
    } catch (err) {
      if (!unreadable(err)) throw err;
      const aside = setAside(this.#dataDir);
      const why = `the outbox was unreadable (${(err as Error).message}): set aside as ${aside} in the data dir, its messages are not sent; a new one is in its place`;
      this.#log.error("uplink outbox unreadable: set aside, a new one made", { aside, err });
      this.#core.activity.record("uplink.outbox-set-aside", aside, (err as Error).message, "system");
      this.#setAsideNews = why;
      return await Outbox.open(this.#dataDir);
    }
  }

  /** what setting an unreadable outbox aside left to say: each uplink's last error until it has news of its own */
  #setAsideNews: string | undefined;

  async #openOutbox(configs: UplinkConfig[]): Promise<void> {
    try {
      this.#opened = await this.#openOrSetAside();
      this.#outboxProblem = undefined;
    } catch (err) {
      this.#outboxProblem = `the outbox could not be opened: ${(err as Error).message}`;
      this.#log.error("uplink outbox could not be opened; uplinks forward nothing", { err });
      return;
    }
    const { outbox, stats, owners, removed } = this.#opened;
    this.#outbox = outbox;
    if (removed.length)
      this.#log.warn("uplink outbox held what Gatehouse does not make: removed (its rows are kept)", {
        removed: removed.join(", "),
      });
    // damaged while it runs: set aside now (the writer and reader keep the renamed file until they close),
    // so the next start makes a new one whatever part of the file was hit
    outbox.onUnreadable = (err) => {
      try {
        const aside = setAside(this.#dataDir);
        this.#log.error("uplink outbox unreadable: set aside; uplinks forward nothing until the next start", {
          aside,
          err,
        });
        this.#core.activity.record("uplink.outbox-set-aside", aside, err.message, "system");
        noteSetAside(this.#dataDir, aside, err.message); // the CLI's status went with the file
      } catch (e) {
        this.#log.error("uplink outbox unreadable and could not be set aside", { err: e });
      }
      // each uplink says it at once, not only when its next message is dropped
      for (const u of this.#uplinks.values()) {
        u.notQueued(outbox.broken ?? err.message, 0, false);
        u.outboxLost();
      }
      this.changed();
    };
    outbox.onWritten = (rows) => this.#routeRows(rows, (u, mine) => u.written(mine));
    outbox.onFailed = (rows, error) => this.#routeRows(rows, (u, mine) => u.failed(mine, error));
    // Rows of an uplink that no longer exists, or of another uplink that had its id (a restored admin
    // database), are not sent anywhere: they go.
    const byId = new Map(configs.map((c) => [c.id, c]));
    for (const uplink of new Set([...stats.keys(), ...owners.keys()])) {
      const c = byId.get(uplink);
      if (c && owners.get(uplink) === c.createdAt) continue;
      if (c && !owners.has(uplink)) continue; // made before it had an owner row: its own
      outbox.purge(uplink);
      this.#log.warn("uplink queue of a removed uplink deleted", {
        uplinkId: uplink,
        messages: stats.get(uplink)?.count ?? 0,
      });
      stats.delete(uplink);
    }
    const queued = [...stats.values()].reduce((n, s) => n + s.count, 0);
    if (queued) this.#log.info("uplink outbox opened", { queued });
  }

  #queueOf(id: number) {
    const s = this.#opened?.stats.get(id);
    return { count: s?.count ?? 0, bytes: s?.bytes ?? 0 };
  }

  #countersOf(id: number) {
    const json = this.#opened?.status.get(id);
    if (!json) return undefined;
    try {
      const s = JSON.parse(json) as Partial<UplinkStatus>;
      const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
      return {
        forwarded: n(s.forwarded),
        dropped: n(s.dropped),
        refused: n(s.refused),
        resent: n(s.resent),
        received: n(s.received),
      };
    } catch {
      return undefined;
    }
  }

  #routeRows(rows: OutboxRow[], to: (u: Uplink, rows: OutboxRow[]) => void): void {
    if (rows.length === 0) return;
    if (this.#uplinks.size === 1) {
      const [u] = this.#uplinks.values();
      to(
        u!,
        rows.filter((r) => r[1] === u!.id),
      );
      return;
    }
    const by = new Map<number, OutboxRow[]>();
    for (const r of rows) {
      let list = by.get(r[1]);
      if (!list) by.set(r[1], (list = []));
      list.push(r);
    }
    for (const [id, mine] of by) {
      const u = this.#uplinks.get(id);
      if (u) to(u, mine);
    }
  }

  /** changed: open pages refresh (at most every 300 ms, through the core's event stream). */
  changed(): void {
    if (this.#changedTimer) return;
    this.#changedTimer = setTimeout(() => {
      this.#changedTimer = undefined;
      this.#core.events.emit("connector.changed", { connector: "uplink" });
    }, 300);
    this.#changedTimer.unref?.();
  }

  /** tick: once a second: rates, the status the CLI reads, a page refresh when something moved. */
  #tick(): void {
    let moved = false;
    for (const u of this.#uplinks.values()) {
      u.tick();
      const s = u.status();
      const { at: _, ...shown } = s;
      const text = JSON.stringify(shown);
      if (this.#lastStatus.get(u.id) !== text) {
        moved = true;
        this.#lastStatus.set(u.id, text);
      }
      // with this process's pid: `uplinks status` tells a live appliance's status from one a killed one left
      this.#outbox?.setStatus(u.id, JSON.stringify({ ...s, pid: process.pid }));
    }
    if (moved) this.changed();
  }

  statuses(): UplinkStatus[] {
    const running = [...this.#uplinks.values()].map((u) => u.status());
    if (this.#outbox || !this.#outboxProblem) return running.sort((a, b) => a.name.localeCompare(b.name));
    // no outbox: no uplink runs; each is still shown, with the reason
    return this.store.list().map((u) => this.#idleStatus(u));
  }

  status(name: string): UplinkStatus | undefined {
    for (const u of this.#uplinks.values()) if (u.cfg.name === name) return u.status();
    if (this.#outbox || !this.#outboxProblem) return undefined;
    const u = this.store.list().find((v) => v.name === name);
    return u ? this.#idleStatus(u) : undefined;
  }

  /** idleStatus: an uplink that cannot run because the outbox could not be opened: disconnected, saying why */
  #idleStatus({ id, name, enabled }: { id: number; name: string; enabled: boolean }): UplinkStatus {
    return {
      name,
      enabled,
      connected: false,
      url: null,
      connectedSince: null,
      disconnectedSince: null,
      lastError: this.#outboxProblem ?? null,
      queued: 0,
      queuedBytes: 0,
      oldestQueuedAgeS: 0,
      forwarded: 0,
      forwardedPerSecond: 0,
      dropped: this.#idle.dropped.get(id) ?? 0,
      refused: this.#idle.refused.get(id) ?? 0,
      resent: 0,
      received: 0,
      at: Date.now(),
    };
  }

  /** outboxProblem: why nothing is queued, if the outbox cannot be used */
  get outboxProblem(): string | undefined {
    return this.#outbox?.broken ?? this.#outboxProblem;
  }

  /** inventory: every integration (username, type, active, online, last login); never a password or hash. */
  #inventory(): string {
    const { credentials, sessions } = this.#core;
    const online = sessions.onlineIds();
    const integrations = credentials.ids().map((id) => {
      const i = credentials.peek(id)!;
      return {
        username: i.username,
        type: i.type,
        active: i.active,
        online: online.has(i.id),
        status: statusOf(i.active, online.has(i.id)),
        lastLogin: i.lastLoginAt === null ? null : new Date(i.lastLoginAt).toISOString(),
      };
    });
    return JSON.stringify({
      appliance: hostname(),
      version: this.#version,
      at: new Date().toISOString(),
      integrations,
    });
  }

  async stop(): Promise<void> {
    if (this.#state === "stopping") return;
    this.#state = "stopping";
    // Never started: what was held is not acknowledged (its devices send it again to the next run).
    this.#early = undefined;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#changedTimer) clearTimeout(this.#changedTimer);
    for (const off of this.#offs.splice(0)) off();
    await this.#syncing.catch(() => undefined);
    await Promise.all([...this.#uplinks.values()].map((u) => u.stop()));
    for (const u of this.#uplinks.values()) this.#outbox?.setStatus(u.id, JSON.stringify(u.status()));
    await this.#outbox?.close();
  }
}
