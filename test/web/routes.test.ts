import { afterAll, describe, expect, it } from "bun:test";
import { AcceptPool } from "../../src/core/accept-pool.ts";
import { actAs } from "../../src/core/activity.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { createOpcuaListener } from "../../src/listeners/opcua/index.ts";
import { cleanupTempDirs, testWeb } from "../helpers/app.ts";

/** withOpcuaPages: the web app with the OPC UA part's pages (not started: the page says so). */
const withOpcuaPages = {
  pages: (core: Parameters<typeof createOpcuaListener>[0]["core"], dir: string) => [
    createOpcuaListener(
      { core, log: silentLogger, pool: new AcceptPool({ capacity: 10, timeoutMs: 10_000 }) },
      { host: "127.0.0.1", port: 0, dataDir: dir, version: "test" },
    ).pages!,
  ],
};

afterAll(cleanupTempDirs);

describe("unauthenticated", () => {
  const cases: [string, string, number, string | null][] = [
    ["GET", "/", 303, "/login?next=%2F"],
    ["GET", "/integrations", 303, "/login?next=%2Fintegrations"],
    ["GET", "/integrations/new", 303, "/login?next=%2Fintegrations%2Fnew"],
    ["GET", "/settings/tokens", 303, "/login?next=%2Fsettings%2Ftokens"],
    ["POST", "/integrations", 303, "/login?next=%2Fintegrations"],
    ["GET", "/api/v1/integrations", 401, null],
    ["POST", "/api/v1/integrations", 401, null],
    ["DELETE", "/api/v1/integrations/1", 401, null],
    ["GET", "/api/v1/sessions", 401, null],
    ["GET", "/certificates", 303, "/login?next=%2Fcertificates"],
    [
      "POST",
      "/certificates/0123456789abcdef0123456789abcdef01234567/trust",
      303,
      "/login?next=%2Fcertificates%2F0123456789abcdef0123456789abcdef01234567%2Ftrust",
    ],
    ["POST", "/sessions/mqtt-1-abc/disconnect", 303, "/login?next=%2Fsessions%2Fmqtt-1-abc%2Fdisconnect"],
  ];
  for (const [method, path, status, location] of cases) {
    it(`${method} ${path} -> ${status}`, async () => {
      const { request } = await testWeb(withOpcuaPages);
      const res = await request(method, path, { auth: false, csrf: false });
      expect(res.status).toBe(status);
      expect(res.headers.get("location")).toBe(location);
    });
  }

  it("an invalid bearer token gets 401", async () => {
    const { request } = await testWeb();
    const res = await request("GET", "/api/v1/integrations", {
      auth: false,
      headers: { authorization: "Bearer gh_nope" },
    });
    expect(res.status).toBe(401);
  });

  it("public assets and health need no sign-in", async () => {
    const { request } = await testWeb();
    expect((await request("GET", "/healthz", { auth: false })).status).toBe(200);
    const htmx = await request("GET", "/assets/htmx.min.js", { auth: false });
    expect(htmx.status).toBe(200);
    expect(await htmx.text()).toContain("htmx");
  });
});

