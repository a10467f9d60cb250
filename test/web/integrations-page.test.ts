import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { App } from "../../src/app.ts";
import { parseCsv } from "../../src/cli/import-file.ts";
import { staleSession } from "../../src/web/auth.tsx";
import { cleanupTempDirs, testApp, testWeb } from "../helpers/app.ts";
import { signIn } from "../helpers/http.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * The Integrations page's routes (issue 26, part A) through `app.handle` and, where a part speaks, the
 * whole appliance: bulk work with and without JavaScript, exports, search, the page past the end, the
 * parts' connection help, the no-JS type switch, the stale-session answer, favicon and setup pages.
 */

afterAll(cleanupTempDirs);

/** form: a urlencoded body that may repeat a name (`ids`), as a browser sends ticked checkboxes. */
function form(fields: [string, string][]): { body: string; headers: Record<string, string> } {
  return {
    body: new URLSearchParams(fields).toString(),
    headers: { "content-type": "application/x-www-form-urlencoded" },
  };
}

describe("bulk work", () => {
  it("asks once naming the count (without JS), then deactivates exactly the ticked rows with one entry each", async () => {
    const { core, request } = await testWeb();
    const made = await core.credentials.createMany(
      ["a", "b", "c"].map((n) => ({ type: "mqtt" as const, username: `line-${n}` })),
    );
    const [a, b, c] = made.map((m) => m.integration.id);
    const ticked: [string, string][] = [
      ["action", "deactivate"],
      ["ids", String(a)],
      ["ids", String(b)],
      ["back", "/integrations?q=line&size=50"],
    ];
    const asked = await request("POST", "/integrations/bulk", form(ticked));
    expect(asked.status).toBe(200);
    const page = await asked.text();
    expect(page).toContain("Deactivate 2 integrations?");
    expect(page).toContain("line-a, line-b");
    expect(core.credentials.get(a!)!.active).toBe(true); // asked, changed nothing
    const done = await request("POST", "/integrations/bulk", form([...ticked, ["confirmed", "yes"]]));
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe("/integrations?q=line&size=50&done=deactivated&n=2");
    expect([a, b, c].map((id) => core.credentials.get(id!)!.active)).toEqual([false, false, true]);
    expect(core.activity.list({ action: "integration.deactivated" }).map((x) => x.subject)).toEqual([
      "line-b",
      "line-a",
    ]);
    expect(await (await request("GET", done.headers.get("location")!)).text()).toContain("Deactivated 2 integrations.");
  });

  it("all matching the filter: every page of it, nothing else; delete too", async () => {
    const { core, request } = await testWeb();
    await core.credentials.createMany(
      Array.from({ length: 60 }, (_, i) => ({ type: "mqtt" as const, username: `${i % 2 ? "keep" : "drop"}-${i}` })),
    );
    const all: [string, string][] = [
      ["action", "delete"],
      ["all", "1"],
      ["q", "drop"],
      ["confirmed", "yes"],
    ];
    const res = await request("POST", "/integrations/bulk", form(all));
    expect(res.headers.get("location")).toBe("/integrations?done=deleted&n=30");
    expect(core.credentials.count()).toBe(30);
    expect(core.credentials.list({ q: "drop" }).total).toBe(0);
  });

  it("sets permissions (a list left empty stays), and refuses bad filters on its page", async () => {
    const { core, request } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "scoped" });
    const base: [string, string][] = [
      ["action", "permissions"],
      ["ids", String(integration.id)],
      ["confirmed", "yes"],
    ];
    const empty = await request("POST", "/integrations/bulk", form(base));
    expect(empty.status).toBe(400);
    expect(await empty.text()).toContain("give at least one list");
    const bad = await request("POST", "/integrations/bulk", form([...base, ["publishAcl", "bad/#/x"]]));
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("valid MQTT topic filter");
    const ok = await request("POST", "/integrations/bulk", form([...base, ["subscribeAcl", "plant/# hall/+"]]));
    expect(ok.status).toBe(303);
    expect(core.credentials.get(integration.id)).toMatchObject({
      publishAcl: ["#"],
      subscribeAcl: ["plant/#", "hall/+"],
    });
  });

  it("is refused without the CSRF token, and says so when nothing or no action is chosen", async () => {
    const { core, request } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "guarded" });
    const fields: [string, string][] = [
      ["action", "delete"],
      ["ids", String(integration.id)],
      ["confirmed", "yes"],
    ];
    const forged = await request("POST", "/integrations/bulk", { ...form(fields), csrf: false });
    expect(forged.status).toBe(403);
    expect(core.credentials.count()).toBe(1);
    const none = await request("POST", "/integrations/bulk", form([["action", "delete"]]));
    expect(none.status).toBe(400);
    expect(await none.text()).toContain("No integration was selected");
    const noAction = await request("POST", "/integrations/bulk", form([["ids", String(integration.id)]]));
    expect(noAction.status).toBe(400);
    expect(core.credentials.count()).toBe(1);
  });

  it("exports CSV the CLI can import (no formula runs in a spreadsheet) and JSON without secrets", async () => {
    const { core, request } = await testWeb();
    await core.credentials.create({ type: "http", username: "-gw-1", description: '=HYPERLINK("x"),"quoted"' });
    await core.credentials.create({ type: "opcua", username: "scada-2", description: "hall 2" });
    const csv = await request(
      "POST",
      "/integrations/bulk",
      form([
        ["action", "export-csv"],
        ["all", "1"],
      ]),
    );
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toContain("text/csv");
    expect(csv.headers.get("content-disposition")).toMatch(/^attachment; filename="gatehouse-integrations-.*\.csv"$/);
    const rows = parseCsv(await csv.text());
    expect(rows.map((r) => [r.type, r.username, r.description])).toEqual([
      ["http", "-gw-1", `'=HYPERLINK("x"),"quoted"`],
      ["opcua", "scada-2", "hall 2"],
    ]);
    expect(rows[0]).toMatchObject({ active: "true", status: "offline", publishacl: "#", lastloginat: "" });
    const json = await request(
      "POST",
      "/integrations/bulk",
      form([
        ["action", "export-json"],
        ["all", "1"],
        ["type", "opcua"],
      ]),
    );
    const text = await json.text();
    expect(JSON.parse(text)).toEqual([expect.objectContaining({ username: "scada-2", type: "opcua" })]);
    expect(text).not.toContain("$argon2");
    expect(text).not.toContain("passwordHash");
    expect(core.activity.list({ action: "integrations.exported" })).toHaveLength(2);
  });
});

