import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { App } from "../../src/app.ts";
import { readOnlyMayPost } from "../../src/web/auth.tsx";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";

// The read-only role against every route the running appliance has (its parts' pages and API
// included), enumerated from the app itself: a route added later is covered without editing this file.

let app: App;
let url: string;
let viewer: { cookie: string; csrf: string };
let full: { cookie: string; csrf: string };

const safe = new Set(["GET", "HEAD", "OPTIONS"]);
const publicForms = new Set(["/login", "/login/code", "/setup"]);

beforeAll(async () => {
  ({ app, url } = await testApp());
  await app.core.credentials.create({ type: "mqtt", username: "press-7" });
  await app.core.admins.addAdmin("viewer", "viewer-password-1", "read-only");
  const v = await app.core.admins.signIn("viewer", "viewer-password-1", "test");
  viewer = { cookie: `gh_session=${v.token}`, csrf: v.session.csrfToken };
  const f = await app.core.admins.signIn("admin", "correct-horse-battery", "test");
  full = { cookie: `gh_session=${f.token}`, csrf: f.session.csrfToken };
}, 60_000);
afterAll(async () => {
  await app?.stop();
  cleanupTempDirs();
});

/** concrete: a route pattern with every parameter filled in (an existing integration's id where it takes one). */
function concrete(path: string): string {
  const id = String(app.core.credentials.findByUsername("press-7")!.id);
  return path
    .replace(/:id\b/g, id)
    .replace(/:[A-Za-z]+/g, "x1")
    .replace(/\*$/, "x1");
}

/** everything the database holds that a request could change, to compare before and after */
function snapshot(): string {
  const sqlite = app.core.db.$client;
  const tables = sqlite
    .query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '%sqlite%'")
    .all() as {
    name: string;
  }[];
  return JSON.stringify(
    tables
      .filter((t) => t.name !== "activity" && t.name !== "admin_sessions")
      .map((t) => [t.name, sqlite.query(`SELECT * FROM "${t.name}"`).all()]),
  );
}

async function send(
  who: { cookie: string; csrf: string },
  method: string,
  path: string,
  form: Record<string, string> = {},
) {
  const body = new URLSearchParams({ _csrf: who.csrf, ...form }).toString();
  return fetch(`${url}${path}`, {
    method,
    redirect: "manual",
    headers: {
      cookie: who.cookie,
      "x-csrf-token": who.csrf,
      "content-type": "application/x-www-form-urlencoded",
      origin: url,
      "content-length": String(body.length),
    },
    body,
  });
}

describe("a read-only admin", () => {
  it("is refused on every state-changing route of the app (all routes enumerated), and nothing changes", async () => {
    const routes = app.routes().filter((r) => !safe.has(r.method));
    // the app has many: the enumeration is real (pages, API, parts' routes)
    expect(routes.length).toBeGreaterThan(25);
    expect(routes.some((r) => r.path.startsWith("/api/v1/"))).toBe(true);
    expect(routes.some((r) => r.path.startsWith("/certificates"))).toBe(true);
    const before = snapshot();
    const answered: string[] = [];
    for (const r of routes) {
      // the sign-in forms act for no session (they open one for whoever proves a password): not the role's doors
      if (readOnlyMayPost.has(r.path) || publicForms.has(r.path)) continue;
      const res = await send(viewer, r.method, concrete(r.path), { username: "admin", role: "read-only", name: "x" });
      const text = await res.text();
      answered.push(`${r.method} ${r.path} -> ${res.status}${/read-only/.test(text) ? "" : " (other refusal)"}`);
    }
    expect(answered.filter((a) => !/ -> 403$/.test(a))).toEqual([]);
    expect(snapshot()).toBe(before);
    // the same requests from a full admin are not refused by the role (proof that the 403s above are the role's)
    const del = routes.find((r) => r.method === "POST" && r.path === "/integrations/:id/toggle")!;
    expect((await send(full, del.method, concrete(del.path))).status).not.toBe(403);
  }, 120_000);

  it("calls only its own account's routes: sign out, its password, its second factor, the export without secrets", async () => {
    expect([...readOnlyMayPost].sort()).toEqual(
      [
        "/logout",
        "/settings/2fa/confirm",
        "/settings/2fa/disable",
        "/settings/2fa/start",
        "/settings/backup/export",
        "/settings/password",
      ].sort(),
    );
    // every name on the list is a route of the app (no stale entry)
    const paths = new Set(app.routes().map((r) => r.path));
    for (const p of readOnlyMayPost) expect(paths.has(p)).toBe(true);
    // the export: without secrets yes; asked for the hashes, refused even when confirmed
    const plain = await send(viewer, "POST", "/settings/backup/export");
    expect(plain.status).toBe(200);
    expect(await plain.text()).not.toContain("passwordHash");
    const hashes = await send(viewer, "POST", "/settings/backup/export", { secrets: "1", confirm: "include hashes" });
    expect(hashes.status).toBe(403);
    // its password form changes its own password only: the field naming another admin is ignored
    const before = app.core.db.$client.query("SELECT password_hash FROM admins WHERE username = 'admin'").get();
    await send(viewer, "POST", "/settings/password", {
      username: "admin",
      current: "viewer-password-1",
      password: "viewer-password-2",
      confirm: "viewer-password-2",
    });
    expect(app.core.db.$client.query("SELECT password_hash FROM admins WHERE username = 'admin'").get()).toEqual(
      before,
    );
    await expect(app.core.admins.signIn("viewer", "viewer-password-2", "test")).resolves.toBeDefined();
  }, 60_000);

  it("sees no secret: a one-time secret page is refused, the pages carry no hash", async () => {
    const v = await app.core.admins.signIn("viewer", "viewer-password-2", "test");
    const who = { cookie: `gh_session=${v.token}`, csrf: v.session.csrfToken };
    const once = await fetch(`${url}/once/abc`, { headers: { cookie: who.cookie }, redirect: "manual" });
    expect(once.status).toBe(403);
    // API tokens: listed by name, not even their first characters
    const { token } = app.core.admins.createApiToken("prometheus");
    const tokens = await (await fetch(`${url}/settings/tokens`, { headers: { cookie: who.cookie } })).text();
    expect(tokens).toContain("prometheus");
    expect(tokens).not.toContain(token.slice(0, 7));
    const hash = (
      app.core.db.$client.query("SELECT password_hash FROM integrations").get() as { password_hash: string }
    ).password_hash;
    for (const r of app.routes().filter((x) => x.method === "GET" && !x.path.includes("*") && x.path !== "/events")) {
      const res = await fetch(`${url}${concrete(r.path)}`, { headers: { cookie: who.cookie }, redirect: "manual" });
      const text = await res.text();
      expect(text).not.toContain(hash);
      expect(text).not.toContain("argon2");
    }
  }, 60_000);

  it("a role change applies to the next request of an open session; the last full admin stays full", async () => {
    expect(() => app.core.admins.setRole("admin", "read-only")).toThrow("last full admin");
    const f = await app.core.admins.signIn("admin", "correct-horse-battery", "test");
    const who = { cookie: `gh_session=${f.token}`, csrf: f.session.csrfToken };
    await app.core.admins.addAdmin("second", "second-password-1");
    expect((await send(who, "POST", "/settings/admins/role", { username: "second", role: "read-only" })).status).toBe(
      303,
    );
    const s = await app.core.admins.signIn("second", "second-password-1", "test");
    expect(s.session.role).toBe("read-only");
    expect(app.core.admins.list().find((a) => a.username === "second")?.role).toBe("read-only");
  }, 60_000);
});