describe("CSRF", () => {
  const changes: [string, string, Record<string, string>][] = [
    ["POST", "/integrations", { type: "mqtt", username: "csrf-victim", password: "long-enough-pw" }],
    ["POST", "/integrations/{id}/toggle", {}],
    ["POST", "/integrations/{id}/delete", {}],
    ["POST", "/integrations/{id}/reset-password", {}],
    ["POST", "/integrations/{id}", { username: "renamed" }],
    ["POST", "/settings/tokens", { name: "sneaky" }],
    ["POST", "/sessions/{session}/disconnect", {}],
    ["POST", "/logout", {}],
  ];
  for (const [method, path, form] of changes) {
    for (const variant of ["missing", "wrong", "cross-site", "no-origin"] as const) {
      it(`${method} ${path} with ${variant} token -> 403, nothing changed`, async () => {
        const { core, request, csrf } = await testWeb();
        const { integration } = await core.credentials.create({ type: "mqtt", username: "existing" });
        let kicked = false;
        const session = core.sessions.open({ integration, type: "mqtt", clientId: "plc", kick: () => (kicked = true) });
        const before = JSON.stringify(core.credentials.list({}).rows);
        const f = { ...form };
        const headers: Record<string, string> = {};
        if (variant === "wrong") f._csrf = "x".repeat(csrf.length);
        if (variant === "cross-site") (f._csrf = csrf), (headers.origin = "http://evil.example");
        if (variant === "no-origin") (f._csrf = csrf), (headers.origin = ""); // the right token, no Origin nor Referer
        const res = await request(
          method,
          path.replace("{id}", String(integration.id)).replace("{session}", session.id),
          { form: f, csrf: false, headers },
        );
        expect(res.status).toBe(403);
        expect(kicked).toBe(false);
        expect(JSON.stringify(core.credentials.list({}).rows)).toBe(before);
        expect(core.admins.listApiTokens()).toHaveLength(0);
      });
    }
  }

  it("without Origin, a same-site Referer is taken (OWASP's fallback); an API token needs neither", async () => {
    const { request, core } = await testWeb();
    const form = { type: "mqtt", username: "by-referer", password: "long-enough-pw" };
    const res = await request("POST", "/integrations", {
      form,
      headers: { origin: "", referer: "http://localhost/integrations" },
    });
    expect(res.status).toBe(303); // created; the page follows
    const other = await request("POST", "/integrations", {
      form: { ...form, username: "by-other-referer" },
      headers: { origin: "", referer: "http://evil.example/integrations" },
    });
    expect(other.status).toBe(403);
    const { token } = core.admins.createApiToken("ci");
    const api = await request("POST", "/api/v1/integrations", {
      json: { type: "mqtt", username: "by-token" },
      auth: false,
      csrf: false,
      headers: { origin: "", authorization: `Bearer ${token}` },
    });
    expect(api.status).toBe(201);
    expect(
      core.credentials
        .list({})
        .rows.map((r) => r.username)
        .sort(),
    ).toEqual(["by-referer", "by-token"]);
  });

  it("a JSON API call with the session cookie needs the header too", async () => {
    const { request, core } = await testWeb();
    const res = await request("POST", "/api/v1/integrations", { json: { type: "mqtt" }, csrf: false });
    expect(res.status).toBe(403);
    expect(core.credentials.count()).toBe(0);
  });
});

