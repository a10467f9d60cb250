import { dataVersion, type Db } from "../db/client.ts";
import { type Logger, steadyFailure } from "../lib/logger.ts";
import { Slot } from "../lib/slot.ts";
import { ActivityLog, actAs } from "./activity.ts";
import { AnnouncementRefusals } from "./announcements.ts";
import { AdminStore } from "./admins.ts";
import { BanList } from "./bans.ts";
import { Metrics } from "./metrics.ts";
import { Onboarding, type RequestTypeOf } from "./onboarding.ts";
import { TopicBus } from "./bus.ts";
import type { TopicSpace } from "./permissions.ts";
import { CredentialStore, type AcceptsTable, type HashCost } from "./credentials.ts";
import { statusOf, type IntegrationType, type Traffic } from "./types.ts";
import { EventBus } from "./events.ts";
import { ExternalSync } from "./external-sync.ts";
import { LoginLog } from "./login-log.ts";
import { kickReasons, SessionRegistry } from "./sessions.ts";
import { CoarseClock, newTraffic } from "./traffic.ts";

export interface CoreOptions {
  hashCost?: HashCost;
  /** which integration types each listener admits besides its own (from the listener registry) */
  accepts?: AcceptsTable;
  /** which type an unknown login becomes as an onboarding request (from the listener registry) */
  requestTypeOf?: RequestTypeOf;
  sessionTtlMs?: number;
  /** how often the database is checked for writes by another process (the CLI) */
  watchIntervalMs?: number;
  /** how often last-login times are written */
  flushIntervalMs?: number;
  /** /metrics has a traffic series per integration (username label, the busiest `perIntegrationSeries`) */
  metricsPerIntegration?: boolean;
  /** device password checks waiting at most (default `deviceMaxQueued`, 1 024; tests use fewer) */
  maxQueuedLogins?: number;
}

export type Core = ReturnType<typeof createCore>;

/**
 * createCore: the protocol-free heart. Wires the rule that deactivating, deleting or changing the
 * password of an integration drops its live sessions, wherever the change came from (page, API,
 * or another process writing the database file).
 */
