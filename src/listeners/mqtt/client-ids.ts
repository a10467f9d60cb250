interface Owner {
  integrationId: number;
  live: number;
  /** the newest connection asked for a persistent session (clean session off) */
  persistent: boolean;
}

export type Claim = "ok" | "taken" | "orphaned";

/**
 * ClientIdOwners: which integration a client id belongs to, while it has a live connection or a
 * persistent session. MQTT ties sessions to client ids, not users; Gatehouse ties them to
 * integrations: a takeover [MQTT-3.1.4-2] happens only within one integration, and a persistent
 * session is never handed to another integration's client.
 */
export class ClientIdOwners {
  #owners = new Map<string, Owner>();
  /** client ids whose stored session belonged to an integration that no longer exists */
  #orphans = new Set<string>();

  constructor(private readonly exists: (integrationId: number) => boolean) {}

  /**
   * claim: a client of `integrationId` logs in with `clientId`. "taken" when a live or persistent
   * session of another existing integration holds it; "orphaned" when the id's stored session must
   * be wiped first (its integration is gone). Counts the connection as live.
   */
  claim(clientId: string, integrationId: number, clean: boolean): Claim {
    const o = this.#owners.get(clientId);
    let result: Claim = "ok";
    if (o && o.integrationId !== integrationId) {
      if (this.exists(o.integrationId) && (o.live > 0 || o.persistent)) return "taken";
      if (o.persistent) result = "orphaned";
      this.#owners.delete(clientId);
    }
    if (this.#orphans.delete(clientId)) result = "orphaned";
    const owner = this.#owners.get(clientId) ?? { integrationId, live: 0, persistent: false };
    owner.live++;
    owner.persistent = !clean;
    this.#owners.set(clientId, owner);
    return result;
  }

  /**
   * release: one live connection of the id closed; a clean session leaves nothing behind. Returns the
   * connections of the integration still live under this id (a takeover's new one).
   */
  release(clientId: string, integrationId: number): number {
    const o = this.#owners.get(clientId);
    if (!o || o.integrationId !== integrationId) return 0;
    o.live = Math.max(0, o.live - 1);
    if (o.live === 0 && !o.persistent) this.#owners.delete(clientId);
    return o.live;
  }

  /** liveFor: the connections of `integrationId` live under `clientId` now (a new one is a takeover) */
  liveFor(clientId: string, integrationId: number): number {
    const o = this.#owners.get(clientId);
    return o && o.integrationId === integrationId ? o.live : 0;
  }

  /** restore: a persistent session stored before a restart belongs to its integration again, offline. */
  restore(clientId: string, integrationId: number): void {
    this.#owners.set(clientId, { integrationId, live: 0, persistent: true });
  }

  /** sessionGone: the id's stored session ended (expired, dropped for room): it holds the id no more. */
  sessionGone(clientId: string): void {
    const o = this.#owners.get(clientId);
    if (!o) return;
    o.persistent = false;
    if (o.live === 0) this.#owners.delete(clientId);
  }

  /** ownerOf: the integration the id belongs to now, if any. */
  ownerOf(clientId: string): number | undefined {
    return this.#owners.get(clientId)?.integrationId;
  }

  /** endSessions: the integration was deactivated: its stored sessions go, its client ids stay its own. */
  endSessions(integrationId: number): string[] {
    const ids: string[] = [];
    for (const [clientId, o] of this.#owners) {
      if (o.integrationId !== integrationId || !o.persistent) continue;
      o.persistent = false;
      if (o.live === 0) this.#owners.delete(clientId);
      ids.push(clientId);
    }
    return ids;
  }

  /** orphan: the integration was deleted; returns its client ids whose persistent sessions must go. */
  orphan(integrationId: number): string[] {
    const ids: string[] = [];
    for (const [clientId, o] of this.#owners) {
      if (o.integrationId !== integrationId) continue;
      this.#owners.delete(clientId);
      if (o.persistent) {
        this.#orphans.add(clientId);
        ids.push(clientId);
      }
    }
    return ids;
  }

  get size(): number {
    return this.#owners.size;
  }
}