describe("integrations page", () => {
  it("creates an integration and shows its password once", async () => {
    const { request, core } = await testWeb();
    const res = await request("POST", "/integrations", {
      form: { type: "opcua", username: "scada-1", password: "pa55word-long", description: "hall 2" },
      headers: { "hx-request": "true" },
    });
    expect(res.status).toBe(201);
    const body = await res.text();
    expect(body).toContain("pa55word-long");
    expect(body).toContain('hx-swap-oob="afterend:#integration-head"');
    expect(core.credentials.findByUsername("scada-1")?.type).toBe("opcua");
    const page = await (await request("GET", "/integrations")).text();
    expect(page).toContain("scada-1");
    expect(page).not.toContain("pa55word-long");
  });

  it("pre-fills the add form with a generated username and password", async () => {
    const { request } = await testWeb();
    const html = await (
      await request("GET", "/integrations/new?type=vrpc", { headers: { "hx-request": "true" } })
    ).text();
    expect(html).toMatch(/name="username"\s+value="vrpc\/[a-z]+-[a-z]+-[a-z0-9]{4}"/); // `<domain>/<agent>`: vrpc's own default domain while there is no other
    expect(html).toMatch(/name="password" value="[A-Za-z0-9_-]{26}"/);
  });

  it("shows a duplicate username as an inline error and keeps what was typed", async () => {
    const { request, core } = await testWeb();
    await core.credentials.create({ type: "mqtt", username: "dup" });
    const res = await request("POST", "/integrations", {
      form: { type: "http", username: "dup", password: "long-enough-pw", description: "typed" },
      headers: { "hx-request": "true" },
    });
    expect(res.status).toBe(409);
    const html = await res.text();
    expect(html).toContain("this username is already taken");
    expect(html).toContain('value="typed"');
    expect(core.credentials.count()).toBe(1);
  });

  it("shows validation errors inline without JS too", async () => {
    const { request, core } = await testWeb();
    const res = await request("POST", "/integrations", {
      form: { type: "mqtt", username: "bad name!", password: "short" },
    });
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain("<!doctype html>");
    expect(html).toContain("username must be");
    expect(html).toContain("password must be 8-256 characters");
    expect(core.credentials.count()).toBe(0);
  });

  it("toggles, edits, resets and deletes, answering htmx with one row", async () => {
    const { request, core } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "row-1" });
    const hx = { "hx-request": "true" };
    const toggled = await (
      await request("POST", `/integrations/${integration.id}/toggle`, { form: {}, headers: hx })
    ).text();
    expect(toggled.startsWith(`<tbody id="integration-${integration.id}"`)).toBe(true);
    expect(toggled).toContain("deactivated");
    const edited = await request("POST", `/integrations/${integration.id}`, {
      form: { username: "row-1b", description: "new text" },
      headers: hx,
    });
    expect(await edited.text()).toContain("row-1b");
    const reset = await (
      await request("POST", `/integrations/${integration.id}/reset-password`, { form: {}, headers: hx })
    ).text();
    expect(reset).toContain("New password:");
    const del = await request("POST", `/integrations/${integration.id}/delete`, { form: {}, headers: hx });
    expect(del.status).toBe(200);
    expect(await del.text()).toBe("");
    expect(core.credentials.count()).toBe(0);
  });

  it("works without JS: actions redirect back to the list (303)", async () => {
    const { request, core } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "plain" });
    const res = await request("POST", `/integrations/${integration.id}/toggle`, { form: {} });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/integrations");
    expect((await request("GET", `/integrations/${integration.id}/delete`)).status).toBe(200);
    expect((await request("GET", `/integrations/${integration.id}/edit`)).status).toBe(200);
  });

  it("escapes what people typed", async () => {
    const { request, core } = await testWeb();
    await core.credentials.create({ type: "mqtt", username: "xss", description: "<img src=x onerror=alert(1)>" });
    const html = await (await request("GET", "/integrations")).text();
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });

  it("searches, filters and pages", async () => {
    const { request, core } = await testWeb();
    await core.credentials.createMany(
      Array.from(
        { length: 30 },
        (_, i) =>
          ({
            type: i % 2 ? "mqtt" : "opcua",
            username: `dev-${String(i).padStart(2, "0")}`,
            password: "long-enough-pw",
          }) as const,
      ),
    );
    const page2 = await (
      await request("GET", "/integrations?type=mqtt&page=1", {
        headers: { "hx-request": "true", "hx-target": "integration-table" },
      })
    ).text();
    expect(page2).toContain("15 integrations");
    expect(page2).not.toContain(">dev-00<");
    const search = await (await request("GET", "/integrations?q=dev-2")).text();
    expect(search).toContain("10 integrations");
    const deactivated = await (await request("GET", "/integrations?status=deactivated")).text();
    expect(deactivated).toContain("No integrations match.");
  });

  it("sorts by a column (a second click turns it round), pages first/last, and keeps both across the pager", async () => {
    const { request, core } = await testWeb();
    await core.credentials.createMany(
      Array.from(
        { length: 60 },
        (_, i) =>
          ({
            type: i % 3 ? "mqtt" : "http",
            username: `node-${String((i * 37) % 60).padStart(2, "0")}`,
            password: "long-enough-pw",
          }) as const,
      ),
    );
    expect(
      (await core.credentials.verify(core.credentials.findByUsername("node-42")!.type, "node-42", "long-enough-pw")).ok,
    ).toBe(true);
    const names = (html: string) => [...html.matchAll(/data-username="([^"]+)"/g)].map((m) => m[1]);
    const byName = await (await request("GET", "/integrations?sort=username")).text();
    expect(names(byName).slice(0, 3)).toEqual(["node-00", "node-01", "node-02"]);
    expect(byName.includes('aria-sort="ascending"')).toBe(true);
    expect(byName.includes('href="/integrations?sort=username&dir=desc"')).toBe(true); // the header turns it round
    expect(byName.includes('href="/integrations?sort=username&page=3"')).toBe(true); // Last keeps the order
    const reversed = await (await request("GET", "/integrations?sort=username&dir=desc&size=50")).text();
    expect(names(reversed)).toHaveLength(50);
    expect(names(reversed)[0]).toBe("node-59");
    const byLogin = await (await request("GET", "/integrations?sort=lastLogin")).text();
    expect(names(byLogin)[0]).toBe("node-42"); // most recent login first
    const byType = await (await request("GET", "/integrations?sort=type&size=25")).text();
    expect(names(byType).map((n) => core.credentials.findByUsername(n!)!.type)).toEqual([
      ...Array(20).fill("http"),
      ...Array(5).fill("mqtt"),
    ]);
    const junk = await request("GET", "/integrations?sort=password_hash&dir=sideways&size=100000");
    expect(junk.status).toBe(200); // unknown values fall back to the defaults
    expect(names(await junk.text())).toHaveLength(25);
  });

  it("stays quick with 10 000 integrations (renders one page, not all)", async () => {
    const { request, core, db } = await testWeb();
    const hash = await core.credentials.hash("same-password");
    const insert = db.$client.prepare(
      "INSERT INTO integrations (username, type, password_hash, created_at, updated_at) VALUES (?, 'mqtt', ?, ?, ?)",
    );
    db.$client.transaction(() => {
      for (let i = 0; i < 10_000; i++) insert.run(`bulk-${i}`, hash, i, i);
    })();
    // as the appliance applies a write by another process (ExternalSync: no activity rows, that process writes its own)
    await actAs("external", () => core.credentials.reload());
    const html = await (await request("GET", "/integrations")).text();
    expect(html).toContain("10000 integrations");
    expect(html.match(/<tbody id="integration-/g)?.length).toBe(25);
  });
});

