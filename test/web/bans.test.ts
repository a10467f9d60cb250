import { afterAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { setRemote } from "../../src/lib/http.ts";
import { cleanupTempDirs, testApp, testWeb } from "../helpers/app.ts";
import { closed, connectMqtt, refusalCode } from "../helpers/mqtt.ts";
import { waitFor } from "../helpers/wait.ts";

afterAll(cleanupTempDirs);

const main = join(import.meta.dir, "../../src/main.ts");
const cli = (dir: string, ...args: string[]) => {
  const r = Bun.spawnSync(["bun", main, "bans", ...args, "--data-dir", dir]);
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

describe("/api/v1/bans", () => {
  it("adds, lists (with expiry) and lifts a ban; each change is in the activity log under its actor", async () => {
    const { request, core } = await testWeb();
    const t = Date.now();
    const res = await request("POST", "/api/v1/bans", { json: { address: "10.1.2.3/16", minutes: 30 } });
    expect(res.status).toBe(201);
    const ban = await res.json();
    expect(ban).toMatchObject({
      kind: "address",
      value: "10.1.0.0/16",
      hits: 0,
      lastHitAt: null,
      createdBy: "admin:admin",
    });
    expect(Date.parse(ban.expiresAt) - t).toBeGreaterThanOrEqual(30 * 60_000 - 1000);
    expect(core.bans.addressBanned("10.1.200.1")).toBe(true);
    const list = await (await request("GET", "/api/v1/bans")).json();
    // the lookup above was a refusal: the list counts it
    expect(list).toEqual({ items: [{ ...ban, hits: 1, lastHitAt: expect.any(String) }], max: 10_000 });
    expect((await request("DELETE", `/api/v1/bans/${ban.id}`)).status).toBe(204);
    expect((await request("DELETE", `/api/v1/bans/${ban.id}`)).status).toBe(404);
    expect(core.bans.addressBanned("10.1.200.1")).toBe(false);
    expect(core.activity.list({ action: "ban." }).map((r) => [r.action, r.subject, r.actor])).toEqual([
      ["ban.removed", "address 10.1.0.0/16", "admin:admin"],
      ["ban.added", "address 10.1.0.0/16", "admin:admin"],
    ]);
    for (const body of [
      { clientId: "plc-1", minutes: 1 },
      { username: "u-1", minutes: 525_600 },
    ])
      expect((await request("POST", "/api/v1/bans", { json: body })).status).toBe(201);
  });

  const bad: [string, unknown, number][] = [
    ["no target", { minutes: 5 }, 400],
    ["two targets", { address: "10.0.0.1", username: "x", minutes: 5 }, 400],
    ["no minutes", { username: "x" }, 400],
    ["zero minutes", { username: "x", minutes: 0 }, 400],
    ["a fraction", { username: "x", minutes: 1.5 }, 400],
    ["over a year", { username: "x", minutes: 525_601 }, 400],
    ["minutes as words", { username: "x", minutes: "five" }, 400],
    ["a name for an address", { address: "plc.example.com", minutes: 5 }, 400],
    ["a prefix too long", { address: "10.0.0.0/33", minutes: 5 }, 400],
    ["an IPv6 prefix too long", { address: "2001:db8::/129", minutes: 5 }, 400],
    ["a zone", { address: "fe80::1%eth0", minutes: 5 }, 400],
    ["an address with a port", { address: "192.0.2.1:80", minutes: 5 }, 400],
    ["an empty username", { username: "", minutes: 5 }, 400],
    ["a 64 KB username", { username: "u".repeat(64 * 1024), minutes: 5 }, 400],
    ["a 64 KB address", { address: "1".repeat(64 * 1024), minutes: 5 }, 400],
    ["an unknown field", { username: "x", minutes: 5, forever: true }, 400],
    ["not an object", [1, 2], 400],
  ];
  for (const [name, body, status] of bad) {
    it(`${name} -> ${status}, nothing added`, async () => {
      const { request, core } = await testWeb();
      const res = await request("POST", "/api/v1/bans", { json: body });
      expect(res.status).toBe(status);
      expect((await res.json()).error).toBeString();
      expect(core.bans.size).toBe(0);
    });
  }

  it("a 1 MB body -> 413 before parsing", async () => {
    const { request, core } = await testWeb();
    const body = JSON.stringify({ username: "u".repeat(1024 * 1024), minutes: 5 });
    const res = await request("POST", "/api/v1/bans", {
      body,
      headers: { "content-type": "application/json", "content-length": String(body.length) },
    });
    expect(res.status).toBe(413);
    expect(core.bans.size).toBe(0);
  });

  it("strangers get 401 (no token) and 403 (no CSRF); nothing changes", async () => {
    const { request, core } = await testWeb();
    const ban = core.bans.add({ kind: "username", value: "kept", minutes: 5 });
    expect((await request("GET", "/api/v1/bans", { auth: false })).status).toBe(401);
    expect((await request("POST", "/api/v1/bans", { auth: false, json: { username: "x", minutes: 5 } })).status).toBe(
      401,
    );
    expect((await request("DELETE", `/api/v1/bans/${ban.id}`, { auth: false })).status).toBe(401);
    expect((await request("POST", "/api/v1/bans", { csrf: false, json: { username: "x", minutes: 5 } })).status).toBe(
      403,
    );
    expect((await request("POST", `/bans/${ban.id}/remove`, { csrf: false, form: {} })).status).toBe(403);
    expect((await request("GET", "/bans", { auth: false })).status).toBe(303);
    expect(core.bans.list().map((b) => b.value)).toEqual(["kept"]);
  });

  it("a bad id -> 404", async () => {
    const { request } = await testWeb();
    for (const id of ["0", "-1", "abc", "1e3", "99999999999999999999", "1%2F2"])
      expect([id, (await request("DELETE", `/api/v1/bans/${id}`)).status]).toEqual([id, 404]);
  });

  it("an address ban covering the admin's own address needs confirmOwnAddress (the admin page shares the port)", async () => {
    const { web, cookie, csrf, core } = await testWeb();
    const post = (body: unknown) => {
      const req = new Request("http://localhost/api/v1/bans", {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: "http://localhost" },
        body: JSON.stringify(body),
      });
      setRemote(req, "::ffff:192.0.2.9");
      return web.handle(req);
    };
    const refused = await post({ address: "192.0.2.0/24", minutes: 5 });
    expect(refused.status).toBe(409);
    expect((await refused.json()).message).toContain("your own address");
    expect(core.bans.size).toBe(0);
    expect((await post({ address: "198.51.100.0/24", minutes: 5 })).status).toBe(201);
    expect((await post({ address: "192.0.2.0/24", minutes: 5, confirmOwnAddress: true })).status).toBe(201);
  });

  it("::/0 covers an IPv4 admin's own address too: it needs confirmOwnAddress, like 0.0.0.0/0", async () => {
    const { web, cookie, csrf, core } = await testWeb();
    const post = (body: unknown, remote: string) => {
      const req = new Request("http://localhost/api/v1/bans", {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json", origin: "http://localhost" },
        body: JSON.stringify(body),
      });
      setRemote(req, remote);
      return web.handle(req);
    };
    for (const [address, remote] of [
      ["::/0", "192.0.2.9"],
      ["::/0", "::ffff:192.0.2.9"],
      ["::/64", "127.0.0.1"],
      ["0.0.0.0/0", "::ffff:127.0.0.1"],
    ]) {
      const refused = await post({ address, minutes: 5 }, remote!);
      expect([address, remote, refused.status]).toEqual([address, remote, 409]);
      expect((await refused.json()).message).toContain("your own address");
    }
    expect(core.bans.size).toBe(0);
    expect((await post({ address: "::/0", minutes: 5, confirmOwnAddress: true }, "192.0.2.9")).status).toBe(201);
    expect(core.bans.addressBanned("192.0.2.9")).toBe(true);
  });

  it("10 000 bans: the 10 001st is a 409 naming the bound, listing stays one answer", async () => {
    const { request, core, db } = await testWeb();
    const t = Date.now();
    const insert = db.$client.prepare(
      "INSERT INTO bans (kind, value, created_at, expires_at, created_by) VALUES ('username', ?, ?, ?, 'test')",
    );
    db.$client.transaction(() => {
      for (let i = 0; i < 10_000; i++) insert.run(`spray-${i}`, t, t + 3_600_000);
    })();
    core.bans.reload();
    const res = await request("POST", "/api/v1/bans", { json: { username: "one-more", minutes: 5 } });
    expect(res.status).toBe(409);
    expect((await res.json()).message).toContain("10000");
    const list = await (await request("GET", "/api/v1/bans")).json();
    expect(list.items).toHaveLength(10_000);
    const page = await request("GET", "/bans");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("10000 of at most 10000 bans");
  });
});

describe("the Bans page without JavaScript", () => {
  it("adds from the form, shows the ban with its expiry, removes it; errors keep the form", async () => {
    const { request, core } = await testWeb();
    const added = await request("POST", "/bans", { form: { kind: "clientId", value: "plc-<b>", minutes: "1440" } });
    expect(added.status).toBe(303);
    expect(added.headers.get("location")).toBe("/bans");
    const html = await (await request("GET", "/bans")).text();
    expect(html).toContain("plc-&lt;b&gt;");
    expect(html).not.toContain("plc-<b>");
    const ban = core.bans.list()[0]!;
    expect(html).toContain(new Date(ban.expiresAt).toISOString());
    const bad = await request("POST", "/bans", { form: { kind: "address", value: "10.0.0.0/99", minutes: "60" } });
    expect(bad.status).toBe(400);
    const badHtml = await bad.text();
    expect(badHtml).toContain("prefix length");
    expect(badHtml).toContain('value="10.0.0.0/99"');
    expect((await request("POST", "/bans", { form: { kind: "root", value: "x", minutes: "60" } })).status).toBe(400);
    expect((await request("POST", "/bans", { form: { kind: "username", value: "x", minutes: "-5" } })).status).toBe(
      400,
    );
    expect((await request("POST", `/bans/${ban.id}/remove`, { form: {} })).status).toBe(303);
    expect(core.bans.size).toBe(0);
  });

  it("the failed-logins list has a Ban button per row; Disconnect offers Deactivate or Ban", async () => {
    const { request, core } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "dev-9" });
    core.credentials.loginRefused("mqtt", "dev-9", "wrong-password", { remote: "198.51.100.7", clientId: "cid-9" });
    const list = await (await request("GET", "/integrations/failed-logins")).text();
    expect(list).toContain('value="address:198.51.100.7"');
    expect(list).toContain('value="clientId:cid-9"');
    expect(list).toContain('value="username:dev-9"');
    const oneClick = await request("POST", "/bans", { form: { target: "address:198.51.100.7", minutes: "60" } });
    expect(oneClick.status).toBe(303);
    expect(core.bans.list()[0]).toMatchObject({ kind: "address", value: "198.51.100.7" });

    const s = core.sessions.open({
      integration,
      type: "mqtt",
      clientId: "cid-9",
      remote: "203.0.113.3",
      kick: () => {},
    });
    const page = await request("POST", `/sessions/${s.id}/disconnect`, { form: {} });
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain("It may connect again at once");
    expect(text).toContain(`/integrations/${integration.id}/toggle`);
    expect(text).toContain('value="clientId:cid-9"');
    expect(text).toContain('value="address:203.0.113.3"');
  });
});

