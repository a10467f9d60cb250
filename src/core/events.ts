import type { Integration, IntegrationType, LoginFailure, LoginMeta, SessionInfo } from "./types.ts";

/** EventMap: every event of the core, named `noun.pastVerb`. */
export interface EventMap {
  /** `via`: what made it, when that records its own activity entry (an approved onboarding request) */
  "integration.created": { integration: Integration; via?: "onboarding" };
  "integration.updated": { integration: Integration; passwordChanged: boolean; aclChanged?: boolean };
  "integration.deleted": { integration: Integration };
  "integration.activated": { integration: Integration };
  "integration.deactivated": { integration: Integration };
  "session.opened": { session: SessionInfo };
  "session.closed": { session: SessionInfo };
  /** a live session dropped by the core (revocation) or an admin (Disconnect) */
  "session.kicked": { session: SessionInfo; reason: string };
  "login.succeeded": { integration: Integration; type: IntegrationType; meta: LoginMeta };
  /** the onboarding window or its requests changed (pages refresh) */
  "onboarding.changed": Record<string, never>;
  /** `onboarding`: an unknown name the open onboarding window took as a request (not a failure to show) */
  "login.failed": {
    username: string;
    type: IntegrationType;
    reason: LoginFailure;
    meta: LoginMeta;
    onboarding?: boolean;
  };
  /** a listener refused a client's publish by the topic permissions (the client may repeat it often) */
  "publish.refused": { integration: Readonly<Integration>; topic: string };
  /** a connector's state changed (connected, disconnected, its queue, its configuration): open pages refresh */
  "connector.changed": { connector: string };
}

export type EventName = keyof EventMap;

/** integrationStateEvents: what changes the integrations as listed (their rows, online status, sessions). */
export const integrationStateEvents = [
  "integration.created",
  "integration.updated",
  "integration.deleted",
  "integration.activated",
  "integration.deactivated",
  "session.opened",
  "session.closed",
] as const satisfies readonly EventName[];
type Handler<K extends EventName> = (payload: EventMap[K]) => void;

/** EventBus: synchronous, typed; a throwing handler is reported and does not stop the others. */
export class EventBus {
  // biome-ignore lint/suspicious/noExplicitAny: one map holds every event's handlers; `on` and `emit` keep them typed
  #handlers = new Map<EventName, Set<Handler<any>>>();
  constructor(private readonly onHandlerError: (event: EventName, err: unknown) => void = () => {}) {}

  on<K extends EventName>(event: K, handler: Handler<K>): () => void {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  emit<K extends EventName>(event: K, payload: EventMap[K]): void {
    for (const handler of this.#handlers.get(event) ?? []) {
      try {
        handler(payload);
      } catch (err) {
        this.onHandlerError(event, err);
      }
    }
  }
}
