import { StaleLoginError } from "../lib/errors.ts";
import type { EventBus } from "./events.ts";
import { type Clock, newTraffic, systemClock, TrafficMeter } from "./traffic.ts";
import { integrationTypes, type Integration, type IntegrationType, type SessionInfo, type Traffic } from "./types.ts";

export type { SessionInfo } from "./types.ts";

/**
 * kickReasons: why the core drops every session of an integration. A listener that must answer a
 * request in flight (an HTTP long poll) tells a password change (the credentials it carried are no
 * longer valid: 401) from the others, which it judges again against the integration as it is now.
 */
export const kickReasons = {
  deactivated: "integration deactivated",
  deleted: "integration deleted",
  passwordChanged: "password changed",
  permissionsChanged: "permissions changed",
} as const;

export interface OpenSession {
  integration: Integration;
  type: IntegrationType;
  clientId?: string;
  remote?: string;
  protocol?: string;
  /** kick: drops the connection; the listener's close path then calls `close`. */
  kick: (reason: string) => void;
  /** subscriptions: the topic filters the connection subscribes to now (asked when sessions are listed) */
  subscriptions?: () => string[];
}

export interface SessionHandle {
  readonly id: string;
  close(): void;
  /** touch: one more request of a stateless client (HTTP): counts it and moves `lastSeenAt` */
  touch(): void;
  /** traffic: what the listener counts per message for this session (and its integration's total) */
  readonly traffic: TrafficMeter;
}

type Entry = SessionInfo & { kick: OpenSession["kick"]; meter: TrafficMeter; subs?: OpenSession["subscriptions"] };

/**
 * SessionRegistry: who is connected now, per protocol. Online status is derived from it; nothing
 * here touches the disk. Listeners register a kick closure per session so the core can drop
 * clients of an integration that was deactivated, deleted or given a new password.
 */
export class SessionRegistry {
  #sessions = new Map<string, Entry>();
  #byIntegration = new Map<number, Set<string>>();
  /** each integration's traffic since start, over every session it had (dropped when it is deleted) */
  #traffic = new Map<number, Traffic>();
  #seq = 0;

