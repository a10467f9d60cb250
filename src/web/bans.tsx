import { Elysia, t } from "elysia";
import { BanList, banKinds, maxBanMinutes, maxBans, type Ban, type BanKind } from "../core/bans.ts";
import type { Core } from "../core/index.ts";
import { formFields } from "../lib/bodies.ts";
import { AppError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { field, htmlResponse, problem, redirect, remoteOf } from "../lib/http.ts";
import { BansPage } from "../../views/pages/bans.tsx";
import { adminOf } from "./auth.tsx";

/** banView: a ban as the API shows it (times as ISO 8601). */
function banView(b: Ban) {
  return {
    id: b.id,
    kind: b.kind,
    value: b.value,
    createdAt: new Date(b.createdAt).toISOString(),
    expiresAt: new Date(b.expiresAt).toISOString(),
    createdBy: b.createdBy,
    hits: b.hits,
    lastHitAt: b.lastHitAt === null ? null : new Date(b.lastHitAt).toISOString(),
  };
}

/** OwnAddressError: the ban would close the HTTP port (this admin page) to the admin asking for it. */
class OwnAddressError extends AppError {
  constructor(remote: string) {
    super(
      "conflict",
      `this ban covers your own address (${remote}): the admin page would be closed to you until it ends; confirm to ban it anyway`,
      { address: "covers your own address" },
    );
  }
}

/** parseBanId: a ban id from a path (404 for anything that is not one). */
function parseBanId(raw: string): number {
  const id = Number(raw);
  if (!/^[0-9]{1,12}$/.test(raw) || !Number.isSafeInteger(id) || id <= 0) throw new NotFoundError("ban");
  return id;
}

/**
 * addBan: the one path of the page and the API. An address ban that covers the address the admin is
 * asking from would close the admin page to them (the HTTP port refuses the address at accept): it needs
 * `confirmOwnAddress`. Behind a trusted proxy the address compared is the client's, not the proxy's.
 */
function addBan(core: Core, request: Request, kind: BanKind, value: string, minutes: number, confirmed: boolean): Ban {
  const remote = remoteOf(request);
  if (kind === "address" && !confirmed && BanList.covers(value, remote)) throw new OwnAddressError(remote);
  return core.bans.add({ kind, value, minutes });
}

/** banRoutes: the Bans page and `/api/v1/bans` (same core calls, same guard as every admin route). */
export function banRoutes(core: Core) {
  const page = (request: Request, extra: Partial<Parameters<typeof BansPage>[0]> = {}) => (
    <BansPage admin={adminOf(request)} bans={core.bans.list()} max={maxBans} remote={remoteOf(request)} {...extra} />
  );
  return (
    new Elysia({ name: "bans" })
      .get("/bans", ({ request }) => page(request))
      .post(
        "/bans",
        ({ request, body }) => {
          // the failed-logins button sends `target` ("address:192.0.2.7"); the form sends kind and value
          const target = field(body, "target");
          const sep = target?.indexOf(":") ?? -1;
          const kind = (target && sep > 0 ? target.slice(0, sep) : (field(body, "kind") ?? "")) as BanKind;
          const value = target && sep > 0 ? target.slice(sep + 1) : (field(body, "value") ?? "");
          const minutesText = field(body, "minutes") ?? "";
          const draft = { kind, value, minutes: minutesText };
          try {
            if (!banKinds.includes(kind))
              throw new ValidationError({ kind: "ban an address, a client id or a username" });
            if (!/^[0-9]{1,6}$/.test(minutesText))
              throw new ValidationError({ minutes: `a whole number of minutes from 1 to ${maxBanMinutes}` });
            addBan(core, request, kind, value.trim(), Number(minutesText), field(body, "confirmOwnAddress") === "yes");
            return redirect("/bans");
          } catch (err) {
            if (!(err instanceof AppError) || (err.code !== "validation" && err.code !== "conflict")) throw err;
            return htmlResponse(
              page(request, { error: err.message, draft, ownAddress: err instanceof OwnAddressError }) as string,
              err.code === "conflict" ? 409 : 400,
            );
          }
        },
        { body: formFields("kind", "value", "minutes", "target", "confirmOwnAddress") },
      )
      .post(
        "/bans/:id/remove",
        ({ params }) => {
          core.bans.remove(parseBanId(params.id));
          return redirect("/bans");
        },
        { body: formFields() },
      )
      // ---------------------------------------------------------------- the API
      .get("/api/v1/bans", () => ({ items: core.bans.list().map(banView), max: maxBans }), {
        detail: { summary: "Live bans, soonest to expire first", tags: ["bans"] },
      })
      .post(
        "/api/v1/bans",
        ({ request, body, set }) => {
          const given = banKinds.filter((k) => body[k] !== undefined);
          if (given.length !== 1)
            return problem(400, "invalid_request", "name exactly one of address, clientId or username");
          const kind = given[0]!;
          const ban = addBan(core, request, kind, body[kind]!, body.minutes, body.confirmOwnAddress === true);
          set.status = 201;
          return banView(ban);
        },
        {
          body: t.Object(
            {
              address: t.Optional(t.String({ maxLength: 64 })),
              clientId: t.Optional(t.String({ maxLength: 256 })),
              username: t.Optional(t.String({ maxLength: 256 })),
              minutes: t.Integer({ minimum: 1, maximum: maxBanMinutes }),
              confirmOwnAddress: t.Optional(t.Boolean()),
            },
            { additionalProperties: false },
          ),
          detail: {
            summary:
              "Ban an address or CIDR block, a client id or a username for `minutes`; matching sessions are dropped",
            tags: ["bans"],
          },
        },
      )
      .delete(
        "/api/v1/bans/:id",
        ({ params, set }) => {
          core.bans.remove(parseBanId(params.id));
          set.status = 204;
          return "";
        },
        {
          body: t.Optional(t.Object({}, { additionalProperties: false })),
          detail: { summary: "Lift a ban", tags: ["bans"] },
        },
      )
  );
}
