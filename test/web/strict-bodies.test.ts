import { afterAll, describe, expect, it } from "bun:test";
import { request as httpRequest } from "node:http";
import { cleanupTempDirs, testApp, testWeb } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";

afterAll(cleanupTempDirs);

const unknown = "not_a_field_of_this_route";
const bodyless = new Set(["GET", "HEAD"]);

/** pathFor: a route's path with its parameters filled (validation answers before any handler looks them up). */
function pathFor(path: string): string {
  return path
    .replace(":thumbprint", "a".repeat(40))
    .replace(/:id\b/, "1")
    .replace(/:[A-Za-z]+/g, "x");
}

describe("request bodies: a field a route does not take is a 400 naming it", () => {
  it("on every route of the app that takes a body (from its route list), as JSON and as a form, before the route acts", async () => {
    const { web, core, request } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "untouched" });
    const before = JSON.stringify({
      integrations: core.credentials.list({}, new Set()).rows,
      tokens: core.admins.listApiTokens(),
      admins: core.admins.list(),
    });
    const routes = web.routes.filter((r) => !bodyless.has(r.method));
    expect(routes.length).toBeGreaterThan(30); // the whole list, not a sample
    const seen: string[] = [];
    for (const route of routes) {
      const path = pathFor(route.path);
      for (const encoding of ["json", "form"] as const) {
        const init = encoding === "json" ? { json: { [unknown]: "x" } } : { form: { [unknown]: "x" } };
        const res = await request(route.method, path, init);
        const text = await res.text();
        const where = `${route.method} ${route.path} (${encoding})`;
        if (route.path === "/api/v1/vrpc/:domain/:agent/:className/:functionName") {
          // its body is the JSON array of arguments: an object (or a form) is no such array
          expect({ where, status: res.status }).toEqual({ where, status: 400 });
          continue;
        }
        expect({ where, status: res.status }).toEqual({ where, status: 400 });
        expect({ where, names: text.includes(unknown) }).toEqual({ where, names: true });
        if (route.path.startsWith("/api/"))
          expect(JSON.parse(text)).toMatchObject({ error: "invalid_request", fields: { [unknown]: "unknown field" } });
      }
      seen.push(`${route.method} ${route.path}`);
    }
    expect(seen.length).toBe(routes.length);
    // nothing was created, changed or removed by any of them
    expect(
      JSON.stringify({
        integrations: core.credentials.list({}, new Set()).rows,
        tokens: core.admins.listApiTokens(),
        admins: core.admins.list(),
      }),
    ).toBe(before);
    expect(core.credentials.get(integration.id)?.username).toBe("untouched");
  });

  it("a near miss of a real field is refused, not dropped: `subscribeACL` on create and on change", async () => {
    const { core, request } = await testWeb();
    const created = await request("POST", "/api/v1/integrations", {
      json: { type: "mqtt", username: "near-miss", subscribeACL: ["plant/#"] },
    });
    expect(created.status).toBe(400);
    const body = await created.json();
    expect(body.message).toContain("subscribeACL");
    expect(body.message).toContain("subscribeAcl"); // it says what the route takes
    expect(core.credentials.findByUsername("near-miss")).toBeUndefined();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "patched" });
    const patched = await request("PATCH", `/api/v1/integrations/${integration.id}`, {
      json: { subscribeACL: ["plant/#"], description: "x" },
    });
    expect(patched.status).toBe(400);
    expect(core.credentials.get(integration.id)?.description).toBe("");
  });

  it("POST /api/v1/integrations takes the permission fields PATCH takes", async () => {
    const { core, request } = await testWeb();
    const permissions = {
      publishAcl: ["plant/line1/#"],
      subscribeAcl: ["plant/line1/cmd"],
      denyPublishAcl: ["plant/line1/secret"],
      denySubscribeAcl: ["plant/line1/cmd/reset"],
    };
    const res = await request("POST", "/api/v1/integrations", {
      json: { type: "mqtt", username: "with-acl", ...permissions },
    });
    expect(res.status).toBe(201);
    expect((await res.json()).integration).toMatchObject(permissions);
    expect(core.credentials.findByUsername("with-acl")).toMatchObject(permissions);
    // left out: the type's defaults, as before
    const plain = await (
      await request("POST", "/api/v1/integrations", { json: { type: "mqtt", username: "defaults" } })
    ).json();
    expect(plain.integration).toMatchObject({
      publishAcl: ["#"],
      subscribeAcl: ["#"],
      denyPublishAcl: [],
      denySubscribeAcl: [],
    });
    // the same checks as PATCH: a bad filter is a 400 and nothing is created
    const bad = await request("POST", "/api/v1/integrations", {
      json: { type: "mqtt", username: "bad-acl", subscribeAcl: ["a/#/b"] },
    });
    expect(bad.status).toBe(400);
    expect(core.credentials.findByUsername("bad-acl")).toBeUndefined();
  });

  it("10 000 unknown keys are one bounded 400 naming a few of them", async () => {
    const { core, request } = await testWeb();
    const keys = Array.from({ length: 10_000 }, (_, i) => i.toString(36));
    const form = Object.fromEntries([["type", "mqtt"], ...keys.map((k) => [k, ""])]);
    const res = await request("POST", "/api/v1/integrations", { form });
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text.length).toBeLessThan(4_096);
    expect(text).toContain("more");
    expect(core.credentials.list({}, new Set()).total).toBe(0);
  });
});

