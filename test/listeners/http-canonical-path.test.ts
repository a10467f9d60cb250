import { describe, expect, it } from "bun:test";
import { canonicalPath, maxPathLength, rules, type PathRefusal } from "../../src/listeners/http/canonical-path.ts";

/**
 * The forward-auth path canonicaliser, table-driven: every original URI either has exactly one
 * decoded path (matched as a topic) or is refused with a named reason. The hostile rows are tricks
 * that made a guard and a service disagree somewhere (the issue's own list first).
 */
const hostile: [uri: string, reason: PathRefusal][] = [
  // the issue's tricks, allowed for `/dashboard/#` or past a deny `/admin/#` before
  ["/dashboard%2f..%2fadmin%2fsecret", "encoded-separator"],
  ["/dashboard/x%2F..%2F..%2Fother/secret.txt", "encoded-separator"],
  ["//admin/secret", "not-origin-form"],
  ["/x//admin/secret", "empty-segment"],
  ["/admin./secret", "trailing-dot"],
  ["/admin;x/secret", "path-parameter"],
  // not origin-form
  ["http://upstream/admin/secret", "not-origin-form"],
  ["https://evil.example/dashboard/x", "not-origin-form"],
  ["//evil.example/dashboard/x", "not-origin-form"],
  ["*", "not-origin-form"],
  ["dashboard/x", "not-origin-form"],
  ["?x=1", "not-origin-form"],
  ["%2fadmin/secret", "not-origin-form"],
  ["\\admin\\secret", "not-origin-form"],
  // dot segments, plain and encoded
  ["/dashboard/../admin/secret", "dot-segment"],
  ["/dashboard/./x", "dot-segment"],
  ["/dashboard/%2e%2e/admin/secret", "dot-segment"],
  ["/dashboard/%2E%2E/admin/secret", "dot-segment"],
  ["/dashboard/.%2e/admin/secret", "dot-segment"],
  ["/dashboard/%2e/x", "dot-segment"],
  ["/dashboard/..", "dot-segment"],
  ["/dashboard/x/..?y=1", "dot-segment"],
  // empty levels
  ["/dashboard//x", "empty-segment"],
  ["/dashboard/x//", "empty-segment"],
  // separators spelled otherwise
  ["/dashboard\\..\\admin\\secret", "backslash"],
  ["/dashboard/x%5c..%5cadmin", "encoded-separator"],
  ["/dashboard/x%5C..%5Cadmin", "encoded-separator"],
  ["/dashboard%2Fx", "encoded-separator"],
  ["/dashboard/%ef%bc%8fadmin", "lookalike"], // fullwidth solidus
  ["/dashboard/%ef%bc%8e%ef%bc%8e/admin", "lookalike"], // fullwidth full stops
  ["/dashboard/%e2%80%a4%e2%80%a4/admin", "lookalike"], // one dot leader
  ["/dashboard/%ef%b9%94x", "lookalike"], // small semicolon
  // path parameters
  ["/dashboard;jsessionid=1/x", "path-parameter"],
  ["/admin/secret;.css", "path-parameter"],
  ["/dashboard/..;/admin/secret", "path-parameter"],
  ["/dashboard%3b/x", "path-parameter"],
  // escapes
  ["/dashboard/%zz", "bad-escape"],
  ["/dashboard/%2", "bad-escape"],
  ["/dashboard/%", "bad-escape"],
  ["/dashboard/%u002e%u002e/admin", "bad-escape"],
  ["/dashboard/%c0%ae%c0%ae/admin", "not-utf8"], // overlong "."
  ["/dashboard/%c0%af", "not-utf8"], // overlong "/"
  ["/dashboard/%ff", "not-utf8"],
  ["/dashboard/%ed%a0%80", "not-utf8"], // a lone surrogate
  ["/dashboard/%252e%252e/admin", "double-encoding"],
  ["/dashboard%252fadmin", "double-encoding"],
  ["/dashboard/x%3f/admin", "encoded-delimiter"],
  ["/dashboard/x%23/admin", "encoded-delimiter"],
  // control characters, raw and decoded
  ["/dashboard/x%00/admin", "control-character"],
  ["/dashboard/x%0d%0aX-Injected:%201", "control-character"],
  ["/dashboard/x%09", "control-character"],
  ["/dashboard/x%7f", "control-character"],
  ["/dashboard/x%c2%85", "control-character"], // NEL
  ["/dashboard/x\u0000/admin", "raw-character"],
  ["/dashboard/x\r\nHost: evil", "raw-character"],
  ["/dashboard/x y", "raw-character"],
  ["/dashboard/caf\u00e9", "raw-character"],
  ["/dashboard/x?y=\u0001", "raw-character"],
  ['/dashboard/"x"', "raw-character"],
  ["/dashboard/<x>", "raw-character"],
  ["/dashboard/x|y", "raw-character"],
  ["/dashboard/{x}", "raw-character"],
  ["/dashboard/`x`", "raw-character"],
  ["/dashboard/[x]", "raw-character"],
  // fragments and trailing dots or spaces
  ["/dashboard/x#/../../admin", "fragment"],
  ["/dashboard/x?y#z", "fragment"],
  ["/admin%2e/secret", "trailing-dot"],
  ["/admin%20/secret", "trailing-dot"],
  ["/dashboard/x...", "trailing-dot"],
  // size
  [`/dashboard/${"a".repeat(maxPathLength)}`, "too-long"],
  [`/${"a/".repeat(maxPathLength)}`, "too-long"],
];