describe("a read-only API token", () => {
  it("reads the API and /metrics, and is refused on every state-changing API route (all enumerated); nothing changes", async () => {
    const { token: reader } = app.core.admins.createApiToken("prometheus-ro", "read-only");
    const { token: writer } = app.core.admins.createApiToken("provisioning");
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    for (const path of ["/api/v1/integrations", "/api/v1/sessions", "/api/v1/bans", "/metrics"]) {
      const res = await fetch(`${url}${path}`, { headers: bearer(reader) });
      expect(`${path} ${res.status}`).toBe(`${path} 200`);
    }
    const routes = app.routes().filter((r) => !safe.has(r.method) && r.path.startsWith("/api/"));
    expect(routes.length).toBeGreaterThan(8);
    const before = snapshot();
    const answered: string[] = [];
    for (const r of routes) {
      const res = await fetch(`${url}${concrete(r.path)}`, {
        method: r.method,
        headers: { ...bearer(reader), "content-type": "application/json" },
        body: JSON.stringify({ type: "mqtt", username: "ro-made", active: false, address: "10.9.9.9", minutes: 5 }),
      });
      const text = await res.text();
      answered.push(`${r.method} ${r.path} -> ${res.status}${/read-only API token/.test(text) ? "" : " (other)"}`);
    }
    expect(answered.filter((a) => !/ -> 403$/.test(a))).toEqual([]);
    expect(snapshot()).toBe(before);
    // the same request with a full token is not refused (the 403s above are the role's)
    const made = await fetch(`${url}/api/v1/integrations`, {
      method: "POST",
      headers: { ...bearer(writer), "content-type": "application/json" },
      body: JSON.stringify({ type: "mqtt", username: "rw-made" }),
    });
    expect(made.status).toBe(201);
  }, 60_000);

  it("is made on the tokens page, which shows each token's access", async () => {
    const f = await app.core.admins.signIn("admin", "correct-horse-battery", "test");
    const who = { cookie: `gh_session=${f.token}`, csrf: f.session.csrfToken };
    const res = await send(who, "POST", "/settings/tokens", { name: "grafana", role: "read-only" });
    expect(res.status).toBe(303); // to the one-time page that shows the secret
    const shown = await fetch(`${url}${res.headers.get("location")}`, { headers: { cookie: who.cookie } });
    const secret = (await shown.text()).match(/gh_[A-Za-z0-9_-]{20,}/)?.[0];
    expect(secret).toBeDefined();
    expect(app.core.admins.resolveApiToken(secret)?.role).toBe("read-only");
    const denied = await fetch(`${url}/api/v1/integrations`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "mqtt", username: "grafana-made" }),
    });
    expect(denied.status).toBe(403);
    const page = await (await fetch(`${url}/settings/tokens`, { headers: { cookie: who.cookie } })).text();
    expect(page).toMatch(/grafana<\/td>\s*<td>[\s\S]*?<\/td>\s*<td>read-only<\/td>/);
  }, 60_000);
});