export function createCore(db: Db, log: Logger, opts: CoreOptions = {}) {
  const events = new EventBus((event, err) => log.error("event handler failed", { event, err }));
  const activity = new ActivityLog(db);
  const credentials: CredentialStore = new CredentialStore(db, events, {
    hashCost: opts.hashCost,
    accepts: opts.accepts,
    maxQueuedLogins: opts.maxQueuedLogins,
    fresh: (): false | Promise<boolean> => external.fresh(),
    banned: (username, meta) => bans.match(username, meta),
    onUnknown: (type, username, password, meta) => {
      if (!onboarding.takes(type, username, password, meta)) return false;
      onboarding
        .consider(type, username, password, meta)
        .catch((err) => log.error("onboarding request failed", { err }));
      return true;
    },
    onUnusableHash: (username, problem) =>
      log.warn("login refused: the stored password hash cannot be checked at a bounded cost; set a new password", {
        username,
        problem,
      }),
  });
  const onboarding = new Onboarding(db, credentials, events, activity, log.child({ part: "onboarding" }), {
    requestTypeOf: opts.requestTypeOf,
  });
  activity.follow(events);
  // a message's time for the traffic counters, read as a field (traffic.ts says why)
  const clock = new CoarseClock();
  const sessions = new SessionRegistry(events, (id) => credentials.peek(id), clock);
  const bans: BanList = new BanList(db, activity, sessions);
  const timers: ReturnType<typeof setInterval>[] = [clock.start()];
  /** writeBehind: what the flush timer writes, each job's failures logged as they start and end */
  const writeBehind = (
    [
      ["last-login flush", () => credentials.flushLastLogins()],
      ["ban sweep", () => bans.sweep()],
      ["onboarding flush", () => onboarding.flush()],
      ["activity log flush", () => activity.flush()],
    ] as const
  ).map(([what, run]) => ({ run, failure: steadyFailure(log, what) }));
  const metrics = coreMetrics(credentials, sessions, onboarding, events, timers);
  trafficMetrics(metrics, credentials, sessions, opts.metricsPerIntegration === true);
  metrics.gauge({
    name: "gatehouse_bans",
    help: "Live bans by kind",
    read: () => {
      const counts = { address: 0, clientId: 0, username: 0 };
      for (const b of bans.list()) counts[b.kind]++;
      return Object.entries(counts).map(([kind, n]) => [{ kind }, n]);
    },
  });
  metrics.gauge({
    name: "gatehouse_ban_refusals_total",
    help: "Connects refused by a ban (address: at accept or login; clientId, username: at login), by kind",
    type: "counter",
    read: () => Object.entries(bans.refused).map(([kind, n]) => [{ kind }, n]),
  });
  const admins = new AdminStore(db, {
    hashCost: opts.hashCost,
    sessionTtlMs: opts.sessionTtlMs,
    onAttempt: ({ username, remote, outcome }) => {
      (outcome === "signed-in" ? log.info : log.warn)(
        `admin ${outcome === "signed-in" ? "signed in" : outcome === "failed" ? "sign-in failed" : "sign-in refused: throttled"}`,
        { username, remote },
      );
      activity.record(
        `admin.${outcome}`,
        username,
        `from ${remote}`,
        outcome === "signed-in" ? `admin:${username}` : `address:${remote}`,
      );
    },
  });
  const loginLog = new LoginLog(events);
  /** the VRPC domains every permission decision shields (core/permissions.ts) */
  const topicSpace: TopicSpace = { vrpcDomainOf: (topic) => credentials.vrpcDomainOf(topic) };
  const refusedAnnouncements = new AnnouncementRefusals(events, topicSpace);

  const kick =
    (reason: string) =>
    ({ integration }: { integration: { id: number; username: string } }) => {
      const n = sessions.kickIntegration(integration.id, reason);
      if (n > 0) log.info("sessions dropped", { integration: integration.username, count: n, reason });
    };
  events.on("integration.deactivated", kick(kickReasons.deactivated));
  events.on("integration.deleted", kick(kickReasons.deleted));
  events.on("integration.deleted", ({ integration }) => sessions.forgetTraffic(integration.id));
  events.on("integration.updated", (e) => {
    if (e.passwordChanged) kick(kickReasons.passwordChanged)(e);
    // Subscriptions were granted under the old permissions: reconnecting applies the new ones.
    else if (e.aclChanged) kick(kickReasons.permissionsChanged)(e);
  });
  // An audit trail of every change, whoever made it (page, API, CLI through the database).
  for (const name of [
    "integration.created",
    "integration.deleted",
    "integration.activated",
    "integration.deactivated",
  ] as const) {
    events.on(name, ({ integration: i }) =>
      log.info(name.replace(".", " "), { id: i.id, username: i.username, type: i.type }),
    );
  }
  events.on("integration.updated", ({ integration: i, passwordChanged }) =>
    log.info("integration updated", { id: i.id, username: i.username, passwordChanged }),
  );
  events.on("login.failed", (e) =>
    log.info("login failed", {
      type: e.type,
      username: e.username,
      reason: e.reason,
      clientId: e.meta.clientId,
      remote: e.meta.remote,
    }),
  );
  events.on("session.opened", ({ session: s }) =>
    log.debug("session opened", { type: s.type, username: s.username, clientId: s.clientId, remote: s.remote }),
  );

  /** what parts reload when another process wrote the database (a connector's own table) */
  const externalFollowers = new Set<() => void>();
  const external: ExternalSync = new ExternalSync(
    () => dataVersion(db),
    // Attributed to the other process, which records its own activity.
    (): void | Promise<void> =>
      actAs("external", () => {
        const applying = credentials.reload(); // a promise when many rows changed (applied in slices)
        onboarding.reload();
        bans.reload();
        admins.syncExternal();
        for (const follow of externalFollowers) {
          try {
            follow();
          } catch (err) {
            log.error("external change sync failed", { err });
          }
        }
        return applying;
      }),
    (err) => log.error("external change sync failed", { err }),
  );
  /** syncExternalChanges: cheap when nothing changed (one PRAGMA); reconciles when the CLI wrote. */
  const syncExternalChanges = () => external.now();

  return {
    db,
    events,
    credentials,
    sessions,
    /** banned addresses, client ids and usernames, asked at accept and at every login (bans.ts) */
    bans,
    admins,
    loginLog,
    activity,
    onboarding,
    /** Prometheus metrics: the core's own, and what listeners add */
    metrics,
    /** the topic space of the broker, for every listener (see bus.ts) */
    bus: new TopicBus(),
    /** what every call of core/permissions.ts needs besides the integration: the VRPC domains */
    topicSpace,
    /** VRPC announcements the topic rules refused, last per integration (its row, the agents page) */
    refusedAnnouncements,
    /** the TLS certificate in use (for the Settings page), once loaded */
    tlsInfo: new Slot<{ fingerprint: string; source: string; certFile: string }>(),
    syncExternalChanges,
    /**
     * followExternal: `reload` runs whenever another process (the CLI) has committed to the database,
     * within the watch interval (half a second); returns the function that stops it.
     */
    followExternal(reload: () => void): () => void {
      externalFollowers.add(reload);
      return () => externalFollowers.delete(reload);
    },
    /**
     * fresh: before a decision that must see every change another process has committed (a login
     * does this itself): `false` when memory is current, else a promise (see external-sync.ts).
     */
    fresh: () => external.fresh(),
    /** start: background work; stop: flushes what is pending. */
    start() {
      onboarding.start();
      timers.push(
        setInterval(() => {
          try {
            syncExternalChanges();
          } catch (err) {
            log.error("external change sync failed", { err });
          }
        }, opts.watchIntervalMs ?? 500),
        setInterval(() => {
          // each on its own: one that fails (a full disk) does not hold back the others
          for (const job of writeBehind) {
            try {
              job.run();
              job.failure.ok();
            } catch (err) {
              job.failure.failed(err);
            }
          }
        }, opts.flushIntervalMs ?? 5_000),
      );
      for (const t of timers) t.unref?.();
    },
    stop() {
      for (const t of timers.splice(0)) clearInterval(t);
      try {
        credentials.flushLastLogins();
      } catch (err) {
        // a full disk: last-login times are informational (write-behind); the stop goes on and exits clean
        log.error("last-login flush failed at stop; the times since the last flush are lost", {
          err,
          lost: credentials.lastLoginsWaiting,
        });
      }
      onboarding.stop();
      // entries that met a full disk (or a lock) are written now, or said lost (found from outside: they
      // vanished at a stop on a full disk without a word)
      try {
        activity.flush();
      } catch (err) {
        log.error("activity log flush failed at stop", { err });
      }
      if (activity.waiting > 0)
        log.error("activity log entries could not be written before the stop (a full disk?): lost", {
          entries: activity.waiting,
        });
    },
  };
}