describe("the list", () => {
  it("says a page past the end does not exist, and offers the last", async () => {
    const { core, request } = await testWeb();
    await core.credentials.createMany(
      Array.from({ length: 30 }, (_, i) => ({ type: "mqtt" as const, username: `p-${i}` })),
    );
    const html = await (await request("GET", "/integrations?page=9")).text();
    expect(html).toContain("There is no page 9: 30 integrations fill 2 pages.");
    expect(html).toContain('href="/integrations?page=2"');
    expect(html.match(/<tbody id="integration-/g)).toBeNull();
    const jump = await (await request("GET", "/integrations?page=2")).text();
    expect(jump).not.toContain("There is no page");
    expect(jump).toContain('name="page" min="1" max="2" value="2"'); // the jump form
  });

  it("finds by description", async () => {
    const { core, request } = await testWeb();
    await core.credentials.create({ type: "mqtt", username: "anonymous-name", description: "Cabinet 12, hall 7" });
    await core.credentials.create({ type: "mqtt", username: "other" });
    const html = await (await request("GET", "/integrations?q=cabinet%2012")).text();
    expect(html).toContain("1 integration ·");
    expect(html).toContain('data-username="anonymous-name"');
  });

  it("opens a row's detail for htmx, and an integration's own page without JS", async () => {
    const { core, request } = await testWeb();
    const { integration } = await core.credentials.create({
      type: "mqtt",
      username: "detailed",
      description: "<b>hall</b>",
      denySubscribeAcl: ["plant/secret/#"],
    });
    const hx = { headers: { "hx-request": "true" } };
    const open = await (await request("GET", `/integrations/${integration.id}?detail=1`, hx)).text();
    expect(open).toContain('<tr class="detail">');
    expect(open).toContain("plant/secret/#");
    expect(open).toContain("&lt;b&gt;hall&lt;/b&gt;");
    expect(await (await request("GET", `/integrations/${integration.id}`, hx)).text()).not.toContain(
      'tr class="detail"',
    );
    const page = await request("GET", `/integrations/${integration.id}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<!doctype html>");
    expect(html).toContain("Live sessions (0)");
    expect(html).toContain(`action="/integrations/${integration.id}/toggle"`);
  });

  it("without JS, a type chosen in the Add form gives the untouched suggestion that type's shape", async () => {
    const { core, request } = await testWeb();
    const created = await request("POST", "/integrations", {
      form: {
        type: "http",
        username: "mqtt-brave-otter-7f3k",
        suggested: "mqtt-brave-otter-7f3k",
        password: "chosen-password-1",
      },
    });
    expect(created.status).toBe(303);
    expect(core.credentials.findByUsername("http-brave-otter-7f3k")?.type).toBe("http");
    // a name the admin typed is kept whatever its shape
    await request("POST", "/integrations", {
      form: {
        type: "opcua",
        username: "mqtt-typed-by-hand",
        suggested: "mqtt-calm-owl-2k2k",
        password: "pw-long-enough",
      },
    });
    expect(core.credentials.findByUsername("mqtt-typed-by-hand")?.type).toBe("opcua");
  });
});

describe("onboarding", () => {
  it("each pending request says how long ago its device last tried, and whether it still retries", async () => {
    const { core, request } = await testWeb();
    core.onboarding.open({ minutes: 5, by: "test" });
    await core.onboarding.consider("mqtt", "fresh-dev", "fresh-password", { remote: "10.0.0.1" });
    await core.onboarding.consider("mqtt", "gone-dev", "gone-password", { remote: "10.0.0.2" });
    core.db.$client.run("UPDATE onboarding_requests SET last_seen = ? WHERE username = 'gone-dev'", [
      Date.now() - 5 * 60_000,
    ]);
    core.onboarding.reload();
    const panel = await (await request("GET", "/onboarding/panel")).text();
    const rowOf = (name: string) => panel.split("<tr ").find((r) => r.includes(`data-username="${name}"`))!;
    expect(rowOf("fresh-dev")).toMatch(/<td class="retry"><span>\d+ s ago<\/span> <span class="badge online">retrying/);
    expect(rowOf("gone-dev")).toContain("<span>5 min ago</span>");
    expect(rowOf("gone-dev")).toContain("stopped?");
    expect(panel).toContain("must keep trying after being refused");
  });
});

describe("answers around the page", () => {
  it("a stale CSRF token: htmx gets the reason alone, a browser a page in its language", async () => {
    const { core, request } = await testWeb();
    const { integration } = await core.credentials.create({ type: "mqtt", username: "stale" });
    const hx = await request("POST", `/integrations/${integration.id}/toggle`, {
      form: {},
      csrf: false,
      headers: { "hx-request": "true", "x-csrf-token": "from-an-old-page" },
    });
    expect(hx.status).toBe(403);
    const fragment = await hx.text();
    expect(fragment).toBe(`<p class="field-error" role="alert">${Bun.escapeHTML(staleSession)}</p>`);
    const plain = await request("POST", `/integrations/${integration.id}/toggle`, { form: { _csrf: "old" } });
    expect(plain.status).toBe(403);
    const page = await plain.text();
    expect(page).toContain('<html lang="en">');
    expect(page).toContain("/assets/app.css");
    expect(page).not.toContain(">Back<");
    expect(core.credentials.get(integration.id)!.active).toBe(true);
  });

  it("favicon.ico is served from the binary to anybody; the setup link pages are styled and have a language", async () => {
    const { request } = await testWeb();
    const icon = await request("GET", "/favicon.ico", { auth: false });
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toBe("image/svg+xml");
    expect(await icon.text()).toContain("<svg");
    const setup = await request("GET", "/setup?token=not-the-token", { auth: false });
    expect(setup.status).toBe(403);
    const html = await setup.text();
    expect(html).toContain('<html lang="en">');
    expect(html).toContain("/assets/app.css");
    expect(html).toContain("invalid, used or expired");
  });
});

describe("with the parts running", () => {
  let app: App;
  let url: string;
  let cookie: string;
  beforeAll(async () => {
    ({ app, url } = await testApp());
    ({ cookie } = await signIn(url));
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
  });
  const get = (path: string, hx = false) =>
    fetch(`${url}${path}`, { headers: { cookie, ...(hx ? { "hx-request": "true" } : {}) } }).then((r) => r.text());

  it("the Add form explains each type with its part's URLs and a ready example", async () => {
    const mqttPort = app.address("mqtt")!.port;
    const opcuaPort = app.address("opcua")!.port;
    const mqtt = await get("/integrations/new?type=mqtt", true);
    expect(mqtt).toContain(`mosquitto_pub -h &#x27;127.0.0.1&#x27; -p ${mqttPort} -u &#x27;mqtt-`);
    expect(mqtt).toContain(`mqtt://127.0.0.1:${mqttPort}`);
    expect(mqtt).toContain('aria-describedby="integration-username-hint"');
    const opcua = await get("/integrations/new?type=opcua", true);
    expect(opcua).toContain(`opc.tcp://127.0.0.1:${opcuaPort}`);
    expect(opcua).toContain("UserTokenType.UserName");
    const http = await get("/integrations/new?type=http", true);
    expect(http).toContain(`curl -u &#x27;http-`);
    expect(http).toContain(`${url}/api/v1/data/plant/line1/temp?retain=true`);
    const vrpc = await get("/integrations/new?type=vrpc", true);
    expect(vrpc).toContain("&lt;domain&gt;/&lt;agent&gt;");
    expect(vrpc).toContain("new VrpcAgent({");
    expect(vrpc).toContain("domain: &#x27;vrpc&#x27;");
    // the onboarding panel says what each part's clients must do to come in after approval
    const page = await get("/integrations");
    expect(page).toContain("reconnectOnConnackError: true");
    expect(page).toContain("VrpcAgent retries by itself");
  });

  it("an HTTP integration's page has copyable curl examples with the appliance's URL", async () => {
    const { integration } = await app.core.credentials.create({ type: "http", username: "gw-1" });
    const html = await get(`/integrations/${integration.id}`);
    expect(html).toContain("curl -u &#x27;gw-1:PASSWORD&#x27;");
    expect(html).toContain(`${url}/api/v1/data/plant/line1/setpoint?wait=30`);
  });

  it("search finds a live session by client id and address, and keeps the last login's after it ends", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "mqtt", username: "anonymous-7" });
    const client = await connectMqtt(app.address("mqtt")!.port, {
      username: "anonymous-7",
      password,
      clientId: "S7-1500-hall7",
    });
    const html = await get("/integrations?q=s7-1500");
    expect(html).toContain('data-username="anonymous-7"');
    expect(html).toContain("1 integration ·");
    const ended = waitFor(app.core.events, "session.closed", (e) => e.session.integrationId === integration.id);
    client.end(true);
    await ended;
    expect(await get("/integrations?q=S7-1500-HALL7")).toContain('data-username="anonymous-7"');
  });

  it("Settings tells admin sessions apart by browser and address", async () => {
    const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const pre = await fetch(`${url}/login`);
    const preCookie = pre.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = (await pre.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    await fetch(`${url}/login`, {
      method: "POST",
      redirect: "manual",
      headers: {
        cookie: preCookie,
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": firefox,
        origin: url,
      },
      body: new URLSearchParams({ _csrf: csrf, username: "admin", password: "correct-horse-battery" }),
    });
    const settings = await get("/settings");
    expect(settings).toContain("Firefox 133 on Linux");
    expect(settings).toContain("<td>127.0.0.1</td>");
  });
});
