import type { EventBus } from "./events.ts";
import { whyPublishRefused, type TopicSpace } from "./permissions.ts";
import { isVrpcInfoTopic } from "./topics.ts";

/** RefusedAnnouncement: the last VRPC announcement of an integration the topic rules refused, and why. */
export interface RefusedAnnouncement {
  integrationId: number;
  username: string;
  /** the agent it announced: `<domain>/<agent>` of the refused topic (at most 256 characters) */
  agent: string;
  reason: string;
  at: number;
  /** refusals since the integration's last login */
  count: number;
}

/**
 * AnnouncementRefusals: an agent whose announcements are refused is online but never appears on the
 * agents page; this keeps the last refusal per integration so its row and the agents page can say why
 * (not only the log). Bounded by the integrations: one entry each, gone with a new login (a fixed agent
 * starts clean), a change of the integration, or its deletion.
 */
export class AnnouncementRefusals {
  #byIntegration = new Map<number, RefusedAnnouncement>();

  constructor(events: EventBus, space: TopicSpace, now: () => number = Date.now) {
    events.on("publish.refused", ({ integration, topic }) => {
      if (!isVrpcInfoTopic(topic)) return;
      const previous = this.#byIntegration.get(integration.id);
      this.#byIntegration.set(integration.id, {
        integrationId: integration.id,
        username: integration.username,
        agent: topic.split("/", 2).join("/").slice(0, 256),
        reason: whyPublishRefused(integration, topic, space),
        at: now(),
        count: (previous?.count ?? 0) + 1,
      });
    });
    const forget = ({ integration }: { integration: { id: number } }) =>
      void this.#byIntegration.delete(integration.id);
    events.on("login.succeeded", forget);
    events.on("integration.updated", forget);
    events.on("integration.deleted", forget);
  }

  of(integrationId: number): RefusedAnnouncement | undefined {
    return this.#byIntegration.get(integrationId);
  }

  /** list: newest first. */
  list(): RefusedAnnouncement[] {
    return [...this.#byIntegration.values()].sort((a, b) => b.at - a.at);
  }
}
