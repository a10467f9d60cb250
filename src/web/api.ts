import { Elysia, t } from "elysia";
import type { Core } from "../core/index.ts";
import { integrationStatuses, integrationTypes, statusOf, type Integration } from "../core/types.ts";
import { NotFoundError } from "../lib/errors.ts";
import { noFields } from "../lib/bodies.ts";
import { parseId, parseListQuery } from "./integrations/index.ts";

const IntegrationType = t.Union(integrationTypes.map((type) => t.Literal(type)));
const filterList = t.Array(t.String({ maxLength: 1024 }), { maxItems: 100 });
/** the topic permissions an integration is created or changed with (left out: the type's defaults, or unchanged) */
const permissionFields = {
  publishAcl: t.Optional(filterList),
  subscribeAcl: t.Optional(filterList),
  denyPublishAcl: t.Optional(filterList),
  denySubscribeAcl: t.Optional(filterList),
};

/** apiRoutes: the JSON API under /api/v1; same core calls as the page, same auth guard. */
export function apiRoutes(core: Core) {
  const { credentials, sessions } = core;
  const view = (i: Integration) => {
    const n = sessions.countFor(i.id);
    return {
      ...i,
      status: statusOf(i.active, n > 0),
      sessions: n,
      createdAt: new Date(i.createdAt).toISOString(),
      updatedAt: new Date(i.updatedAt).toISOString(),
      lastLoginAt: i.lastLoginAt === null ? null : new Date(i.lastLoginAt).toISOString(),
    };
  };
  const integrationOr404 = (rawId: string) => {
    const i = credentials.get(parseId(rawId));
    if (!i) throw new NotFoundError("integration");
    return i;
  };

  return new Elysia({ name: "api-v1", prefix: "/api/v1" })
    .get(
      "/integrations",
      ({ query }) => {
        const q = parseListQuery(query);
        const pageSize = Number(query.pageSize ?? 50);
        const live = q.q ? sessions.matching(q.q) : undefined;
        const result = credentials.list({ ...q, pageSize }, sessions.onlineIds(), live);
        return {
          items: result.rows.map(view),
          total: result.total,
          page: result.page,
          pages: result.pages,
          pageSize: result.pageSize,
        };
      },
      {
        query: t.Object({
          q: t.Optional(t.String({ maxLength: 128 })),
          type: t.Optional(IntegrationType),
          status: t.Optional(t.Union(integrationStatuses.map((s) => t.Literal(s)))),
          page: t.Optional(t.String({ pattern: "^[0-9]{1,9}$" })),
          pageSize: t.Optional(t.String({ pattern: "^[0-9]{1,3}$" })),
        }),
        detail: { summary: "List integrations", tags: ["integrations"] },
      },
    )
    .post(
      "/integrations",
      async ({ body, set }) => {
        const { integration, password } = await credentials.create(body);
        set.status = 201;
        return { integration: view(integration), password };
      },
      {
        body: t.Object(
          {
            type: IntegrationType,
            username: t.Optional(t.String({ maxLength: 128 })),
            password: t.Optional(t.String({ maxLength: 256 })),
            description: t.Optional(t.String({ maxLength: 1024 })),
            active: t.Optional(t.Boolean()),
            ...permissionFields,
          },
          { additionalProperties: false },
        ),
        detail: {
          summary:
            "Create an integration (topic permissions left out: the type's defaults); the password is returned once",
          tags: ["integrations"],
        },
      },
    )
    .get(
      "/integrations/:id",
      ({ params }) => {
        const i = integrationOr404(params.id);
        const t = sessions.trafficOf(i.id);
        // what its sessions moved since the appliance started (memory only: a restart starts from zero)
        const traffic = {
          ...t,
          lastMessageAt: t.lastMessageAt === null ? null : new Date(t.lastMessageAt).toISOString(),
        };
        return { ...view(i), traffic };
      },
      {
        detail: {
          summary:
            "Get one integration, with its traffic since start (messages and bytes in and out, refused publishes)",
          tags: ["integrations"],
        },
      },
    )
    .patch(
      "/integrations/:id",
      ({ params, body }) => {
        let i = integrationOr404(params.id);
        const { active, ...patch } = body;
        if (Object.keys(patch).length) i = credentials.update(i.id, patch);
        if (active !== undefined) i = credentials.setActive(i.id, active);
        return view(i);
      },
      {
        body: t.Object(
          {
            username: t.Optional(t.String({ maxLength: 128 })),
            description: t.Optional(t.String({ maxLength: 1024 })),
            active: t.Optional(t.Boolean()),
            ...permissionFields,
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Change username, description, active flag or topic permissions", tags: ["integrations"] },
      },
    )
    .delete(
      "/integrations/:id",
      ({ params, set }) => {
        credentials.remove(integrationOr404(params.id).id);
        set.status = 204;
        return "";
      },
      { body: noFields, detail: { summary: "Delete an integration and drop its sessions", tags: ["integrations"] } },
    )
    .post(
      "/integrations/:id/reset-password",
      async ({ params, body }) => {
        const { integration, password } = await credentials.resetPassword(
          integrationOr404(params.id).id,
          body?.password,
        );
        return { integration: view(integration), password };
      },
      {
        body: t.Optional(
          t.Object({ password: t.Optional(t.String({ maxLength: 256 })) }, { additionalProperties: false }),
        ),
        detail: { summary: "Set a new (random unless given) password; sessions are dropped", tags: ["integrations"] },
      },
    )
    .get(
      "/sessions",
      ({ query }) => ({
        items: sessions.list({ integrationId: query.integrationId ? Number(query.integrationId) : undefined }),
      }),
      {
        query: t.Object({ integrationId: t.Optional(t.String({ pattern: "^[0-9]{1,12}$" })) }),
        detail: { summary: "Live sessions", tags: ["sessions"] },
      },
    )
    .delete(
      "/sessions/:id",
      ({ params, set }) => {
        if (!sessions.kickSession(params.id)) throw new NotFoundError("session");
        set.status = 204;
        return "";
      },
      { body: noFields, detail: { summary: "Disconnect one session now", tags: ["sessions"] } },
    )
    .get("/login-failures", () => ({ items: core.loginLog.recent(200), groups: core.loginLog.grouped() }), {
      detail: {
        summary:
          "Recent failed logins one by one (`items`), and grouped by username, address and reason with count and first/last seen (`groups`); bounded",
        tags: ["sessions"],
      },
    });
}