describe("bad input", () => {
  it("malformed JSON -> 400 and the appliance still serves", async () => {
    const { request } = await testWeb();
    const res = await request("POST", "/api/v1/integrations", {
      body: "{not json",
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe("malformed_body");
    expect((await request("GET", "/api/v1/integrations")).status).toBe(200);
  });

  it("a body against the schema -> 400 with the field named", async () => {
    const { request, core } = await testWeb();
    const res = await request("POST", "/api/v1/integrations", { json: { type: "modbus" } });
    expect(res.status).toBe(400);
    expect(core.credentials.count()).toBe(0);
  });

  it("an oversize body -> 413 before parsing, and the appliance still serves", async () => {
    const { request, core } = await testWeb();
    const body = JSON.stringify({ type: "mqtt", description: "x".repeat(100_000) });
    const res = await request("POST", "/api/v1/integrations", {
      body,
      headers: { "content-type": "application/json", "content-length": String(body.length) },
    });
    expect(res.status).toBe(413);
    expect(core.credentials.count()).toBe(0);
    expect((await request("GET", "/integrations")).status).toBe(200);
  });

  it("an unknown id -> 404", async () => {
    const { request } = await testWeb();
    expect((await request("GET", "/api/v1/integrations/999")).status).toBe(404);
    expect((await request("POST", "/integrations/abc/toggle", { form: {} })).status).toBe(404);
  });
});

describe("JSON API", () => {
  it("creates, reads, patches, resets and deletes with an API token", async () => {
    const { request, core } = await testWeb();
    const { token } = core.admins.createApiToken("ci");
    const auth = { auth: false, csrf: false, headers: { authorization: `Bearer ${token}` } } as const;
    const created = await request("POST", "/api/v1/integrations", {
      ...auth,
      json: { type: "vrpc", username: "agent-7" },
    });
    expect(created.status).toBe(201);
    const { integration, password } = await created.json();
    expect(password).toBeString();
    expect(integration.status).toBe("offline");
    const patched = await (
      await request("PATCH", `/api/v1/integrations/${integration.id}`, {
        ...auth,
        json: { active: false, description: "spare" },
      })
    ).json();
    expect(patched).toMatchObject({ active: false, status: "deactivated", description: "spare" });
    const reset = await (
      await request("POST", `/api/v1/integrations/${integration.id}/reset-password`, { ...auth, json: {} })
    ).json();
    expect(reset.password).not.toBe(password);
    const list = await (await request("GET", "/api/v1/integrations?type=vrpc", auth)).json();
    expect(list.total).toBe(1);
    expect((await request("DELETE", `/api/v1/integrations/${integration.id}`, auth)).status).toBe(204);
    expect(core.credentials.count()).toBe(0);
  });

  it("lists live sessions and disconnects one", async () => {
    const { request, core } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "has-sessions" });
    const reasons: string[] = [];
    const s = core.sessions.open({
      integration,
      type: "mqtt",
      clientId: "plc-9",
      remote: "10.0.0.9",
      kick: (r) => reasons.push(r),
    });
    const list = await (await request("GET", `/api/v1/sessions?integrationId=${integration.id}`)).json();
    expect(list.items).toEqual([
      expect.objectContaining({ id: s.id, clientId: "plc-9", remote: "10.0.0.9", username: "has-sessions" }),
    ]);
    expect((await request("DELETE", `/api/v1/sessions/${s.id}`)).status).toBe(204);
    expect(reasons).toEqual(["disconnected by admin"]);
    expect((await request("DELETE", `/api/v1/sessions/${s.id}`)).status).toBe(404);
  });

  it("duplicate username -> 409 with the field", async () => {
    const { request, core } = await testWeb();
    await core.credentials.create({ type: "mqtt", username: "taken" });
    const res = await request("POST", "/api/v1/integrations", { json: { type: "mqtt", username: "taken" } });
    expect(res.status).toBe(409);
    expect((await res.json()).fields.username).toContain("taken");
  });

  it("an admin creates an API token on the page, sees it once, and revokes it", async () => {
    const { request, core } = await testWeb();
    const made = await request("POST", "/settings/tokens", { form: { name: "provisioning <script>" } });
    expect(made.status).toBe(303); // post/redirect/get: a reload of the answer cannot make a second token
    const once = made.headers.get("location")!;
    const page = await (await request("GET", once)).text();
    expect((await request("GET", once)).status).toBe(410); // shown once
    expect(core.admins.listApiTokens()).toHaveLength(1);
    const token = page.match(/class="secret-value">(gh_[A-Za-z0-9_-]+)</)![1]!;
    expect(page).toContain("provisioning &lt;script&gt;");
    const bearer = { auth: false, csrf: false, headers: { authorization: `Bearer ${token}` } } as const;
    expect((await request("GET", "/api/v1/integrations", bearer)).status).toBe(200);
    expect(await (await request("GET", "/settings/tokens")).text()).not.toContain(token);
    const [row] = core.admins.listApiTokens();
    expect(row!.tokenHash).not.toContain(token);
    // without JavaScript the first post asks on a page naming the token, and revokes nothing
    const asked = await request("POST", `/settings/tokens/${row!.id}/delete`, { form: {} });
    expect(asked.status).toBe(200);
    expect(await asked.text()).toContain("provisioning &lt;script&gt;");
    expect((await request("GET", "/api/v1/integrations", bearer)).status).toBe(200);
    expect((await request("POST", `/settings/tokens/${row!.id}/delete`, { form: { confirmed: "yes" } })).status).toBe(
      303,
    );
    expect((await request("GET", "/api/v1/integrations", bearer)).status).toBe(401);
  });

  it("publishes an OpenAPI document to whoever may call the API, and to nobody else", async () => {
    const { request, web } = await testWeb();
    expect((await web.handle(new Request("http://localhost/api/v1/openapi/json"))).status).toBe(401);
    const doc = await (await request("GET", "/api/v1/openapi/json")).json();
    expect(Object.keys(doc.paths)).toContain("/api/v1/integrations");
    expect(Object.keys(doc.paths).every((p: string) => p.startsWith("/api/v1/"))).toBe(true);
  });
});