  constructor(
    private readonly events: EventBus,
    /** the integration as it is now, if it still exists (for the revision check and current names) */
    private readonly current: (id: number) => Readonly<Integration> | undefined,
    /** where traffic meters read a message's time (the core's coarse clock) */
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * open: registers a live connection, unless the integration changed (password, active flag,
   * permissions, name) or was deleted since the login was verified: a kick for that change may have
   * run before this connection existed, so it throws StaleLoginError and the caller drops the client.
   */
  open(s: OpenSession): SessionHandle {
    const now = this.current(s.integration.id);
    if (!now || !now.active || now.revision !== s.integration.revision)
      throw new StaleLoginError(s.integration.username);
    const id = `${s.type}-${(++this.#seq).toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
    const info: SessionInfo = {
      id,
      integrationId: s.integration.id,
      username: s.integration.username,
      type: s.type,
      clientId: s.clientId,
      remote: s.remote,
      protocol: s.protocol,
      openedAt: Date.now(),
    };
    let total = this.#traffic.get(info.integrationId);
    if (!total) this.#traffic.set(info.integrationId, (total = newTraffic()));
    const meter = new TrafficMeter(newTraffic(), total, this.clock);
    this.#sessions.set(id, { ...info, kick: s.kick, meter, subs: s.subscriptions });
    let set = this.#byIntegration.get(info.integrationId);
    if (!set) this.#byIntegration.set(info.integrationId, (set = new Set()));
    set.add(id);
    this.events.emit("session.opened", { session: info });
    const entry = this.#sessions.get(id)!;
    return {
      id,
      traffic: meter,
      close: () => this.close(id),
      touch: () => {
        entry.lastSeenAt = Date.now();
        entry.requests = (entry.requests ?? 0) + 1;
      },
    };
  }

  /** close: idempotent; a session closed twice (kick, then socket close) is reported once. */
  close(id: string): void {
    const s = this.#sessions.get(id);
    if (!s) return;
    this.#sessions.delete(id);
    const set = this.#byIntegration.get(s.integrationId);
    set?.delete(id);
    if (set?.size === 0) this.#byIntegration.delete(s.integrationId);
    this.events.emit("session.closed", { session: infoOf(s) });
  }

  /** kickSession: drops one session (the "disconnect now" button). */
  kickSession(id: string, reason = "disconnected by admin"): boolean {
    const s = this.#sessions.get(id);
    if (!s) return false;
    this.close(id);
    this.events.emit("session.kicked", { session: infoOf(s), reason });
    try {
      s.kick(reason);
    } catch {
      // the connection is already gone; it is closed in the registry either way
    }
    return true;
  }

  /** kickIntegration: drops every session of an integration at once; returns how many. */
  kickIntegration(integrationId: number, reason: string): number {
    const ids = [...(this.#byIntegration.get(integrationId) ?? [])];
    for (const id of ids) this.kickSession(id, reason);
    return ids.length;
  }

  list(filter: { integrationId?: number; type?: IntegrationType } = {}): SessionInfo[] {
    const out: SessionInfo[] = [];
    const ids =
      filter.integrationId !== undefined
        ? (this.#byIntegration.get(filter.integrationId) ?? [])
        : this.#sessions.keys();
    for (const id of ids) {
      const entry = this.#sessions.get(id)!;
      const info = infoOf(entry);
      info.traffic = { ...entry.meter.session };
      if (entry.subs) info.subscriptions = entry.subs();
      // a rename shows at once: the name is the integration's, not the one it logged in with
      info.username = this.current(info.integrationId)?.username ?? info.username;
      if (!filter.type || info.type === filter.type) out.push(info);
    }
    return out;
  }

  /** matching: integrations with a live session whose client id or address contains `text` (any case). */
  matching(text: string): Set<number> {
    const q = text.trim().toLowerCase();
    const ids = new Set<number>();
    if (!q) return ids;
    for (const s of this.#sessions.values())
      if (s.clientId?.toLowerCase().includes(q) || s.remote?.toLowerCase().includes(q)) ids.add(s.integrationId);
    return ids;
  }

  /** trafficOf: what an integration's sessions moved since start, all of them together (zeros if none). */
  trafficOf(integrationId: number): Traffic {
    const t = this.#traffic.get(integrationId);
    return t ? { ...t } : newTraffic();
  }

  /** trafficTotals: every integration's traffic since start (live records: read, do not keep). */
  trafficTotals(): ReadonlyMap<number, Readonly<Traffic>> {
    return this.#traffic;
  }

  /** forgetTraffic: a deleted integration's counters go with it (the map stays as large as the fleet). */
  forgetTraffic(integrationId: number): void {
    this.#traffic.delete(integrationId);
  }

  countFor(integrationId: number): number {
    return this.#byIntegration.get(integrationId)?.size ?? 0;
  }

  onlineIds(): ReadonlySet<number> {
    return new Set(this.#byIntegration.keys());
  }

  /** onlineCountByType: integrations with at least one session, per protocol they are connected over. */
  onlineCountByType(): Record<IntegrationType, number> {
    const seen = new Map<IntegrationType, Set<number>>(integrationTypes.map((t) => [t, new Set()]));
    for (const s of this.#sessions.values()) seen.get(s.type)!.add(s.integrationId);
    return Object.fromEntries([...seen].map(([t, ids]) => [t, ids.size])) as Record<IntegrationType, number>;
  }

  get size(): number {
    return this.#sessions.size;
  }
}

/** infoOf: what a session entry shows outside the registry (no kick, no meter). */
function infoOf(e: Entry): SessionInfo {
  const { kick: _k, meter: _m, subs: _s, ...info } = e;
  return info;
}
