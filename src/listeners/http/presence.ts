import type { Core } from "../../core/index.ts";
import { kickReasons, type SessionHandle } from "../../core/sessions.ts";
import type { Integration } from "../../core/types.ts";
import { StaleLoginError } from "../../lib/errors.ts";
import { parseBasicAuth } from "./basic-auth.ts";
import { refusal } from "./responses.ts";

/** PollEnd: why a long poll stopped waiting (a value, a refusal decided by a kick, or its time is over). */
export type PollEnd =
  | { kind: "value"; payload: Buffer; at: number }
  | { kind: "refused"; response: () => Response }
  | { kind: "over" };

/** Waiter: one long poll in flight, found by its topic (a value) and by its session (a kick). */
export interface Waiter {
  topic: string;
  end(e: PollEnd): void;
}

/** LiveSession: an HTTP integration's session from one address, and the long polls it has in flight. */
export interface LiveSession {
  handle: SessionHandle;
  last: number;
  waiters: Set<Waiter>;
}

/**
 * createPresence: who is online over HTTP, a protocol without connections. Every request authenticates
 * with Basic auth through the core's `verify` for type HTTP (a repeat request costs a cached HMAC, not a
 * hash); an integration is online while it made a request within the online window, one session per
 * (integration, address) counting the requests, ended when the window passes with no poll in flight.
 */
export function createPresence(core: Core, onlineWindowMs: number) {
  const { credentials, sessions } = core;
  const live = new Map<string, LiveSession>();
  const sessionKey = (integrationId: number, remote: string) => `${integrationId}\0${remote}`;
  let sweeper: ReturnType<typeof setInterval> | undefined;

  const touch = (integration: Integration, remote: string, agent: string | undefined) => {
    const key = sessionKey(integration.id, remote);
    const now = Date.now();
    const existing = live.get(key);
    if (existing) {
      existing.last = now;
      existing.handle.touch();
      return;
    }
    try {
      const polls = new Set<Waiter>();
      const handle = sessions.open({
        integration,
        type: "http",
        clientId: agent?.slice(0, 128),
        remote,
        // Stateless: the next request is refused by verify. A long poll in flight is a request that
        // already passed: it ends now, with a password change's 401 or, once it is judged again, what
        // the integration may do now (see data.ts).
        kick: (reason) => {
          if (live.get(key)?.waiters === polls) live.delete(key);
          const end: PollEnd =
            reason === kickReasons.passwordChanged
              ? { kind: "refused", response: () => refusal("wrong-password") }
              : { kind: "over" };
          for (const w of [...polls]) w.end(end);
        },
      });
      handle.touch();
      live.set(key, { handle, last: now, waiters: polls });
    } catch (err) {
      if (!(err instanceof StaleLoginError)) throw err;
    }
  };

  return {
    /** authenticate: the request's HTTP integration, or the refusal to answer with. */
    async authenticate(request: Request, remote: string): Promise<Integration | Response> {
      const creds = parseBasicAuth(request.headers.get("authorization"));
      const meta = { remote, clientId: request.headers.get("user-agent")?.slice(0, 128) };
      if (!creds) {
        credentials.loginRefused("http", "", "unknown-user", meta);
        return refusal("unknown-user");
      }
      // the request's signal: a client that gives up waiting takes its password check out of the line
      const result = await credentials.verify("http", creds.username, creds.password, meta, request.signal);
      if (!result.ok) return refusal(result.reason);
      touch(result.integration, remote, meta.clientId);
      return result.integration;
    },
    /** sessionOf: the live session of this integration from this address (none: it changed since its login) */
    sessionOf: (integrationId: number, remote: string) => live.get(sessionKey(integrationId, remote)),
    start() {
      sweeper = setInterval(
        () => {
          const cutoff = Date.now() - onlineWindowMs;
          for (const [key, e] of live) {
            // A session with a long poll in flight is online: its kick must still reach that poll.
            if (e.last >= cutoff || e.waiters.size > 0) continue;
            live.delete(key);
            e.handle.close();
          }
        },
        Math.max(100, Math.min(5_000, onlineWindowMs / 4)),
      );
      sweeper.unref?.();
    },
    /** stop: every session ends; polls in flight get `last` */
    stop(last: PollEnd) {
      if (sweeper) clearInterval(sweeper);
      for (const e of live.values()) {
        e.handle.close();
        for (const w of [...e.waiters]) w.end(last);
      }
      live.clear();
    },
  };
}

export type Presence = ReturnType<typeof createPresence>;