const good: [uri: string, path: string][] = [
  ["/", "/"],
  ["/dashboard", "/dashboard"],
  ["/dashboard/", "/dashboard/"],
  ["/dashboard/line1", "/dashboard/line1"],
  ["/dashboard/line1?x=../../admin&y=%2f", "/dashboard/line1"], // the query is not matched
  ["/dashboard/line%201", "/dashboard/line 1"],
  ["/dashboard/caf%C3%A9", "/dashboard/café"],
  ["/dashboard/%E6%97%A5%E6%9C%AC", "/dashboard/日本"],
  ["/dashboard/a+b", "/dashboard/a+b"],
  ["/dashboard/v1.2/report.pdf", "/dashboard/v1.2/report.pdf"],
  ["/dashboard/.well-known/x", "/dashboard/.well-known/x"],
  ["/dashboard/...x", "/dashboard/...x"],
  ["/ADMIN/secret", "/ADMIN/secret"], // case is kept: matched case-sensitively
  ["/api/items:batchGet", "/api/items:batchGet"],
  ["/dashboard/~user/(1),!$&'*=@", "/dashboard/~user/(1),!$&'*=@"],
  ["/dashboard/%41%42", "/dashboard/AB"],
  [`/${"a".repeat(maxPathLength - 1)}`, `/${"a".repeat(maxPathLength - 1)}`],
];

describe("canonicalPath", () => {
  it(`has at least 40 hostile rows (${hostile.length}) and names a rule for each reason it gives`, () => {
    expect(hostile.length).toBeGreaterThanOrEqual(40);
    const reasons = new Set(rules.map((r) => r.reason));
    for (const [, reason] of hostile) if (reason !== "not-utf8") expect(reasons.has(reason)).toBe(true);
  });

  for (const [uri, reason] of hostile) {
    it(`refuses ${JSON.stringify(uri.length > 80 ? `${uri.slice(0, 40)}…(${uri.length})` : uri)}: ${reason}`, () => {
      expect(canonicalPath(uri)).toEqual({ ok: false, reason });
    });
  }

  for (const [uri, path] of good) {
    it(`reads ${JSON.stringify(uri.length > 80 ? `${uri.slice(0, 40)}…` : uri)} as one path`, () => {
      expect(canonicalPath(uri)).toEqual({ ok: true, path });
    });
  }

  it("decodes exactly once: the decoded path fed back in is refused or unchanged, never read differently", () => {
    for (const [uri] of good) {
      const first = canonicalPath(uri);
      if (!first.ok) throw new Error(uri);
      const again = canonicalPath(first.path);
      if (again.ok) expect(again.path).toBe(first.path);
    }
  });
});
