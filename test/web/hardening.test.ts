import { Database } from "bun:sqlite";
import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { adminPassword, cleanupTempDirs, testApp, testWeb } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt } from "../helpers/mqtt.ts";

afterAll(cleanupTempDirs);

describe("a writer holding the database lock", () => {
  it("does not freeze the appliance: health, logins and the write-behind go on; an admin's write answers 503", async () => {
    const { app, dir, url } = await testApp(["--opcua-port", "off"]);
    try {
      const { integration, password } = await app.core.credentials.create({ type: "mqtt", username: "during-lock" });
      const { cookie, csrf } = await signIn(url);
      const other = new Database(join(dir, "gatehouse.db"));
      other.run("BEGIN IMMEDIATE"); // what a CLI command does while it writes
      try {
        expect((await fetch(`${url}/healthz`)).status).toBe(200);
        const c = await connectMqtt(app.address("mqtt")!.port, { username: "during-lock", password });
        expect(app.core.credentials.flushLastLogins()).toBe(0); // kept for later, not lost
        const create = await fetch(`${url}/api/v1/integrations`, {
          method: "POST",
          headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: url },
          body: JSON.stringify({ type: "mqtt", username: "blocked" }),
        });
        expect(create.status).toBe(503);
        expect((await create.json()).message).toContain("locked");
        await c.endAsync();
      } finally {
        other.run("COMMIT");
        other.close();
      }
      expect(app.core.credentials.flushLastLogins()).toBe(1);
      const row = app.core.db.$client
        .query("SELECT last_login_at FROM integrations WHERE id = ?")
        .get(integration.id) as { last_login_at: number | null };
      expect(row.last_login_at).toBeNumber();
      // acknowledged changes are synced to disk before the answer (power cuts are the common fault)
      expect(app.core.db.$client.query("PRAGMA synchronous").get()).toEqual({ synchronous: 2 });
    } finally {
      await app.stop();
    }
  });
});

describe("smaller holes", () => {
  it("asset names that are object properties are 404, not 500", async () => {
    const { request } = await testWeb();
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty"])
      expect((await request("GET", `/assets/${name}`, { auth: false })).status).toBe(404);
  });

  it("an API token on a page route is refused before the route acts", async () => {
    const { core, request } = await testWeb();
    const { integration, password } = await core.credentials.create({ type: "mqtt", username: "keeps-password" });
    const { token } = core.admins.createApiToken("automation");
    const res = await request("POST", `/integrations/${integration.id}/reset-password`, {
      auth: false,
      csrf: false,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(403);
    expect((await core.credentials.verify("mqtt", "keeps-password", password)).ok).toBe(true);
    expect(
      (await request("GET", "/settings/tokens", { auth: false, headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(403);
  });

  it("the one-time setup link creates one admin even when used twice at once", async () => {
    const empty = await testApp(["--opcua-port", "off", "--mqtt-port", "off"], { GATEHOUSE_ADMIN_PASSWORD: "" });
    try {
      const token = empty.app.core.admins.startSetup();
      const results = await Promise.allSettled([
        empty.app.core.admins.completeSetup(token, "first", "first-password-1"),
        empty.app.core.admins.completeSetup(token, "second", "second-password-2"),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      expect(empty.app.core.db.$client.query("SELECT count(*) AS n FROM admins").get()).toEqual({ n: 1 });
    } finally {
      await empty.app.stop();
    }
  });

  it("request headers over 8 KB get 431, on admin and device routes", async () => {
    const { app, url } = await testApp(["--opcua-port", "off", "--mqtt-port", "off"]);
    try {
      for (const path of ["/healthz", "/api/v1/data/x"])
        expect((await fetch(`${url}${path}`, { headers: { "x-big": "a".repeat(16 * 1024) } })).status).toBe(431);
      expect((await fetch(`${url}/healthz`, { headers: { "x-fine": "a".repeat(4 * 1024) } })).status).toBe(200);
    } finally {
      await app.stop();
    }
  });

  it("descriptions refuse NUL, ANSI escapes and bidi overrides", async () => {
    const { core } = await testWeb();
    for (const d of ["a\u0000b", "\u001b[31mred", "admin\u202Etxt.exe"]) {
      await expect(core.credentials.create({ type: "mqtt", description: d })).rejects.toMatchObject({
        code: "validation",
      });
    }
    expect(
      (await core.credentials.create({ type: "mqtt", description: 'Halle 3 – Linie 2, Ofen "A"' })).integration
        .description,
    ).toContain("Ofen");
  });

  it("GATEHOUSE_ADMIN_PASSWORD is taken from the environment, not left in it", async () => {
    const { parseServeConfig } = await import("../../src/config.ts");
    const env: Record<string, string | undefined> = {
      GATEHOUSE_ADMIN_PASSWORD: adminPassword,
      GATEHOUSE_HTTP_PORT: "9000",
    };
    expect(parseServeConfig([], env).adminPassword).toBe(adminPassword);
    expect(env).toEqual({ GATEHOUSE_HTTP_PORT: "9000" });
  });
});

describe("retained topics", () => {
  it("are listed on the Topics page and an admin clears what a removed device left behind", async () => {
    const { app, url } = await testApp(["--opcua-port", "off"]);
    try {
      const dev = await app.core.credentials.create({ type: "mqtt", username: "leaving-device" });
      const c = await connectMqtt(app.address("mqtt")!.port, { username: "leaving-device", password: dev.password });
      await c.publishAsync("line9/<b>state</b>", "running", { retain: true, qos: 1 });
      await c.endAsync();
      app.core.credentials.remove(dev.integration.id);
      const { cookie, csrf } = await signIn(url);
      const page = await (await fetch(`${url}/topics?q=line9`, { headers: { cookie } })).text();
      expect(page).toContain("line9/&lt;b&gt;state&lt;/b&gt;");
      expect(page).not.toContain("<b>state</b>");
      const cleared = await fetch(`${url}/topics/clear`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: url },
        body: new URLSearchParams({ _csrf: csrf, topic: "line9/<b>state</b>" }),
      });
      expect(cleared.status).toBe(303);
      const retained: string[] = [];
      for await (const m of app.core.bus.retained("#")) retained.push(m.topic);
      expect(retained.filter((t) => t.startsWith("line9"))).toEqual([]);
      expect(app.core.activity.list({ action: "topic.cleared" })[0]).toMatchObject({
        subject: "line9/<b>state</b>",
        actor: "admin:admin",
      });
    } finally {
      await app.stop();
    }
  });
});
