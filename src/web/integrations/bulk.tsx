import { Elysia } from "elysia";
import type { Core } from "../../core/index.ts";
import { statusOf, type Integration } from "../../core/types.ts";
import { formFields } from "../../lib/bodies.ts";
import { AppError } from "../../lib/errors.ts";
import { field, htmlResponse, redirect } from "../../lib/http.ts";
import { BulkConfirmPage, type BulkSelection } from "../../../views/pages/bulk.tsx";
import { SimplePage } from "../../../views/pages/simple.tsx";
import { adminOf } from "../auth.tsx";
import { listReturn, parseFilterList, parseListQuery } from "./query.ts";

/** all: every value of a form field that may come once, several times, or not at all. */
function all(body: unknown, name: string): string[] {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === "string");
}

const plural = (n: number) => `${n} integration${n === 1 ? "" : "s"}`;

/** changes: the bulk actions that change something, what they say before and after. */
const changes = {
  activate: {
    done: "activated",
    title: (n: number) => `Activate ${plural(n)}?`,
    consequence: "They may log in again with their passwords.",
    button: "Activate",
  },
  deactivate: {
    done: "deactivated",
    title: (n: number) => `Deactivate ${plural(n)}?`,
    consequence: "Their connected clients are disconnected at once and they cannot log in until activated.",
    button: "Deactivate",
  },
  delete: {
    done: "deleted",
    title: (n: number) => `Delete ${plural(n)}?`,
    consequence: "They are removed and their connected clients dropped at once; they cannot log in again.",
    button: "Delete",
  },
  permissions: {
    done: "permissions-set",
    title: (n: number) => `Set the topic permissions of ${plural(n)}`,
    consequence: "Their connected clients reconnect under the new permissions.",
    button: "Set permissions",
  },
} as const;
type Change = keyof typeof changes;
const isChange = (a: string): a is Change => Object.hasOwn(changes, a);

const doneWords: Record<string, string> = {
  activated: "Activated",
  deactivated: "Deactivated",
  deleted: "Deleted",
  "permissions-set": "Set the topic permissions of",
};

/** bulkNotice: what a finished bulk action says on the list it returns to (`?done=deactivated&n=500`). */
export function bulkNotice(query: Record<string, string | undefined>): string | undefined {
  const word = query.done !== undefined && Object.hasOwn(doneWords, query.done) ? doneWords[query.done] : undefined;
  const n = Number(query.n);
  return word && Number.isSafeInteger(n) && n >= 0 ? `${word} ${plural(n)}.` : undefined;
}

/** csvCell: RFC 4180 quoting; a text a spreadsheet would run as a formula (=, +, -, @, tab, CR) starts with `'`. */
function csvCell(value: string, guard: boolean): string {
  const v = guard && /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/** exportRow: an integration as the exports carry it (no secrets: only a hash is stored, and it is not exported). */
function exportRow(i: Integration, online: boolean) {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    id: i.id,
    username: i.username,
    type: i.type,
    description: i.description,
    active: i.active,
    status: statusOf(i.active, online),
    publishAcl: i.publishAcl,
    subscribeAcl: i.subscribeAcl,
    denyPublishAcl: i.denyPublishAcl,
    denySubscribeAcl: i.denySubscribeAcl,
    createdAt: iso(i.createdAt),
    lastLoginAt: iso(i.lastLoginAt),
    lastLoginClientId: i.lastLoginClientId,
    lastLoginRemote: i.lastLoginRemote,
  };
}

/** csvColumns: the CSV export's header; `type,username,description` make it a file `gatehouse integrations import` takes. */
const csvColumns = [
  "id",
  "username",
  "type",
  "description",
  "active",
  "status",
  "publishAcl",
  "subscribeAcl",
  "denyPublishAcl",
  "denySubscribeAcl",
  "createdAt",
  "lastLoginAt",
  "lastLoginClientId",
  "lastLoginRemote",
] as const;

/**
 * bulkRoutes: `POST /integrations/bulk`, a plain form (it works without JavaScript): the rows ticked
 * (`ids`) or every integration the filter matches (`all=1` with `q`, `type`, `status`) -> activate,
 * deactivate, delete, set permissions (one transaction, one activity entry per integration, one
 * confirmation naming the count), or export as CSV or JSON.
 */