describe("admin sign-in", () => {
  const preauth = async (web: Awaited<ReturnType<typeof testWeb>>["web"]) => {
    const res = await web.handle(new Request("http://localhost/login"));
    const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await res.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    return { cookie, csrf };
  };
  const login = (
    web: Awaited<ReturnType<typeof testWeb>>["web"],
    pre: { cookie: string; csrf: string },
    password: string,
  ) =>
    web.handle(
      new Request("http://localhost/login", {
        method: "POST",
        headers: {
          cookie: pre.cookie,
          "content-type": "application/x-www-form-urlencoded",
          origin: "http://localhost",
        },
        body: new URLSearchParams({ _csrf: pre.csrf, username: "admin", password, next: "/settings/tokens" }),
      }),
    );

  it("signs in with an HttpOnly SameSite=Strict cookie and signs out", async () => {
    const { web } = await testWeb();
    const res = await login(web, await preauth(web), "correct-horse-battery");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/settings/tokens");
    const setCookie = res.headers.getAll("set-cookie").find((c) => c.startsWith("gh_session="))!;
    expect(setCookie).toContain("HttpOnly");
    expect(setCookie).toContain("SameSite=Strict");
    const session = setCookie.split(";")[0]!;
    const page = await web.handle(new Request("http://localhost/integrations", { headers: { cookie: session } }));
    expect(page.status).toBe(200);
    const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    const out = await web.handle(
      new Request("http://localhost/logout", {
        method: "POST",
        headers: { cookie: session, "content-type": "application/x-www-form-urlencoded", origin: "http://localhost" },
        body: `_csrf=${csrf}`,
      }),
    );
    expect(out.status).toBe(303);
    expect(
      (await web.handle(new Request("http://localhost/integrations", { headers: { cookie: session } }))).status,
    ).toBe(303);
  });

  it("refuses a sign-in form without its pre-auth token", async () => {
    const { web } = await testWeb();
    const pre = await preauth(web);
    const res = await login(web, { ...pre, csrf: "forged" }, "correct-horse-battery");
    expect(res.status).toBe(403);
  });

  it("slows down repeated failures: 429 after five", async () => {
    const { web } = await testWeb();
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await login(web, await preauth(web), `wrong-${i}`)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
    expect((await login(web, await preauth(web), "correct-horse-battery")).status).toBe(429);
  });

  it("first start without an admin: the setup link works once", async () => {
    const { web, core } = await testWeb();
    core.db.$client.run("DELETE FROM admins");
    const token = core.admins.startSetup();
    expect((await web.handle(new Request(`http://localhost/setup?token=wrong`))).status).toBe(403);
    const page = await web.handle(new Request(`http://localhost/setup?token=${token}`));
    const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    const submit = (password: string, confirm = password) =>
      web.handle(
        new Request("http://localhost/setup", {
          method: "POST",
          headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: "http://localhost" },
          body: new URLSearchParams({ _csrf: csrf, token, username: "ops", password, confirm }),
        }),
      );
    expect((await submit("long-enough-1", "different-2")).status).toBe(400);
    const ok = await submit("long-enough-1");
    expect(ok.status).toBe(303);
    expect(core.admins.hasAdmin()).toBe(true);
    expect((await web.handle(new Request(`http://localhost/setup?token=${token}`))).status).toBe(403);
  });
});