/** coreMetrics: integrations, sessions, logins and onboarding, plus the process's own figures. */
function coreMetrics(
  credentials: CredentialStore,
  sessions: SessionRegistry,
  onboarding: Onboarding,
  events: EventBus,
  timers: ReturnType<typeof setInterval>[],
): Metrics {
  const m = new Metrics();
  const logins = m.counter("gatehouse_logins_total", "Logins by protocol and result (ok or the refusal reason)");
  events.on("login.succeeded", (e) => logins.inc({ protocol: e.type, result: "ok" }));
  events.on("login.failed", (e) => logins.inc({ protocol: e.type, result: e.reason }));
  m.gauge({
    name: "gatehouse_integrations",
    help: "Integrations by type and status",
    read: () => {
      const online = sessions.onlineIds();
      const counts = new Map<string, number>();
      for (const id of credentials.ids()) {
        const i = credentials.peek(id)!;
        const key = `${i.type}\0${statusOf(i.active, online.has(i.id))}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return [...counts].map(([k, v]) => {
        const [type, status] = k.split("\0") as [string, string];
        return [{ type, status }, v];
      });
    },
  });
  m.gauge({
    name: "gatehouse_sessions",
    help: "Live sessions by protocol",
    read: () =>
      Object.entries(sessions.onlineCountByType()).map(([type]) => [
        { type },
        sessions.list({ type: type as IntegrationType }).length,
      ]),
  });
  m.gauge({
    name: "gatehouse_password_checks",
    help: "Device password checks: waiting in the line (bounded; refused past it) and running",
    read: () => [
      [{ state: "waiting" }, credentials.hashLine.queued],
      [{ state: "running" }, credentials.hashLine.running],
    ],
  });
  m.gauge({
    name: "gatehouse_onboarding_requests",
    help: "Pending onboarding requests",
    read: () => [[{}, onboarding.status().pending]],
  });
  m.gauge({
    name: "gatehouse_onboarding_open",
    help: "1 while the onboarding window is open",
    read: () => [[{}, onboarding.status().open ? 1 : 0]],
  });
  m.gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory",
    read: () => [[{}, process.memoryUsage().rss]],
  });
  m.gauge({
    name: "process_cpu_seconds_total",
    help: "User and system CPU time",
    type: "counter",
    read: () => [[{}, (process.cpuUsage().user + process.cpuUsage().system) / 1e6]],
  });
  // event-loop lag: how late a 500 ms timer fires (a blocked loop shows here before anywhere else)
  let lag = 0;
  let expected = performance.now() + 500;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(0, now - expected) / 1000;
    expected = now + 500;
  }, 500);
  timer.unref?.();
  timers.push(timer); // cleared by the core's stop
  m.gauge({
    name: "gatehouse_event_loop_lag_seconds",
    help: "How late the last 500 ms timer fired",
    read: () => [[{}, lag]],
  });
  m.gauge({
    name: "gatehouse_db_write_seconds",
    help: "Duration of the last write-behind flush",
    read: () => [[{}, credentials.lastFlushSeconds]],
  });
  return m;
}

/** perIntegrationSeries: integrations given their own traffic series when asked (the busiest first). */
export const perIntegrationSeries = 1000;

/**
 * trafficMetrics: what the integrations' sessions moved since start, by integration type (a bounded label
 * set: 4 types, 2 directions), read from the session registry when scraped. A series per integration (its
 * username as label) only when asked (`--metrics-per-integration`), and then for the
 * `perIntegrationSeries` busiest, so a fleet of 10 000 does not become 60 000 series.
 */
function trafficMetrics(m: Metrics, credentials: CredentialStore, sessions: SessionRegistry, perIntegration: boolean) {
  const byType = () => {
    const sums = new Map<string, Traffic>();
    for (const [id, t] of sessions.trafficTotals()) {
      const type = credentials.peek(id)?.type;
      if (!type) continue;
      let sum = sums.get(type);
      if (!sum) sums.set(type, (sum = newTraffic()));
      sum.messagesIn += t.messagesIn;
      sum.messagesOut += t.messagesOut;
      sum.bytesIn += t.bytesIn;
      sum.bytesOut += t.bytesOut;
      sum.refused += t.refused;
    }
    return sums;
  };
  const busiest = () =>
    [...sessions.trafficTotals()]
      .map(([id, t]) => ({ username: credentials.peek(id)?.username, t }))
      .filter((x): x is { username: string; t: Readonly<Traffic> } => x.username !== undefined)
      .sort((a, b) => b.t.messagesIn + b.t.messagesOut - (a.t.messagesIn + a.t.messagesOut))
      .slice(0, perIntegrationSeries);
  const series = (
    name: string,
    help: string,
    pick: (t: Readonly<Traffic>) => [Record<string, string>, number][],
  ): void => {
    m.gauge({
      name,
      help,
      type: "counter",
      read: () =>
        [...byType()].flatMap(([type, t]) =>
          pick(t).map(([l, v]): [Record<string, string>, number] => [{ type, ...l }, v]),
        ),
    });
    // its own family, so a sum over `gatehouse_traffic_*` never counts a message twice
    if (perIntegration)
      m.gauge({
        name: name.replace("gatehouse_", "gatehouse_integration_"),
        help: `${help}, per integration (the ${perIntegrationSeries} busiest)`,
        type: "counter",
        read: () =>
          busiest().flatMap(({ username, t }) =>
            pick(t).map(([l, v]): [Record<string, string>, number] => [{ integration: username, ...l }, v]),
          ),
      });
  };
  series(
    "gatehouse_traffic_messages_total",
    "Messages integrations sent (in) and were delivered (out), since start",
    (t) => [
      [{ direction: "in" }, t.messagesIn],
      [{ direction: "out" }, t.messagesOut],
    ],
  );
  series("gatehouse_traffic_bytes_total", "Payload bytes of those messages", (t) => [
    [{ direction: "in" }, t.bytesIn],
    [{ direction: "out" }, t.bytesOut],
  ]);
  series("gatehouse_traffic_refused_publishes_total", "Publishes the topic permissions refused, since start", (t) => [
    [{}, t.refused],
  ]);
}
