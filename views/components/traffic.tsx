import type { Traffic } from "../../src/core/types.ts";
import { LocalTime } from "./local-time.tsx";

/** count: a message count in a few characters (12, 4.3k, 1.2M). */
export function count(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 1 : 0)}M`;
}

/** bytes: a byte count as people read it (512 B, 3.4 KB, 1.2 MB; 1 KB = 1024 B). */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(1)} GB`;
}

/** trafficLine: the whole of a Traffic in one sentence (a tooltip, a screen reader). */
export function trafficLine(t: Traffic): string {
  return (
    `${t.messagesIn} messages in (${bytes(t.bytesIn)}), ${t.messagesOut} out (${bytes(t.bytesOut)})` +
    (t.refused ? `, ${t.refused} refused publishes` : "")
  );
}

/**
 * TrafficBrief: an integration's traffic on its one-line row, beside the status: "↑12 ↓4.3k" (messages
 * the device sent and was delivered), "2 refused" in warning colour; the whole in a tooltip and for
 * screen readers. Nothing while it has moved nothing since start.
 */
export function TrafficBrief({ traffic: t }: { traffic?: Traffic }) {
  if (!t || (t.messagesIn === 0 && t.messagesOut === 0 && t.refused === 0)) return "";
  return (
    <span class="traffic" title={trafficLine(t)}>
      <span aria-hidden="true" safe>{`↑${count(t.messagesIn)} ↓${count(t.messagesOut)}`}</span>
      {t.refused ? <span class="refused" aria-hidden="true" safe>{` ${count(t.refused)} refused`}</span> : ""}
      <span class="sr-only" safe>
        {trafficLine(t)}
      </span>
    </span>
  );
}

/** TrafficFacts: an integration's (or a session's) traffic as labelled facts, for its detail and its page. */
export function TrafficFacts({ traffic: t }: { traffic: Traffic }) {
  return (
    <dl class="traffic-facts">
      <dt>Messages in</dt>
      <dd safe>{`${t.messagesIn} (${bytes(t.bytesIn)})`}</dd>
      <dt>Messages out</dt>
      <dd safe>{`${t.messagesOut} (${bytes(t.bytesOut)})`}</dd>
      <dt>Refused publishes</dt>
      <dd class={t.refused ? "warn" : undefined} safe>
        {String(t.refused)}
      </dd>
      <dt>Last message</dt>
      <dd>
        <LocalTime at={t.lastMessageAt} never="none yet" />
      </dd>
    </dl>
  );
}
