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
  const req = (origin: string | null, host = "gate.local:8080", referer?: string) =>
    new Request(`http://${host}/integrations`, {
      method: "POST",
      headers: { host, ...(origin === null ? {} : { origin }), ...(referer ? { referer } : {}) },
    });
  for (const [origin, expected] of [
    [null, true], // neither Origin nor Referer: not shown to come from this site (browsers send Origin on POST)
    ["http://gate.local:8080", false],
    ["https://evil.example", true],
    ["http://gate.local:9090", true],
    ["null", true], // sandboxed frames and some redirects
    ["not a url", true],
  ] as const) {
    it(`Origin ${origin} -> ${expected ? "refused" : "same site"}`, () =>
      expect(crossSite(req(origin))).toBe(expected));
  }
  for (const [origin, referer, expected] of [
    [null, "http://gate.local:8080/integrations?page=2", false], // OWASP: no Origin, the Referer decides
    [null, "https://evil.example/gate.local:8080/", true],
    [null, "not a url", true],
    ["https://evil.example", "http://gate.local:8080/integrations", true], // an Origin is never overruled
    ["null", "http://gate.local:8080/integrations", true],
  ] as const) {
    it(`Origin ${origin}, Referer ${referer} -> ${expected ? "refused" : "same site"}`, () =>
      expect(crossSite(req(origin, "gate.local:8080", referer))).toBe(expected));
  }
});
