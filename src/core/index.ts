import { dataVersion, type Db } from "../db/client.ts";
import type { Logger } from "../lib/logger.ts";
import { Slot } from "../lib/slot.ts";
import { ActivityLog, actAs } from "./activity.ts";
import { AdminStore } from "./admins.ts";
import { Onboarding } from "./onboarding.ts";
import { TopicBus } from "./bus.ts";
import type { CertificateTrust } from "./certificates.ts";
import type { VrpcDirectory } from "./vrpc.ts";
import { CredentialStore, type AcceptsTable, type HashCost } from "./credentials.ts";
import { EventBus } from "./events.ts";
import { LoginLog } from "./login-log.ts";
import { SessionRegistry } from "./sessions.ts";

export interface CoreOptions {
  hashCost?: HashCost;
  /** which integration types each listener admits besides its own (from the listener registry) */
  accepts?: AcceptsTable;
  sessionTtlMs?: number;
  /** how often the database is checked for writes by another process (the CLI) */
  watchIntervalMs?: number;
  /** how often last-login times are written */
  flushIntervalMs?: number;
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
  const credentials = new CredentialStore(db, events, {
    hashCost: opts.hashCost,
    accepts: opts.accepts,
    onUnknown: (type, username, password, meta) => {
      onboarding.consider(type, username, password, meta).catch((err) => log.error("onboarding request failed", { err }));
    },
  });
  const onboarding = new Onboarding(db, credentials, events, activity, log.child({ part: "onboarding" }));
  activity.follow(events);
  const sessions = new SessionRegistry(events, (id) => credentials.peek(id));
  const admins = new AdminStore(db, {
    hashCost: opts.hashCost,
    sessionTtlMs: opts.sessionTtlMs,
    onAttempt: ({ username, remote, outcome }) => {
      (outcome === "signed-in" ? log.info : log.warn)(`admin ${outcome === "signed-in" ? "signed in" : outcome === "failed" ? "sign-in failed" : "sign-in refused: throttled"}`, { username, remote });
      activity.record(`admin.${outcome}`, username, `from ${remote}`, outcome === "signed-in" ? `admin:${username}` : `address:${remote}`);
    },
  });
  const loginLog = new LoginLog(events);

  const kick = (reason: string) => ({ integration }: { integration: { id: number; username: string } }) => {
    const n = sessions.kickIntegration(integration.id, reason);
    if (n > 0) log.info("sessions dropped", { integration: integration.username, count: n, reason });
  };
  events.on("integration.deactivated", kick("integration deactivated"));
  events.on("integration.deleted", kick("integration deleted"));
  events.on("integration.updated", (e) => {
    if (e.passwordChanged) kick("password changed")(e);
    // Subscriptions were granted under the old permissions: reconnecting applies the new ones.
    else if (e.aclChanged) kick("permissions changed")(e);
  });
  // An audit trail of every change, whoever made it (page, API, CLI through the database).
  for (const name of ["integration.created", "integration.deleted", "integration.activated", "integration.deactivated"] as const) {
    events.on(name, ({ integration: i }) => log.info(name.replace(".", " "), { id: i.id, username: i.username, type: i.type }));
  }
  events.on("integration.updated", ({ integration: i, passwordChanged }) =>
    log.info("integration updated", { id: i.id, username: i.username, passwordChanged }),
  );
  events.on("login.failed", (e) =>
    log.info("login failed", { type: e.type, username: e.username, reason: e.reason, clientId: e.meta.clientId, remote: e.meta.remote }),
  );
  events.on("session.opened", ({ session: s }) =>
    log.debug("session opened", { type: s.type, username: s.username, clientId: s.clientId, remote: s.remote }),
  );

  let lastVersion = dataVersion(db);
  /** syncExternalChanges: cheap when nothing changed (one PRAGMA); reconciles when the CLI wrote. */
  const syncExternalChanges = () => {
    const v = dataVersion(db);
    if (v === lastVersion) return false;
    lastVersion = v;
    // Attributed to the other process, which records its own activity.
    actAs("external", () => {
      credentials.reload();
      onboarding.reload();
      admins.syncExternal();
    });
    return true;
  };

  const timers: ReturnType<typeof setInterval>[] = [];
  return {
    db,
    events,
    credentials,
    sessions,
    admins,
    loginLog,
    activity,
    onboarding,
    /** the topic space of the broker, for every listener (see bus.ts) */
    bus: new TopicBus(),
    /** the OPC UA listener's certificate trust list while it runs */
    certificates: new Slot<CertificateTrust>(),
    /** the VRPC listener's directory of agents while it runs */
    vrpc: new Slot<VrpcDirectory>(),
    syncExternalChanges,
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
          try {
            credentials.flushLastLogins();
            onboarding.flush();
            activity.flush();
          } catch (err) {
            log.error("last-login flush failed", { err });
          }
        }, opts.flushIntervalMs ?? 5_000),
      );
      for (const t of timers) t.unref?.();
    },
    stop() {
      for (const t of timers.splice(0)) clearInterval(t);
      credentials.flushLastLogins();
      onboarding.stop();
    },
  };
}
