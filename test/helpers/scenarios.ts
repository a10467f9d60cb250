import { expect, it } from "bun:test";
import type { EventName } from "../../src/core/events.ts";
import type { testWeb } from "./app.ts";

/**
 * Scenario: one route call and what must come of it (PocketBase's ApiScenario): method, path, who
 * calls (`admin` session with CSRF, an API `token`, or nobody), the body, and then the status, text
 * the answer must and must not contain, and the core events that must (or must not) have fired.
 */
export interface Scenario {
  name: string;
  method: string;
  path: string | ((ctx: ScenarioContext) => string | Promise<string>);
  auth?: "admin" | "token" | "none";
  form?: Record<string, string>;
  json?: unknown;
  headers?: Record<string, string>;
  /** runs before the request (create what the request acts on) */
  before?: (ctx: ScenarioContext) => unknown | Promise<unknown>;
  status: number;
  contains?: string[];
  notContains?: string[];
  events?: Partial<Record<EventName, number>>;
  after?: (ctx: ScenarioContext, res: Response, body: string) => unknown | Promise<unknown>;
}

export type ScenarioContext = Awaited<ReturnType<typeof testWeb>> & { token: string; vars: Record<string, unknown> };

/** runScenarios: one `it` per scenario, each on a fresh app (a real SQLite file) through `app.handle`. */
export function runScenarios(make: () => ReturnType<typeof testWeb>, scenarios: Scenario[]): void {
  for (const s of scenarios) {
    it(s.name, async () => {
      const web = await make();
      const ctx: ScenarioContext = { ...web, token: web.core.admins.createApiToken("scenario").token, vars: {} };
      await s.before?.(ctx);
      const fired: Partial<Record<EventName, number>> = {};
      for (const name of Object.keys(s.events ?? {}) as EventName[]) {
        fired[name] = 0;
        ctx.core.events.on(name, () => void (fired[name] = (fired[name] ?? 0) + 1));
      }
      const path = typeof s.path === "function" ? await s.path(ctx) : s.path;
      const auth = s.auth ?? "admin";
      const headers = { ...s.headers, ...(auth === "token" ? { authorization: `Bearer ${ctx.token}` } : {}) };
      const res = await ctx.request(s.method, path, {
        form: s.form,
        json: s.json,
        headers,
        auth: auth === "admin",
        csrf: auth === "admin",
      });
      const body = await res.text();
      expect({ status: res.status, body: body.slice(0, 300) }).toMatchObject({ status: s.status });
      for (const text of s.contains ?? []) expect(body).toContain(text);
      for (const text of s.notContains ?? []) expect(body).not.toContain(text);
      expect(fired).toEqual(s.events ?? {});
      await s.after?.(ctx, res, body);
    });
  }
}
