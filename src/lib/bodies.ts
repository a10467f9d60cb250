import { t } from "elysia";

/**
 * What request bodies may hold. Every route that takes a body declares its fields with
 * `additionalProperties: false`, and the app is built with `normalize: false`: Elysia's default
 * (`normalize: true`) strips fields a schema does not declare *before* validating, so a misspelt or
 * unsupported field (`subscribeACL`, or `subscribeAcl` where a route did not take it) was dropped and
 * the request succeeded with the default instead. Now such a request is a 400 that names the field.
 */

/** noFields: a route that takes no body: none, or an empty object; any field is refused. */
export const noFields = t.Optional(t.Object({}, { additionalProperties: false }));

/**
 * formFields: the fields a page's form posts, nothing else, plus the two every form may carry: the CSRF
 * field `_csrf`, and `confirmed`, which app.js adds to a destructive form the admin confirmed (so a
 * route that asks again without JavaScript does not ask twice). The values
 * are left to the handler, which reads them with `field()` as before (a form sends strings, a repeated
 * name an array); only the names are checked here. An htmx request may come with no body at all.
 */
export function formFields(...names: string[]) {
  return t.Optional(
    t.Object(Object.fromEntries(["_csrf", "confirmed", ...names].map((n) => [n, t.Optional(t.Unknown())])), {
      additionalProperties: false,
    }),
  );
}

/** TypeBox's ValueErrorType.ObjectAdditionalProperties: a property the schema does not declare. */
const additionalProperty = 42;

/** how many unknown names an answer lists, each cut to `nameChars` (10 000 of 60 KB each stay one short answer) */
const namesShown = 10;
const nameChars = 64;

/**
 * unknownFields: from a validation error, the fields the route does not take and the ones it does,
 * or undefined when the error is about something else. Elysia gathers at most 64 errors; this lists
 * at most 10 names, each cut to 64 characters.
 */
export function unknownFields(error: unknown): { unknown: string[]; more: boolean; accepted: string[] } | undefined {
  let all: { type?: number; path?: string; schema?: { properties?: Record<string, unknown> } }[] = [];
  try {
    all = (error as { all?: typeof all }).all ?? [];
  } catch {
    return undefined;
  }
  const extra = all.filter((e) => e.type === additionalProperty && typeof e.path === "string");
  if (extra.length === 0) return undefined;
  const names = extra.map((e) => unescapePointer(e.path!.slice(e.path!.lastIndexOf("/") + 1)));
  const cut = (n: string) => (n.length > nameChars ? `${n.slice(0, nameChars)}…` : n);
  return {
    unknown: [...new Set(names.slice(0, namesShown).map(cut))],
    more: extra.length > namesShown,
    accepted: Object.keys(extra[0]!.schema?.properties ?? {}).filter((n) => n !== "_csrf" && n !== "confirmed"),
  };
}

/** unescapePointer: a JSON Pointer segment back to the property name (RFC 6901 §4). */
function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}
