import { Elysia } from "elysia";
import type { Core } from "../core/index.ts";
import { allDefaultPermissions, setDefaultPermissions } from "../core/settings.ts";
import { integrationTypes } from "../core/types.ts";
import { AppError } from "../lib/errors.ts";
import { field, htmlResponse, redirect } from "../lib/http.ts";
import { SettingsPage } from "../../views/pages/settings.tsx";
import { TopicsPage } from "../../views/pages/topics.tsx";
import { adminOf } from "./auth.tsx";

const filters = (text: string | undefined) => (text ?? "").split(/[\s,]+/).filter(Boolean);

/** settingsPages: default permissions per type, admins and their sign-ins, and the retained topics. */
export function settingsPages(core: Core) {
  const page = (request: Request, extra: { errors?: Record<string, string>; saved?: boolean } = {}) => (
    <SettingsPage
      admin={adminOf(request)}
      admins={core.admins.list()}
      signIns={core.activity.list({ action: "admin.", limit: 30 })}
      defaults={allDefaultPermissions(core.db)}
      tls={core.tlsInfo.current}
      {...extra}
    />
  );
  return new Elysia({ name: "settings-pages" })
    .get("/settings", ({ request, query }) => page(request, { saved: query.saved === "1" }))
    .post("/settings/defaults", ({ request, body }) => {
      try {
        core.db.transaction(() => {
          for (const t of integrationTypes) {
            setDefaultPermissions(core.db, t, { publishAcl: filters(field(body, `${t}.publishAcl`)), subscribeAcl: filters(field(body, `${t}.subscribeAcl`)) });
          }
        });
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        return htmlResponse(page(request, { errors: err.fields }), 400);
      }
      core.activity.record("settings.default-permissions", "", "changed");
      return redirect("/settings?saved=1");
    })
    .get("/topics", async ({ request, query }) => {
      const q = query.q?.slice(0, 256) || undefined;
      const topics: { topic: string; bytes: number; preview: string }[] = [];
      let truncated = false;
      for await (const m of core.bus.retained("#")) {
        if (q && !m.topic.includes(q)) continue;
        if (topics.length >= 500) {
          truncated = true;
          break;
        }
        const text = m.payload.subarray(0, 120).toString("utf8");
        topics.push({ topic: m.topic, bytes: m.payload.length, preview: m.payload.length > 120 ? `${text}…` : text });
      }
      topics.sort((a, b) => a.topic.localeCompare(b.topic));
      return <TopicsPage admin={adminOf(request)} topics={topics} q={q} truncated={truncated} />;
    })
    .post("/topics/clear", async ({ body }) => {
      const topic = field(body, "topic") ?? "";
      if (!topic || /[#+]/.test(topic)) throw new AppError("validation", "name one topic to clear", { topic: "a topic name" });
      await core.bus.publish({ topic, payload: Buffer.alloc(0), retain: true });
      core.activity.record("topic.cleared", topic);
      return redirect("/topics");
    });
}
