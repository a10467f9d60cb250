import { Elysia } from "elysia";
import type { Core } from "../core/index.ts";
import { allDefaultPermissions, setDefaultPermissions } from "../core/settings.ts";
import { adminRoles, type AdminRole } from "../core/admins.ts";
import { integrationTypes } from "../core/types.ts";
import { AppError, ValidationError } from "../lib/errors.ts";
import { field, htmlResponse, redirect, remoteOf } from "../lib/http.ts";
import { SettingsPage } from "../../views/pages/settings.tsx";
import { TopicsPage } from "../../views/pages/topics.tsx";
import { adminOf, authOf, cookieOptions, sessionCookie } from "./auth.tsx";
import { sha256Hex } from "../lib/ids.ts";
import { formFields } from "../lib/bodies.ts";
import { describeUserAgent } from "../lib/user-agent.ts";

const adminNotices: Record<string, string> = {
  password: "Your password is changed; your other sessions are signed out.",
  added: "Admin added.",
  removed: "Admin removed; its sessions ended.",
  ended: "Session ended.",
  role: "Role changed; it applies to that admin's next click.",
};

/** currentSessionId: the stored id of the session this request came with (to mark "this browser"). */
function currentSessionId(request: Request): string | undefined {
  const auth = authOf(request);
  return auth.kind === "session" ? sha256Hex(auth.token) : undefined;
}

const filters = (text: string | undefined) => (text ?? "").split(/[\s,]+/).filter(Boolean);

/** settingsPages: default permissions per type, admins and their sign-ins, and the retained topics. */
export function settingsPages(core: Core) {
  const page = (request: Request, extra: { errors?: Record<string, string>; saved?: boolean; done?: string } = {}) => (
    <SettingsPage
      admin={adminOf(request)}
      admins={core.admins.list()}
      secondFactor={core.admins.secondFactor(adminOf(request).username).enabled}
      adminSessions={core.admins
        .sessions()
        .map(({ userAgent, ...s }) => ({ ...s, client: describeUserAgent(userAgent) }))}
      currentSession={currentSessionId(request)}
      signIns={core.activity.list({ action: "admin.", limit: 30 })}
      defaults={allDefaultPermissions(core.db)}
      tls={core.tlsInfo.current}
      {...extra}
    />
  );
  return (
    new Elysia({ name: "settings-pages" })
      .get("/settings", ({ request, query }) =>
        page(request, { saved: query.saved === "1", done: adminNotices[query.done ?? ""] }),
      )
      // Admins: each answer redirects (post/redirect/get); a form error re-renders with the message.
      .post(
        "/settings/password",
        async ({ request, body, cookie }) => {
          const me = adminOf(request).username;
          const next = field(body, "password") ?? "";
          try {
            if (next !== (field(body, "confirm") ?? ""))
              throw new ValidationError({ password: "the two new passwords differ" });
            const { token } = await core.admins.changeOwnPassword(
              me,
              field(body, "current") ?? "",
              next,
              remoteOf(request),
              request.headers.get("user-agent") ?? "",
            );
            cookie[sessionCookie]!.set({
              value: token,
              ...cookieOptions(request, Math.floor(core.admins.sessionTtlMs / 1000)),
            });
          } catch (err) {
            if (!(err instanceof AppError) || err.code === "rate_limited") throw err;
            return htmlResponse(page(request, { errors: err.fields }), 400);
          }
          core.activity.record("admin.password-changed", me, "on the page; its other sessions ended");
          return redirect("/settings?done=password#admins");
        },
        { body: formFields("username", "current", "password", "confirm") },
      )
      .post(
        "/settings/admins",
        async ({ request, body }) => {
          const username = (field(body, "username") ?? "").trim();
          const role: AdminRole = field(body, "role") === "read-only" ? "read-only" : "full";
          try {
            await core.admins.addAdmin(username, field(body, "password") ?? "", role);
          } catch (err) {
            if (!(err instanceof AppError)) throw err;
            return htmlResponse(
              page(request, {
                errors: Object.fromEntries(Object.entries(err.fields).map(([k, v]) => [`new.${k}`, v])),
              }),
              err.code === "conflict" ? 409 : 400,
            );
          }
          core.activity.record("admin.added", username, `${role} admin, by ${adminOf(request).username}`);
          return redirect("/settings?done=added#admins");
        },
        { body: formFields("username", "password", "role") },
      )
      .post(
        "/settings/admins/role",
        ({ request, body }) => {
          const username = field(body, "username") ?? "";
          const role = field(body, "role") as AdminRole;
          if (!adminRoles.includes(role))
            throw new AppError("validation", "role must be full or read-only", { role: "full or read-only" });
          let changed: boolean;
          try {
            ({ changed } = core.admins.setRole(username, role));
          } catch (err) {
            if (!(err instanceof AppError) || err.code === "not_found") throw err;
            return htmlResponse(page(request, { errors: { admin: err.fields.admin ?? err.message } }), 400);
          }
          if (changed)
            core.activity.record("admin.role-changed", username, `to ${role}, by ${adminOf(request).username}`);
          return redirect("/settings?done=role#admins");
        },
        { body: formFields("username", "role") },
      )
      .post(
        "/settings/admins/remove",
        ({ request, body }) => {
          const username = field(body, "username") ?? "";
          try {
            core.admins.removeAdmin(username, adminOf(request).username);
          } catch (err) {
            if (!(err instanceof AppError) || err.code === "not_found") throw err;
            return htmlResponse(page(request, { errors: { admin: err.fields.admin ?? err.message } }), 400);
          }
          core.activity.record("admin.removed", username, `by ${adminOf(request).username}`);
          return redirect("/settings?done=removed#admins");
        },
        { body: formFields("username") },
      )
      .post(
        "/settings/sessions/end",
        ({ request, body }) => {
          core.admins.endSession(field(body, "id") ?? "");
          core.activity.record(
            "admin.session-ended",
            adminOf(request).username,
            "an admin session was ended on the page",
          );
          return redirect("/settings?done=ended#admins");
        },
        { body: formFields("id") },
      )
      .post(
        "/settings/defaults",
        ({ request, body }) => {
          try {
            core.db.transaction(() => {
              for (const t of integrationTypes) {
                setDefaultPermissions(core.db, t, {
                  publishAcl: filters(field(body, `${t}.publishAcl`)),
                  subscribeAcl: filters(field(body, `${t}.subscribeAcl`)),
                });
              }
            });
          } catch (err) {
            if (!(err instanceof AppError)) throw err;
            return htmlResponse(page(request, { errors: err.fields }), 400);
          }
          core.activity.record("settings.default-permissions", "", "changed");
          return redirect("/settings?saved=1");
        },
        { body: formFields(...integrationTypes.flatMap((t) => [`${t}.publishAcl`, `${t}.subscribeAcl`])) },
      )
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
      .post(
        "/topics/clear",
        async ({ body }) => {
          const topic = field(body, "topic") ?? "";
          if (!topic || /[#+]/.test(topic))
            throw new AppError("validation", "name one topic to clear", { topic: "a topic name" });
          await core.bus.publish({ topic, payload: Buffer.alloc(0), retain: true });
          core.activity.record("topic.cleared", topic);
          return redirect("/topics");
        },
        { body: formFields("topic") },
      )
  );
}
