import type { EventBus, EventMap, EventName } from "../../src/core/events.ts";

/**
 * eventually: retries `check` until it stops throwing (or returns true), failing with its last error
 * after `timeoutMs`. For conditions nothing announces; prefer `waitFor` on a core event.
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      const v = await check();
      if (v !== false) return v;
      throw new Error("condition is still false");
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

/** waitFor: the next `name` event whose payload satisfies `predicate` (registered before the action you await). */
export function waitFor<K extends EventName>(
  events: EventBus,
  name: K,
  predicate: (payload: EventMap[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<EventMap[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${name} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = events.on(name, (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}