export function bulkRoutes(core: Core) {
  const { credentials, sessions } = core;
  const selectionOf = (body: unknown): { selection: BulkSelection; ids: number[] } => {
    if (field(body, "all") === "1") {
      const filter: Record<string, string> = {};
      for (const name of ["q", "type", "status"]) {
        const v = field(body, name);
        if (v) filter[name] = v;
      }
      const q = parseListQuery(filter);
      const ids = credentials.matchingIds(q, sessions.onlineIds(), q.q ? sessions.matching(q.q) : undefined);
      return { selection: { all: true, ids: [], filter }, ids };
    }
    const ids = [
      ...new Set(
        all(body, "ids")
          .map(Number)
          .filter((n) => Number.isSafeInteger(n) && n > 0),
      ),
    ];
    return { selection: { all: false, ids, filter: {} }, ids };
  };
  const refuse = (request: Request, back: string, title: string, text: string) =>
    htmlResponse(
      <SimplePage title={title} admin={adminOf(request)}>
        <p safe>{text}</p>
        <p>
          <a href={back}>Back to integrations</a>
        </p>
      </SimplePage>,
      400,
    );

  return new Elysia({ name: "integration-bulk" }).post(
    "/integrations/bulk",
    ({ request, body }) => {
      const back = listReturn(request, body);
      const action = field(body, "action") ?? "";
      const { selection, ids } = selectionOf(body);
      if (action !== "export-csv" && action !== "export-json" && !isChange(action))
        return refuse(request, back, "Choose an action", "Choose what to do with the selected integrations.");
      if (ids.length === 0)
        return refuse(
          request,
          back,
          "Nothing selected",
          "No integration was selected: tick rows, or all that match the filter.",
        );
      const integrations = ids.map((id) => credentials.get(id)).filter((i): i is Integration => i !== undefined);

      if (action === "export-csv" || action === "export-json") {
        const online = sessions.onlineIds();
        const rows = integrations.sort((a, b) => a.id - b.id).map((i) => exportRow(i, online.has(i.id)));
        core.activity.record("integrations.exported", plural(rows.length), action.slice("export-".length));
        const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
        const line = (r: ReturnType<typeof exportRow>) =>
          csvColumns
            .map((c) => {
              const v = r[c];
              const text = Array.isArray(v) ? v.join(" ") : v === null ? "" : String(v);
              return csvCell(text, c !== "username" && c !== "type");
            })
            .join(",");
        const csv = () => `${[csvColumns.join(","), ...rows.map(line)].join("\r\n")}\r\n`;
        const [body, type, ext] =
          action === "export-csv"
            ? [csv(), "text/csv; charset=utf-8", "csv"]
            : [JSON.stringify(rows, null, 2), "application/json; charset=utf-8", "json"];
        return new Response(body, {
          headers: {
            "content-type": type,
            "content-disposition": `attachment; filename="gatehouse-integrations-${stamp}.${ext}"`,
            "cache-control": "no-store",
          },
        });
      }

      const change = changes[action];
      const draft = {
        publishAcl: field(body, "publishAcl"),
        subscribeAcl: field(body, "subscribeAcl"),
        denyPublishAcl: field(body, "denyPublishAcl"),
        denySubscribeAcl: field(body, "denySubscribeAcl"),
      };
      // a list left empty stays as it is; `parseFilterList` makes "" an empty list, which means "unchanged" here
      const patch = Object.fromEntries(
        Object.entries(draft)
          .map(([k, v]) => [k, v?.trim() ? parseFilterList(v) : undefined])
          .filter(([, v]) => v !== undefined),
      );
      const ask = (errors?: Record<string, string>) =>
        htmlResponse(
          <BulkConfirmPage
            admin={adminOf(request)}
            action={action}
            title={change.title(integrations.length)}
            consequence={change.consequence}
            button={change.button}
            count={integrations.length}
            names={integrations.slice(0, 10).map((i) => i.username)}
            selection={selection}
            back={back}
            errors={errors}
            draft={draft}
          />,
          errors ? 400 : 200,
        );
      // Without JavaScript there is no confirm(): the first post asks on a page naming the count.
      if (field(body, "confirmed") !== "yes") return ask();
      if (action === "permissions" && Object.keys(patch).length === 0)
        return ask({ form: "give at least one list of topic filters" });
      let changed: Integration[];
      try {
        // one transaction for the integrations, one for their activity entries (one each)
        changed = core.activity.batch(() => {
          switch (action) {
            case "activate":
              return credentials.setActiveMany(ids, true);
            case "deactivate":
              return credentials.setActiveMany(ids, false);
            case "delete":
              return credentials.removeMany(ids);
            case "permissions":
              return credentials.setPermissionsMany(ids, patch);
          }
        });
      } catch (err) {
        if (err instanceof AppError && err.code === "validation") return ask(err.fields);
        throw err;
      }
      const to = new URL(back, "http://x");
      to.searchParams.set("done", change.done);
      to.searchParams.set("n", String(changed.length));
      return redirect(to.pathname + to.search);
    },
    {
      body: formFields(
        "action",
        "ids",
        "all",
        "q",
        "type",
        "status",
        "back",
        "publishAcl",
        "subscribeAcl",
        "denyPublishAcl",
        "denySubscribeAcl",
      ),
    },
  );
}
