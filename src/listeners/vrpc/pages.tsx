import { Elysia, t } from "elysia";
import type { RefusedAnnouncement } from "../../core/announcements.ts";
import { VrpcCallError, type VrpcDirectory } from "./types.ts";
import { AppError, NotFoundError } from "../../lib/errors.ts";
import { field, htmlResponse, isHtmx, jsonResponse, problem, redirect } from "../../lib/http.ts";
import type { Logger } from "../../lib/logger.ts";
import { AgentList, AgentsPage, CallResult, RemoveAgentConfirm } from "./views/agents.tsx";
import { SimplePage } from "../../../views/pages/simple.tsx";
import type { PageKit } from "../../lib/pages.ts";
import { formFields } from "../../lib/bodies.ts";

const statusOf: Record<VrpcCallError["code"], number> = {
  "not-found": 404,
  forbidden: 403,
  invalid: 400,
  offline: 504,
  timeout: 504,
  remote: 502,
  busy: 503,
};

/** AgentSource: what the pages read of the running listener. */
export interface AgentSource {
  /** the directory while the listener runs */
  current(): VrpcDirectory | undefined;
  /** announcements the topic rules refused, newest first */
  refused(): RefusedAnnouncement[];
  log: Logger;
}

/**
 * agentRoutes: the VRPC agents page and `/api/v1/vrpc`: list, call, remove. The web layer mounts them
 * behind the admin guard like every page; `kit` says who is asking.
 */
export function agentRoutes(kit: PageKit, source: AgentSource) {
  const { adminOf } = kit;
  const { log } = source;
  const directory = (): VrpcDirectory => {
    const d = source.current();
    if (!d) throw new AppError("not_found", "the VRPC listener is not running");
    return d;
  };
  const who = (request: Request) => kit.actorOf(request);
  /** call: one call, logged with who called what (not the arguments: they may carry secrets). */
  const call = async (
    request: Request,
    c: { domain: string; agent: string; className: string; functionName: string; instance?: string; args: unknown[] },
  ) => {
    log.info("vrpc call", {
      by: who(request),
      agent: `${c.domain}/${c.agent}`,
      class: c.className,
      function: c.functionName,
      instance: c.instance,
    });
    return directory().call(c);
  };
  const parseArgs = (raw: string | undefined): unknown[] => {
    try {
      const v = JSON.parse(raw?.trim() || "[]");
      if (Array.isArray(v)) return v;
    } catch {
      // answered below
    }
    throw new AppError("validation", 'arguments must be a JSON array, e.g. [21] or ["a", {"b": 1}]', {
      args: "a JSON array",
    });
  };

  /** listProps: what the page and its refreshing list show: the agents, and the announcements refused. */
  const listProps = (request: Request) => ({
    agents: source.current()?.agents() ?? [],
    refused: source.refused(),
    csrfToken: adminOf(request).csrfToken,
    running: source.current() !== undefined,
  });

  return new Elysia({ name: "agent-routes" })
    .get("/agents", ({ request }) => <AgentsPage admin={adminOf(request)} {...listProps(request)} />)
    .get("/agents/list", ({ request }) => <AgentList {...listProps(request)} />)
    .post(
      "/agents/call",
      async ({ request, body }) => {
        const c = {
          domain: field(body, "domain") ?? "",
          agent: field(body, "agent") ?? "",
          className: field(body, "className") ?? "",
          functionName: field(body, "functionName") ?? "",
          instance: field(body, "instance") || undefined,
        };
        let result: { ok: boolean; text: string; status: number };
        try {
          const r = await call(request, { ...c, args: parseArgs(field(body, "args")) });
          result = { ok: true, text: JSON.stringify(r, null, 2) ?? "undefined", status: 200 };
        } catch (err) {
          if (err instanceof VrpcCallError) result = { ok: false, text: err.message, status: statusOf[err.code] };
          else if (err instanceof AppError) result = { ok: false, text: err.message, status: 400 };
          else throw err;
        }
        const fragment = <CallResult ok={result.ok} text={result.text} />;
        // htmx shows the fragment whatever the outcome; a browser without JS gets a page with it.
        if (isHtmx(request)) return htmlResponse(fragment, 200);
        return htmlResponse(
          <AgentsPage admin={adminOf(request)} {...listProps(request)} result={fragment} />,
          result.status,
        );
      },
      { body: formFields("domain", "agent", "className", "functionName", "instance", "args") },
    )
    .post(
      "/agents/:domain/:agent/remove",
      async ({ request, params, body }) => {
        if (field(body, "confirmed") !== "yes") {
          // app.js confirms (naming the agent) and marks the form; without JS this page asks instead.
          const admin = adminOf(request);
          return (
            <SimplePage title="Remove agent?" admin={admin} active="/agents">
              <RemoveAgentConfirm a={params} csrfToken={admin.csrfToken} />
            </SimplePage>
          );
        }
        try {
          await directory().remove(params.domain, params.agent);
        } catch (err) {
          if (err instanceof VrpcCallError)
            throw err.code === "not-found" ? new NotFoundError("agent") : new AppError("conflict", err.message);
          throw err;
        }
        return redirect("/agents");
      },
      { body: formFields("confirmed") },
    )
    .get("/api/v1/vrpc", () => ({ agents: directory().agents() }), {
      detail: { summary: "VRPC agents with their classes and functions", tags: ["vrpc"] },
    })
    .post(
      "/api/v1/vrpc/:domain/:agent/:className/:functionName",
      async ({ request, params, query, body }) => {
        try {
          const result = await call(request, { ...params, instance: query.instance, args: body });
          return jsonResponse({ result: result ?? null });
        } catch (err) {
          if (err instanceof VrpcCallError) return problem(statusOf[err.code], err.code, err.message);
          throw err;
        }
      },
      {
        body: t.Array(t.Unknown(), { maxItems: 100 }),
        query: t.Object({ instance: t.Optional(t.String({ maxLength: 256 })) }),
        detail: {
          summary:
            "Call a static function (or a member function with ?instance=); the body is the JSON array of arguments",
          tags: ["vrpc"],
        },
      },
    );
}
