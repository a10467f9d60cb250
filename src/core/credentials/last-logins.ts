import { isBusy, relaxed, type Db } from "../../db/client.ts";

/**
 * LastLogins: last-login times are a hot counter (every login), so they are kept in memory and
 * written behind in one transaction every few seconds and at stop.
 */
export class LastLogins {
  #pending = new Map<number, number>();

  constructor(private readonly db: Db) {}

  record(id: number, at: number): void {
    this.#pending.set(id, at);
  }

  pendingFor(id: number): number | undefined {
    return this.#pending.get(id);
  }

  drop(id: number): void {
    this.#pending.delete(id);
  }

  /** flush: writes what was gathered since the previous flush; returns how many rows. */
  flush(): number {
    if (this.#pending.size === 0) return 0;
    const pending = [...this.#pending];
    const stmt = this.db.$client.prepare(
      "UPDATE integrations SET last_login_at = ?1 WHERE id = ?2 AND (last_login_at IS NULL OR last_login_at < ?1)",
    );
    try {
      relaxed(this.db, () =>
        this.db.$client.transaction(() => {
          for (const [id, at] of pending) stmt.run(at, id);
        })(),
      );
    } catch (err) {
      if (isBusy(err)) return 0; // another process holds the lock: kept, written at the next flush
      throw err;
    }
    for (const [id, at] of pending) if (this.#pending.get(id) === at) this.#pending.delete(id);
    return pending.length;
  }
}
