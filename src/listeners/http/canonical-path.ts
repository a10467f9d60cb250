/**
 * canonical-path: the one path an original request URI names, or the reason it names more than one.
 *
 * A reverse proxy asks whether a request may pass; the guarded service then serves the URI in its own
 * way: one decodes `%2F` before splitting, another removes `..` first, a third drops `;params` or a
 * Windows file system ignores a trailing dot. Whenever two readings of a URI exist, the reading we
 * judge and the reading the service serves can differ, and a permission check on one opens the other.
 * So the URI's path is decoded exactly once, and anything a service could read in another way is
 * refused instead of being "normalised" into a guess. What is left has one reading: the decoded path,
 * matched case-sensitively as a topic name (`/dashboard/line1` is levels "", "dashboard", "line1").
 *
 * The query string is not part of the match (it is checked only for characters that cannot be in a
 * request line). No protocol here: this could live in lib/.
 */

/** PathRefusal: why an original URI was refused; also the metric label, so a bounded set. */
export type PathRefusal =
  | "too-long"
  | "not-origin-form"
  | "fragment"
  | "raw-character"
  | "backslash"
  | "path-parameter"
  | "bad-escape"
  | "encoded-separator"
  | "not-utf8"
  | "control-character"
  | "double-encoding"
  | "encoded-delimiter"
  | "lookalike"
  | "empty-segment"
  | "dot-segment"
  | "trailing-dot";

export type CanonicalPath = { ok: true; path: string } | { ok: false; reason: PathRefusal };

/** maxPathLength: the longest raw path judged (the query may be longer, within the header limit). */
export const maxPathLength = 2048;

interface Rule {
  reason: PathRefusal;
  /** what the rule reads: the whole URI as sent, its raw path, the decoded path, or each decoded segment */
  on: "uri" | "raw" | "decoded" | "segment";
  test(text: string, index: number, count: number): boolean;
  /** the rule in words (README and test names) */
  why: string;
}

// RFC 3986 pchar plus "/", without ";" (path parameters) and with "%" (escapes are checked apart).
const rawPathChars = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$/;
const separatorLike = /[/\\.;%?#]/g;

/** rules: applied in order; the first that matches names the refusal. */
export const rules: readonly Rule[] = [
  {
    reason: "too-long",
    on: "raw",
    test: (p) => p.length > maxPathLength,
    why: `a path longer than ${maxPathLength} characters`,
  },
  {
    reason: "not-origin-form",
    on: "raw",
    test: (p) => !p.startsWith("/") || p.startsWith("//"),
    why: "not a path starting with one `/`: absolute URIs, `//host/...`, `*`, relative or empty",
  },
  { reason: "fragment", on: "uri", test: (u) => u.includes("#"), why: "a `#` (no request line carries a fragment)" },
  {
    reason: "raw-character",
    on: "uri",
    test: (u) => /[^\x21-\x7e]/.test(u),
    why: "a space, control or non-ASCII byte sent unencoded, anywhere in the URI",
  },
  {
    reason: "backslash",
    on: "raw",
    test: (p) => p.includes("\\"),
    why: "a `\\` (a path separator to Windows servers)",
  },
  {
    reason: "path-parameter",
    on: "raw",
    test: (p) => p.includes(";"),
    why: "a `;` (path parameters: Tomcat, Jetty and Spring drop what follows)",
  },
  {
    reason: "raw-character",
    on: "raw",
    test: (p) => !rawPathChars.test(p),
    why: "a character outside RFC 3986's path characters sent unencoded (`\"`, `<`, `|`, `{`, ...)",
  },
  {
    reason: "bad-escape",
    on: "raw",
    test: (p) => /%(?![0-9A-Fa-f]{2})/.test(p),
    why: "a `%` not followed by two hex digits",
  },
  {
    reason: "encoded-separator",
    on: "raw",
    test: (p) => /%(2f|5c)/i.test(p),
    why: "an encoded `/` or `\\` (`%2F`, `%5C`): one level to us, two to a service that decodes first",
  },
  {
    reason: "control-character",
    on: "decoded",
    test: (d) => /[\u0000-\u001f\u007f-\u009f]/.test(d),
    why: "NUL or another control character after decoding",
  },
  {
    reason: "double-encoding",
    on: "decoded",
    test: (d) => d.includes("%"),
    why: "a `%` after decoding (`%252e`): a service that decodes twice reads something else",
  },
  { reason: "path-parameter", on: "decoded", test: (d) => d.includes(";"), why: "a `;` after decoding (`%3B`)" },
  {
    reason: "encoded-delimiter",
    on: "decoded",
    test: (d) => d.includes("?") || d.includes("#"),
    why: "a `?` or `#` after decoding (`%3F`, `%23`): a service that decodes first ends the path there",
  },
  {
    reason: "lookalike",
    on: "decoded",
    // only non-ASCII text can change under NFKC, so ASCII paths skip the normalisation
    test: (d) =>
      /[^\x00-\x7f]/.test(d) &&
      (d.normalize("NFKC").match(separatorLike)?.length ?? 0) !== (d.match(separatorLike)?.length ?? 0),
    why: "a character Unicode compatibility folding turns into `/`, `\\`, `.`, `;`, `%`, `?` or `#` (`／`, `．`, `﹔`)",
  },
  {
    reason: "empty-segment",
    on: "segment",
    test: (s, i, n) => s === "" && i < n - 1,
    why: "an empty level (`//`) after decoding; a trailing `/` is fine",
  },
  {
    reason: "dot-segment",
    on: "segment",
    test: (s) => s === "." || s === "..",
    why: "a `.` or `..` level after decoding (`%2e%2e` too)",
  },
  {
    reason: "trailing-dot",
    on: "segment",
    test: (s) => s.endsWith(".") || s.endsWith(" "),
    why: "a level ending in `.` or a space (`/admin./x`: Windows drops them)",
  },
];

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** decodeOnce: percent-decoding of the whole path as UTF-8 bytes; undefined when they are not UTF-8. */
function decodeOnce(raw: string): string | undefined {
  if (!raw.includes("%")) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === "%") {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(raw.charCodeAt(i)); // ASCII only: the raw rules ran first
  }
  try {
    return utf8.decode(Uint8Array.from(bytes)); // overlong forms (`%c0%af`) and lone surrogates fail here
  } catch {
    return undefined;
  }
}

/** canonicalPath: the decoded path of an original request URI (origin-form, query ignored), or why not. */
export function canonicalPath(uri: string): CanonicalPath {
  const q = uri.indexOf("?");
  const raw = q < 0 ? uri : uri.slice(0, q);
  for (const rule of rules) {
    if (rule.on === "uri" && rule.test(uri, 0, 1)) return { ok: false, reason: rule.reason };
    if (rule.on === "raw" && rule.test(raw, 0, 1)) return { ok: false, reason: rule.reason };
  }
  const decoded = decodeOnce(raw);
  if (decoded === undefined) return { ok: false, reason: "not-utf8" };
  for (const rule of rules)
    if (rule.on === "decoded" && rule.test(decoded, 0, 1)) return { ok: false, reason: rule.reason };
  const segments = decoded.split("/").slice(1);
  for (const rule of rules) {
    if (rule.on !== "segment") continue;
    for (let i = 0; i < segments.length; i++)
      if (rule.test(segments[i]!, i, segments.length)) return { ok: false, reason: rule.reason };
  }
  return { ok: true, path: decoded };
}
