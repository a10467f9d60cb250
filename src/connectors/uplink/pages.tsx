import { Elysia, t } from "elysia";
import { AppError } from "../../lib/errors.ts";
import { formFields, noFields } from "../../lib/bodies.ts";
import { field, htmlResponse, jsonResponse, redirect } from "../../lib/http.ts";
import type { Logger } from "../../lib/logger.ts";
import type { PageKit } from "../../lib/pages.ts";
import { SimplePage } from "../../../views/pages/simple.tsx";
import type { UplinkManager } from "./manager.ts";
import { defaultInflight, type UplinkInput, type UplinkView } from "./store.ts";
import { RemoveUplinkConfirm, type UplinkFormValues, UplinkList, UplinkPage, UplinksPage } from "./views/uplinks.tsx";

const formNames = [
  "name",
  "urls",
  "username",
  "password",
  "clearPassword",
  "ca",
  "clientCert",
  "clientKey",
  "clientId",
  "protocol",
  "forward",
  "remotePrefix",
  "subscribe",
  "localPrefix",
  "qos",
  "inflight",
  "inventory",
  "enabled",
];

/** lines: a text area's entries (one per line or comma-separated), blanks left out. */
const lines = (v: string | undefined) =>
  (v ?? "")
    .split(/[\n,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

const pem = (v: string | undefined) => (v === undefined ? undefined : v.trim() === "" ? null : v.trim());

/** inputOfForm: the form's fields as the store takes them (an empty password or key keeps the stored one). */
function inputOfForm(body: unknown, editing: boolean): UplinkInput {
  const number = (name: string) => {
    const v = field(body, name)?.trim();
    // decimal digits only, as the CLI: Number() would read "0x10" as 16 and " 7" as 7
    return v === undefined || v === "" ? undefined : /^\d+$/.test(v) ? Number(v) : Number.NaN;
  };
  const password = field(body, "password") ?? "";
  const clientKey = field(body, "clientKey") ?? "";
  return {
    name: field(body, "name")?.trim(),
    urls: lines(field(body, "urls")),
    username: field(body, "username")?.trim() || null,
    password: field(body, "clearPassword") === "yes" ? null : password === "" ? (editing ? undefined : null) : password,
    ca: pem(field(body, "ca")),
    clientCert: pem(field(body, "clientCert")),
    clientKey: clientKey.trim() === "" ? (editing ? undefined : null) : clientKey.trim(),
    clientId: field(body, "clientId")?.trim() || undefined,
    protocol: number("protocol"),
    forward: lines(field(body, "forward")),
    remotePrefix: field(body, "remotePrefix")?.trim() ?? "",
    subscribe: lines(field(body, "subscribe")),
    localPrefix: field(body, "localPrefix")?.trim() ?? "",
    qos: number("qos"),
    inflight: number("inflight"),
    inventory: field(body, "inventory") === "yes",
    enabled: field(body, "enabled") === "yes",
  };
}

function valuesOf(u: UplinkView): UplinkFormValues {
  return {
    name: u.name,
    urls: u.urls.join("\n"),
    username: u.username ?? "",
    ca: u.ca ?? "",
    clientCert: u.clientCert ?? "",
    clientId: u.clientId,
    protocol: String(u.protocol),
    forward: u.forward.join("\n"),
    remotePrefix: u.remotePrefix,
    subscribe: u.subscribe.join("\n"),
    localPrefix: u.localPrefix,
    qos: String(u.qos),
    inflight: String(u.inflight),
    inventory: u.inventory,
    enabled: u.enabled,
  };
}

/** formValues: what was posted, shown again with the errors (never the password or the key). */
function formValues(body: unknown): UplinkFormValues {
  const f = (n: string) => field(body, n) ?? "";
  return {
    name: f("name"),
    urls: f("urls"),
    username: f("username"),
    ca: f("ca"),
    clientCert: f("clientCert"),
    clientId: f("clientId"),
    protocol: f("protocol") || "4",
    forward: f("forward"),
    remotePrefix: f("remotePrefix"),
    subscribe: f("subscribe"),
    localPrefix: f("localPrefix"),
    qos: f("qos") || "1",
    inflight: f("inflight") || String(defaultInflight),
    inventory: f("inventory") === "yes",
    enabled: f("enabled") === "yes",
  };
}

const blank: UplinkFormValues = {
  name: "",
  urls: "",
  username: "",
  ca: "",
  clientCert: "",
  clientId: "",
  protocol: "4",
  forward: "#",
  remotePrefix: "",
  subscribe: "",
  localPrefix: "",
  qos: "1",
  inflight: String(defaultInflight),
  inventory: false,
  enabled: true,
};

// The JSON API's fields: declared once, strict (an unknown field is a 400 naming it, lib/bodies.ts).
const optionalText = (max: number) => t.Optional(t.Union([t.String({ maxLength: max }), t.Null()]));
const filters = t.Array(t.String({ maxLength: 1024 }), { maxItems: 100 });
const apiFields = {
  enabled: t.Optional(t.Boolean()),
  urls: t.Optional(t.Array(t.String({ maxLength: 512 }), { maxItems: 16 })),
  username: optionalText(512),
  password: optionalText(1024),
  ca: optionalText(64 * 1024),
  clientCert: optionalText(64 * 1024),
  clientKey: optionalText(64 * 1024),
  clientId: t.Optional(t.String({ maxLength: 128 })),
  protocol: t.Optional(t.Union([t.Literal(4), t.Literal(5)])),
  forward: t.Optional(filters),
  remotePrefix: t.Optional(t.String({ maxLength: 256 })),
  subscribe: t.Optional(filters),
  localPrefix: t.Optional(t.String({ maxLength: 256 })),
  qos: t.Optional(t.Union([t.Literal(0), t.Literal(1)])),
  // checked by the store (a 400 naming the field, the same range as the CLI and the form): no coercion
  // of strings here ("0x10" was read as 16)
  inflight: t.Optional(t.Unknown()),
  inventory: t.Optional(t.Boolean()),
};

/**
 * uplinkRoutes: the Uplinks page (list, add, edit, enable, disable, remove) and `/api/v1/uplinks`. Every
 * change goes to the admin database, then the running uplinks follow at once. Answers never carry the
 * password or the client key: only whether one is stored.
 */
export function uplinkRoutes(kit: PageKit, manager: UplinkManager, log: Logger) {
  const { adminOf } = kit;
  const store = manager.store;
  const rows = () => {
    const statuses = new Map(manager.statuses().map((s) => [s.name, s]));
    return store.list().map((uplink) => ({ uplink, status: statuses.get(uplink.name) }));
  };
  const listProps = (request: Request) => ({
    rows: rows(),
    csrfToken: adminOf(request).csrfToken,
    outboxProblem: manager.outboxProblem,
  });
  const view = (u: UplinkView) => ({ ...u, status: manager.status(u.name) ?? null });
  const changed = async (request: Request, what: string, name: string) => {
    log.info(`uplink ${what}`, { uplink: name, by: kit.actorOf(request) });
    await manager.sync();
  };
  /** save: the form's change, or the form again with what was wrong (400/409, as the integration form). */
  const save = async (request: Request, body: unknown, name?: string) => {
    const input = inputOfForm(body, name !== undefined);
    try {
      const u = name === undefined ? store.create(input) : store.update(name, input);
      await changed(request, name === undefined ? "created" : "changed", u.name);
      return redirect("/uplinks");
    } catch (err) {
      if (!(err instanceof AppError) || (err.code !== "validation" && err.code !== "conflict")) throw err;
      const old = name === undefined ? undefined : store.get(name);
      const errors = Object.keys(err.fields).length ? err.fields : { form: err.message };
      return htmlResponse(
        <UplinkPage
          admin={adminOf(request)}
          values={formValues(body)}
          errors={errors}
          editing={old && { name: old.name, passwordSet: old.passwordSet, clientKeySet: old.clientKeySet }}
        />,
        err.code === "conflict" ? 409 : 400,
      );
    }
  };

  return new Elysia({ name: "uplink-routes" })
    .get("/uplinks", ({ request }) => <UplinksPage admin={adminOf(request)} {...listProps(request)} />)
    .get("/uplinks/list", ({ request }) => <UplinkList {...listProps(request)} />)
    .get("/uplinks/new", ({ request }) => <UplinkPage admin={adminOf(request)} values={blank} />)
    .post("/uplinks", ({ request, body }) => save(request, body), { body: formFields(...formNames) })
    .get("/uplinks/:name/edit", ({ request, params }) => {
      const u = store.get(params.name);
      return (
        <UplinkPage
          admin={adminOf(request)}
          values={valuesOf(u)}
          editing={{ name: u.name, passwordSet: u.passwordSet, clientKeySet: u.clientKeySet }}
        />
      );
    })
    .post("/uplinks/:name", ({ request, params, body }) => save(request, body, params.name), {
      body: formFields(...formNames),
    })
    .post(
      "/uplinks/:name/:action",
      async ({ request, params, body }) => {
        const name = params.name;
        if (params.action === "enable" || params.action === "disable") {
          store.setEnabled(name, params.action === "enable");
          await changed(request, `${params.action}d`, name);
          return redirect("/uplinks");
        }
        if (params.action !== "remove") throw new AppError("not_found", "no such action");
        const u = store.get(name);
        if (field(body, "confirmed") !== "yes") {
          // app.js confirms (naming the uplink) and marks the form; without JS this page asks instead.
          const admin = adminOf(request);
          return (
            <SimplePage title="Remove uplink?" admin={admin} active="/uplinks">
              <RemoveUplinkConfirm
                name={u.name}
                queued={manager.status(u.name)?.queued ?? 0}
                csrfToken={admin.csrfToken}
              />
            </SimplePage>
          );
        }
        store.remove(name);
        await changed(request, "removed", name);
        return redirect("/uplinks");
      },
      { body: formFields() },
    )
    .get("/api/v1/uplinks", () => jsonResponse({ items: store.list().map(view) }), {
      detail: { summary: "Uplinks with their live status (never a password or client key)", tags: ["uplinks"] },
    })
    .post(
      "/api/v1/uplinks",
      async ({ request, body }) => {
        const u = store.create(body as UplinkInput);
        await changed(request, "created", u.name);
        return jsonResponse({ uplink: view(u) }, 201);
      },
      {
        body: t.Object(
          {
            ...apiFields,
            name: t.String({ maxLength: 64 }),
            urls: t.Array(t.String({ maxLength: 512 }), { maxItems: 16 }),
            forward: filters,
          },
          { additionalProperties: false },
        ),
        detail: { summary: "Add an uplink", tags: ["uplinks"] },
      },
    )
    .get("/api/v1/uplinks/:name", ({ params }) => jsonResponse(view(store.get(params.name))), {
      detail: { summary: "One uplink with its live status", tags: ["uplinks"] },
    })
    .patch(
      "/api/v1/uplinks/:name",
      async ({ request, params, body }) => {
        const u = store.update(params.name, body as UplinkInput);
        await changed(request, "changed", u.name);
        return jsonResponse(view(u));
      },
      {
        body: t.Object(
          { ...apiFields, name: t.Optional(t.String({ maxLength: 64 })) },
          { additionalProperties: false },
        ),
        detail: {
          summary: "Change an uplink (left out: unchanged; null clears a password, key or certificate)",
          tags: ["uplinks"],
        },
      },
    )
    .delete(
      "/api/v1/uplinks/:name",
      async ({ request, params, set }) => {
        store.remove(params.name);
        await changed(request, "removed", params.name);
        set.status = 204;
        return "";
      },
      { body: noFields, detail: { summary: "Remove an uplink and delete its queue", tags: ["uplinks"] } },
    );
}