describe("gatehouse bans (CLI) beside the running appliance", () => {
  it("add refuses the next login at once and drops the matching session; list and remove; recorded as cli", async () => {
    const { app, dir } = await testApp(["--opcua-port", "off"]);
    try {
      const port = app.address("mqtt")!.port;
      const { password } = await app.core.credentials.create({ type: "mqtt", username: "cli-dev" });
      const live = await connectMqtt(port, { username: "cli-dev", password, clientId: "cli-live" });
      const gone = closed(live);
      const kicked = waitFor(app.core.events, "session.kicked", (e) => e.session.clientId === "cli-live");

      const add = cli(dir, "add", "--client-id", "cli-live", "--minutes", "10", "--json");
      expect(add.err).toBe("");
      expect(add.code).toBe(0);
      const ban = JSON.parse(add.out);
      expect(ban).toMatchObject({ kind: "clientId", value: "cli-live", createdBy: "cli" });
      // a login asks for the CLI's writes first: refused at once, no poll to wait for
      expect(await refusalCode(port, { username: "cli-dev", password, clientId: "cli-live" })).toBe(5);
      await kicked;
      await gone;

      const list = cli(dir, "list");
      expect(list.out).toContain(`${ban.id}\tclientId\tcli-live\tuntil `);
      expect(cli(dir, "add", "--address", "10.0.0.0/40").code).toBe(2);
      expect(cli(dir, "add", "--address", "10.0.0.1", "--username", "x").code).toBe(2);
      expect(cli(dir, "add", "--username", "x", "--minutes", "0").err).toContain("minutes");
      expect(cli(dir, "remove", "nope").code).toBe(2);
      expect(cli(dir, "remove", String(ban.id)).code).toBe(0);
      expect(cli(dir, "remove", String(ban.id)).err).toContain("not found");
      expect(await refusalCode(port, { username: "cli-dev", password, clientId: "cli-live" })).toBe(0);
      expect(app.core.bans.size).toBe(0);
      expect(app.core.activity.list({ action: "ban." }).map((r) => [r.action, r.actor])).toEqual([
        ["ban.removed", "cli"],
        ["ban.added", "cli"],
      ]);
    } finally {
      await app.stop();
    }
  }, 60_000);
});
