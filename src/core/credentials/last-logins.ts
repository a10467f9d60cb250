import { isBusy, relaxed, type Db } from "../../db/client.ts";
import type { LastLogin } from "./index-memory.ts";

/**
 * LastLogins: last-login times and origins (client id, address) are a hot counter (every login), so
 * they are kept in memory and written behind in one transaction every few seconds and at stop.
 */
export class LastLogins {
  #pending = new Map<number, LastLogin>();

  constructor(private readonly db: Db) {}

  record(id: number, login: LastLogin): void {
    this.#pending.set(id, login);
  }

  pendingFor(id: number): LastLogin | undefined {
    return this.#pending.get(id);
  }

  /** waiting: how many times are not written yet */
  get waiting(): number {
    return this.#pending.size;
  }

  drop(id: number): void {
    this.#pending.delete(id);
  }

  /** flush: writes what was gathered since the previous flush; returns how many rows. */
  flush(): number {
    if (this.#pending.size === 0) return 0;
    const pending = [...this.#pending];
    const stmt = this.db.$client.prepare(
      "UPDATE integrations SET last_login_at = ?1, last_login_client_id = ?3, last_login_remote = ?4 " +
        "WHERE id = ?2 AND (last_login_at IS NULL OR last_login_at < ?1)",
    );
    try {
      relaxed(this.db, () =>
        this.db.$client.transaction(() => {
          for (const [id, l] of pending) stmt.run(l.at, id, l.clientId ?? null, l.remote ?? null);
        })(),
      );
    } catch (err) {
      if (isBusy(err)) return 0; // another process holds the lock: kept, written at the next flush
      throw err;
    }
    for (const [id, l] of pending) if (this.#pending.get(id) === l) this.#pending.delete(id);
    return pending.length;
  }
}
