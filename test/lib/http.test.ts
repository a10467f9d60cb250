import { describe, expect, it } from "bun:test";
import { safeNext } from "../../src/lib/http.ts";
import { crossSite } from "../../src/web/auth.tsx";

describe("safeNext", () => {
  for (const [next, expected] of [
    ["/integrations?page=2", "/integrations?page=2"],
    ["/settings/tokens", "/settings/tokens"],
    [undefined, "/integrations"],
    ["", "/integrations"],
    ["https://evil.example/", "/integrations"],
    ["//evil.example/x", "/integrations"],
    ["/\\evil.example", "/integrations"],
    ["javascript:alert(1)", "/integrations"],
    ["/a b", "/integrations"],
    ["/%0d%0aSet-Cookie:x", "/integrations"], // anything unusual falls back to the list
  ] as const) {
    it(`${JSON.stringify(next)} -> ${expected}`, () => expect(safeNext(next)).toBe(expected));
  }
});

describe("crossSite", () => {
  const req = (origin: string | null, host = "gate.local:8080") =>
    new Request(`http://${host}/integrations`, {
      method: "POST",
      headers: { host, ...(origin === null ? {} : { origin }) },
    });
  for (const [origin, expected] of [
    [null, false], // no Origin (curl, old browsers): the CSRF token decides
    ["http://gate.local:8080", false],
    ["https://evil.example", true],
    ["http://gate.local:9090", true],
    ["null", true], // sandboxed frames and some redirects
    ["not a url", true],
  ] as const) {
    it(`Origin ${origin} -> ${expected ? "refused" : "same site"}`, () =>
      expect(crossSite(req(origin))).toBe(expected));
  }
});
