import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import { integrationStateEvents } from "../../core/events.ts";
import { allowIdle } from "../../lib/http.ts";
import { authOf } from "../auth.tsx";

/** how often /events sends a comment when nothing happens, and how long its connection may be silent */
const pingSeconds = 20;
const streamIdleSeconds = 3 * pingSeconds;

/**
 * eventStream: `/events`, server-sent events for the open pages: `changed` (debounced) whenever an
 * integration, a session, a failed login or onboarding changes; `connector` (debounced) when a
 * connector's state does (an uplink connects, its queue grows); a comment every 20 s keeps the server's
 * idle timeout (60 s for this route: a stream whose comments stop going out is closed) and proxies
 * (nginx's proxy_read_timeout is 60 s) from closing it. The page decides what to reload.
 */
export function eventStream(core: Core) {
  return new Elysia({ name: "event-stream" }).get("/events", ({ request }) => {
    allowIdle(request, streamIdleSeconds);
    const encoder = new TextEncoder();
    let cleanup = () => {};
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const auth = authOf(request);
        const send = (text: string) => {
          // a signed-out, removed or expired admin's stream ends with its session
          if (auth.kind === "session" && !core.admins.resolveSession(auth.token)) {
            cleanup();
            try {
              controller.close();
            } catch {
              // already closed
            }
            return;
          }
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            cleanup();
          }
        };
        const changed = () => {
          if (timer) return;
          timer = setTimeout(() => {
            timer = undefined;
            send("event: changed\ndata: {}\n\n");
          }, 300);
        };
        // A connector's page (uplinks) refreshes on its own event, so its counters do not reload the table.
        let connectorTimer: ReturnType<typeof setTimeout> | undefined;
        const connectorChanged = () => {
          if (connectorTimer) return;
          connectorTimer = setTimeout(() => {
            connectorTimer = undefined;
            send("event: connector\ndata: {}\n\n");
          }, 300);
        };
        const offs = ([...integrationStateEvents, "login.failed", "onboarding.changed"] as const).map((name) =>
          core.events.on(name, changed),
        );
        offs.push(core.events.on("connector.changed", connectorChanged));
        const ping = setInterval(() => send(": ping\n\n"), pingSeconds * 1000);
        send("retry: 2000\n\n");
        cleanup = () => {
          for (const off of offs) off();
          clearInterval(ping);
          if (timer) clearTimeout(timer);
          if (connectorTimer) clearTimeout(connectorTimer);
          cleanup = () => {};
        };
        request.signal.addEventListener("abort", () => {
          cleanup();
          try {
            controller.close();
          } catch {
            // already closed
          }
        });
      },
      cancel() {
        cleanup();
      },
    });
    return new Response(stream, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  });
}
