import type { EventBus } from "./events.ts";
import type { IntegrationType, LoginFailure } from "./types.ts";

export interface FailedLogin {
  at: number;
  type: IntegrationType;
  username: string;
  clientId?: string;
  remote?: string;
  protocol?: string;
  reason: LoginFailure;
}

/** LoginLog: the most recent failed logins, newest first, bounded so a flood cannot grow it. */
export class LoginLog {
  #entries: FailedLogin[] = [];

  constructor(
    events: EventBus,
    readonly capacity = 200,
  ) {
    events.on("login.failed", (e) => {
      this.#entries.unshift({
        at: Date.now(),
        type: e.type,
        username: e.username.slice(0, 256),
        clientId: e.meta.clientId?.slice(0, 256),
        remote: e.meta.remote,
        protocol: e.meta.protocol,
        reason: e.reason,
      });
      if (this.#entries.length > capacity) this.#entries.length = capacity;
    });
  }

  recent(limit = 50): FailedLogin[] {
    return this.#entries.slice(0, limit);
  }
}