describe("request bodies through the real server", () => {
  it("a 1 MB JSON body is refused before it is read, declared or chunked; the device data route keeps its own limit", async () => {
    const { app, url } = await testApp(["--opcua-port", "off"]);
    try {
      const { cookie, csrf } = await signIn(url);
      const big = JSON.stringify({ type: "mqtt", description: "x".repeat(1_000_000) });
      const declared = await fetch(`${url}/api/v1/integrations`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: url },
        body: big,
      });
      expect(declared.status).toBe(413);
      // without a Content-Length (chunked), the declared-size check cannot see it: refused as 411
      const chunked = await rawPost(
        url,
        "/api/v1/integrations",
        {
          cookie,
          "x-csrf-token": csrf,
          "content-type": "application/json",
          "transfer-encoding": "chunked",
          origin: url,
        },
        big,
      );
      expect(chunked.status).toBe(411);
      expect(app.core.credentials.list({}, new Set()).total).toBe(0);
      // devices still post chunked bodies to their own route (it reads with its own limit)
      const { password } = await app.core.credentials.create({ type: "http", username: "chunky" });
      const basic = `Basic ${Buffer.from(`chunky:${password}`).toString("base64")}`;
      expect(
        (await rawPost(url, "/api/v1/data/plant/x", { authorization: basic, "transfer-encoding": "chunked" }, "21.5"))
          .status,
      ).toBe(202);
    } finally {
      await app.stop();
    }
  });
});

describe("the device routes' JSON bodies (a listener's mount: not in the app's route list)", () => {
  it("a batch item or a registration with a field the route does not take is a 400 naming it; nothing is published or recorded", async () => {
    const { app, url } = await testApp(["--opcua-port", "off"]);
    try {
      const { password } = await app.core.credentials.create({ type: "http", username: "batcher" });
      const basic = `Basic ${Buffer.from(`batcher:${password}`).toString("base64")}`;
      const published: string[] = [];
      const off = app.core.bus.onMessage((m) => void published.push(m.topic));
      const batch = await fetch(`${url}/api/v1/data`, {
        method: "POST",
        headers: { authorization: basic, "content-type": "application/json" },
        body: JSON.stringify([
          { topic: "plant/a", payload: 1 },
          { topic: "plant/b", payload: 2, qos: 1 },
        ]),
      });
      expect(batch.status).toBe(400);
      expect((await batch.json()).message).toContain("item 2: unknown field qos");
      app.core.onboarding.open({ minutes: 5, by: "test" });
      const register = await fetch(`${url}/api/v1/register`, {
        method: "POST",
        body: JSON.stringify({ username: "new-device", password: "a-device-password", type: "http", [unknown]: 1 }),
      });
      expect(register.status).toBe(400);
      expect((await register.json()).message).toContain(unknown);
      expect(app.core.onboarding.list()).toEqual([]);
      // the same without the extra field works (so the 400 was for the field)
      const ok = await fetch(`${url}/api/v1/data`, {
        method: "POST",
        headers: { authorization: basic },
        body: JSON.stringify([{ topic: "plant/a", payload: 1, retain: false }]),
      });
      expect(ok.status).toBe(202);
      off();
      expect(published).toEqual(["plant/a"]);
    } finally {
      await app.stop();
    }
  });
});

/** rawPost: node:http, so the body goes chunked without a Content-Length. */
function rawPost(
  base: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method: "POST", headers }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    // in pieces, as a streaming client sends it
    for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.slice(i, i + 64 * 1024));
    req.end();
  });
}
