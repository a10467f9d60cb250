import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { App } from "../../src/app.ts";
import { adminPassword, cleanupTempDirs, testApp, vrpcOf } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";
import mqtt from "mqtt";
import { fingerprintOf } from "../../src/core/onboarding.ts";
import { closed, connectMqtt } from "../helpers/mqtt.ts";

let browser: Browser;
let app: App;
let url: string;

beforeAll(async () => {
  browser = await launchBrowser();
  ({ app, url } = await testApp());
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.stop();
  cleanupTempDirs();
});

async function signIn(page: Page) {
  await page.goto(`${url}/integrations`);
  expect(new URL(page.url()).pathname).toBe("/login");
  await page.fill('input[name="username"]', "admin");
  await page.fill('input[name="password"]', adminPassword);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${url}/integrations`);
}

/**
 * editorOpen: the page moves focus into a row opened for editing (its first field) once htmx has settled it;
 * a fill that races that step types into the username instead of the field it names.
 */
const editorOpen = (page: Page) =>
  page.waitForFunction(() => document.activeElement?.closest("tr.editing") && document.activeElement.matches("input"));

describe("the Integrations page in a real browser", () => {
  it("adds, shows the password once, toggles, resets and deletes", async () => {
    const page = await browser.newPage();
    const dialogs: string[] = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await signIn(page);

    await page.click("text=Add integration");
    await page.waitForSelector("#integration-form");
    const suggested = await page.inputValue('#integration-form input[name="username"]');
    await page.fill('#integration-form input[name="description"]', "SCADA in hall 2");
    await page.fill('#integration-form input[name="password"]', "chosen-by-the-admin-42");
    const chooseType = async (type: string) => {
      // the form is swapped for the new type's: wait for htmx to settle it, not for a time
      await page.evaluate(() => {
        const w = window as unknown as { settled?: Promise<void> };
        w.settled = new Promise((r) => document.addEventListener("htmx:afterSettle", () => r(), { once: true }));
      });
      await page.selectOption('#integration-form select[name="type"]', type);
      await page.evaluate(() => (window as unknown as { settled: Promise<void> }).settled);
    };
    await chooseType("opcua");
    const username = await page.inputValue('#integration-form input[name="username"]');
    // changing the type keeps what was typed; the suggested name only changes its prefix
    expect(username).toBe(suggested.replace(/^mqtt-/, "opcua-"));
    expect(await page.inputValue('#integration-form input[name="description"]')).toBe("SCADA in hall 2");
    expect(await page.inputValue('#integration-form input[name="password"]')).toBe("chosen-by-the-admin-42");
    await page.fill('#integration-form input[name="password"]', "");
    await page.fill('#integration-form input[name="username"]', "typed-by-hand");
    await chooseType("http");
    expect(await page.inputValue('#integration-form input[name="username"]')).toBe("typed-by-hand");
    expect((await page.inputValue('#integration-form input[name="password"]')).length).toBeGreaterThanOrEqual(22); // emptied: a fresh one
    await chooseType("opcua");
    await page.fill('#integration-form input[name="username"]', username);
    await page.click("text=Save integration");
    const password = (await page.textContent("#integration-form .secret-value"))!;
    expect(password.length).toBeGreaterThanOrEqual(22);
    const row = page.locator(`tr[data-username="${username}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain("OPC UA");
    expect((await app.core.credentials.verify("opcua", username, password)).ok).toBe(true);

    await row.getByRole("button", { name: "Deactivate" }).click();
    await page.locator(`tr[data-username="${username}"] .badge.deactivated`).waitFor();
    expect(app.core.credentials.findByUsername(username)!.active).toBe(false);
    await page
      .locator(`tr[data-username="${username}"]`)
      .getByRole("button", { name: "Activate", exact: true })
      .click();
    await page.locator(`tr[data-username="${username}"] .badge.offline`).waitFor();

    await page.locator(`tr[data-username="${username}"]`).getByRole("button", { name: "Reset password" }).click();
    // the new password shows once, in the row's detail
    const fresh = (await page
      .locator(`tbody.integration:has(> tr[data-username="${username}"]) .secret-value`)
      .textContent())!;
    expect(fresh).not.toBe(password);
    expect((await app.core.credentials.verify("opcua", username, password)).ok).toBe(false);
    expect((await app.core.credentials.verify("opcua", username, fresh)).ok).toBe(true);

    await page.reload();
    expect(await page.content()).not.toContain(fresh);

    await page.locator(`tr[data-username="${username}"]`).locator("text=Delete").click();
    await page.locator(`tr[data-username="${username}"]`).waitFor({ state: "detached" });
    expect(app.core.credentials.findByUsername(username)).toBeUndefined();
    // every destructive confirmation names its target
    expect(dialogs.some((d) => d.startsWith(`Reset the password of "${username}"?`))).toBe(true);
    expect(dialogs.some((d) => d.startsWith(`Delete "${username}"?`))).toBe(true);
    await page.close();
  }, 60_000);

  it("shows a hostile description as text and runs nothing", async () => {
    const evil = "<img src=x onerror=alert(1)>";
    await app.core.credentials.create({ type: "mqtt", username: "onboarded-by-attacker", description: evil });
    const page = await browser.newPage();
    const dialogs: string[] = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await signIn(page);
    const row = page.locator('tr[data-username="onboarded-by-attacker"]');
    expect(await row.locator(".description").textContent()).toBe(evil);
    expect(await row.locator("img").count()).toBe(0);
    await row.locator("text=Edit").click();
    await editorOpen(page);
    expect(await page.inputValue('tr.editing input[name="description"]')).toBe(evil);
    await page.waitForTimeout(200);
    expect(dialogs).toEqual([]);
    // What was typed survives an edit round trip exactly, entities and quotes included.
    const exact = `a & b &amp; "c" 'd' <e>`;
    await page.fill('tr.editing input[name="description"]', exact);
    await page.click("tr.editing >> text=Save");
    await page.locator('tr[data-username="onboarded-by-attacker"]:not(.editing)').waitFor();
    await page.locator('tr[data-username="onboarded-by-attacker"]').locator("text=Edit").click();
    await editorOpen(page);
    expect(await page.inputValue('tr.editing input[name="description"]')).toBe(exact);
    await page.click("tr.editing >> text=Save");
    await page.locator('tr[data-username="onboarded-by-attacker"]:not(.editing)').waitFor();
    expect(app.core.credentials.findByUsername("onboarded-by-attacker")!.description).toBe(exact);
    await page.close();
  }, 60_000);

  it("shows a client going online live, lists its session and disconnects it", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "mqtt", username: "live-one" });
    const page = await browser.newPage();
    await signIn(page);
    const row = page.locator('tr[data-username="live-one"]');
    await row.locator(".badge.offline").waitFor();
    const client = await connectMqtt(app.address("mqtt")!.port, {
      username: "live-one",
      password,
      clientId: "plc-live",
    });
    await row.locator(".badge.online").waitFor({ timeout: 10_000 });
    // the sessions are in the row's detail, opened from the name
    await row.locator("a.expand").click();
    const detail = page.locator('tbody.integration:has(> tr[data-username="live-one"]) tr.detail');
    expect(await detail.locator("ul.sessions").textContent()).toContain("plc-live");
    const gone = closed(client);
    await detail.getByRole("button", { name: "Disconnect" }).click();
    await gone;
    await page.locator('tr[data-username="live-one"] .badge.offline').waitFor();
    expect(app.core.sessions.countFor(integration.id)).toBe(0);
    await page.close();
  }, 60_000);

  it("edits topic permissions in the row", async () => {
    const { integration } = await app.core.credentials.create({ type: "mqtt", username: "scoped-in-browser" });
    const page = await browser.newPage();
    await signIn(page);
    await page.locator('tr[data-username="scoped-in-browser"]').locator("text=Edit").click();
    await editorOpen(page);
    await page.fill('tr.editing input[name="publishAcl"]', "plant/line1/# plant/line2/+");
    await page.fill('tr.editing input[name="subscribeAcl"]', "plant/#");
    await page.fill('tr.editing input[name="denySubscribeAcl"]', "plant/secret/#");
    // the Save button is htmx's (hx-post): wait for its answer, so a failure names the status it got
    const saved = page.waitForResponse(
      (r) => r.request().method() === "POST" && r.url().endsWith(`/${integration.id}`),
    );
    await page.click("tr.editing >> text=Save");
    expect((await saved).status()).toBe(200);
    await page.locator('tr[data-username="scoped-in-browser"] td.permissions', { hasText: "restricted" }).waitFor();
    expect(app.core.credentials.get(integration.id)).toMatchObject({
      publishAcl: ["plant/line1/#", "plant/line2/+"],
      subscribeAcl: ["plant/#"],
      denySubscribeAcl: ["plant/secret/#"],
    });
    await page.locator('tr[data-username="scoped-in-browser"] a.expand').click();
    const facts = page.locator('tbody.integration:has(> tr[data-username="scoped-in-browser"]) dl.facts');
    expect(await facts.textContent()).toContain("Never receiveplant/secret/#");
    await page.locator('tr[data-username="scoped-in-browser"]').locator("text=Edit").click();
    await editorOpen(page);
    await page.fill('tr.editing input[name="publishAcl"]', "bad/#/topic");
    await page.click("tr.editing >> text=Save");
    await page.locator("tr.editing .field-error", { hasText: "valid MQTT topic filter" }).waitFor();
    await page.close();
  }, 60_000);

  it("works without JavaScript: add shows the password on a full page", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await signIn(page);
    await page.click("text=Add integration");
    expect(new URL(page.url()).pathname).toBe("/integrations/new");
    const username = await page.inputValue('input[name="username"]');
    await page.click("text=Save integration");
    expect(await page.textContent(".secret-value")).toBeTruthy();
    expect(app.core.credentials.findByUsername(username)).toBeDefined();
    // a reload of the answer neither creates again nor shows the password again
    expect((await page.reload())!.status()).toBe(410);
    expect(app.core.credentials.list({ q: username }).total).toBe(1);
    // reset: asks first, naming the target; the answer shows the new password once; a reload resets nothing
    const before = JSON.stringify(app.core.credentials.findByUsername(username));
    await page.goto(`${url}/integrations?q=${encodeURIComponent(username)}`);
    await page.locator(`tr[data-username="${username}"]`).getByRole("button", { name: "Reset password" }).click();
    expect(await page.textContent("main")).toContain(username);
    expect(JSON.stringify(app.core.credentials.findByUsername(username))).toBe(before); // asked, changed nothing
    await page.getByRole("button", { name: "Reset password" }).click();
    const fresh = (await page.textContent(".secret-value"))!;
    expect(
      (await app.core.credentials.verify(app.core.credentials.findByUsername(username)!.type, username, fresh)).ok,
    ).toBe(true);
    expect((await page.reload())!.status()).toBe(410);
    expect(
      (await app.core.credentials.verify(app.core.credentials.findByUsername(username)!.type, username, fresh)).ok,
    ).toBe(true);
    // every action comes back to the list as it was left: filter, order, page size
    const listed = `${url}/integrations?q=${encodeURIComponent(username)}&sort=username&dir=desc&size=50`;
    await page.goto(listed);
    await page.locator(`tr[data-username="${username}"]`).getByRole("button", { name: "Deactivate" }).click();
    expect(page.url()).toBe(listed);
    expect(app.core.credentials.findByUsername(username)!.active).toBe(false);
    await page.locator(`tr[data-username="${username}"]`).getByRole("link", { name: "Delete" }).click();
    await page.getByRole("button", { name: "Delete" }).click();
    expect(page.url()).toBe(listed);
    expect(app.core.credentials.findByUsername(username)).toBeUndefined();
    await context.close();
  }, 60_000);
});

describe("smart onboarding in a real browser", () => {
  it("a request appears live with its fingerprint, an attacker's name shows as text, approve lets the device in", async () => {
    const page = await browser.newPage();
    const dialogs: string[] = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await signIn(page);
    // closed, the panel is one line; its form unfolds from it
    await page.locator("#onboarding summary").click();
    await page.locator("#onboarding").getByRole("button", { name: "Open onboarding" }).click();
    await page.locator("#onboarding .window-open").waitFor();
    const port = app.address("mqtt")!.port;
    const retrying = {
      host: "127.0.0.1",
      port,
      reconnectPeriod: 200,
      reconnectOnConnackError: true,
      connectTimeout: 2000,
    };
    const device = mqtt.connect({
      ...retrying,
      username: "press-42",
      password: "press-42-own-secret",
      clientId: "press-42",
    });
    const hostile = mqtt.connect({
      ...retrying,
      username: "<img src=x onerror=alert(1)>",
      password: "whatever-password",
    });
    try {
      const row = page.locator('#onboarding tr[data-username="press-42"]');
      await row.waitFor({ timeout: 10_000 }); // no reload: the panel refreshes itself
      expect((await row.locator(".fingerprint").textContent())?.trim()).toBe(
        fingerprintOf("press-42", "press-42-own-secret"),
      );
      const evil = page.locator("#onboarding td.username", { hasText: "<img src=x onerror=alert(1)>" });
      await evil.waitFor({ timeout: 10_000 });
      expect(await page.locator("#onboarding img").count()).toBe(0);
      const connected = new Promise<void>((r) => device.once("connect", () => r()));
      // the answer carries the flash; the panel's 2 s refresh may replace it before a loaded machine looks
      const approved = page.waitForResponse((r) => r.url().endsWith("/onboarding/approve"));
      await row.locator("button", { hasText: "Approve" }).click();
      expect(await (await approved).text()).toContain("Approved press-42");
      await connected;
      await page.goto(`${url}/integrations?q=press-42`);
      await page.locator('tr[data-username="press-42"] .badge.online').waitFor();
      expect(dialogs).toEqual([]);
    } finally {
      device.end(true);
      hostile.end(true);
      app.core.onboarding.close();
      await page.close();
    }
  }, 60_000);
});

describe("a live page", () => {
  it("a row added elsewhere appears and goes online without a reload; a failed action says so", async () => {
    const page = await browser.newPage();
    await signIn(page);
    const streaming = page.waitForResponse((r) => r.url().endsWith("/events"));
    await page.goto(`${url}/integrations?q=pushed-row`);
    await streaming; // the page listens before anything changes
    expect(await page.locator("#integration-table").textContent()).toContain("0 integrations");
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "pushed-row" });
    const row = page.locator('tr[data-username="pushed-row"]');
    await row.waitFor({ timeout: 10_000 }); // pushed over /events: no reload
    expect(await page.locator("#integration-table").textContent()).toContain("1 integration ·");
    const c = await connectMqtt(app.address("mqtt")!.port, { username: "pushed-row", password });
    await row.locator(".badge.online").waitFor({ timeout: 10_000 });
    // the summary counts it, linked to the filtered list
    const mqttOnline = String(
      [...app.core.sessions.onlineIds()].filter((id) => app.core.credentials.peek(id)?.type === "mqtt").length,
    );
    await page.waitForFunction(
      (n) =>
        document.querySelector('#summary a[href="/integrations?type=mqtt&status=online"]')?.textContent?.trim() === n,
      mqttOnline,
      { timeout: 10_000 },
    );
    expect(Number(mqttOnline)).toBeGreaterThanOrEqual(1);
    // times are relative, the exact local time on hover
    expect(await row.locator("time").first().textContent()).toMatch(/just now|minute/);
    expect(await row.locator("time").first().getAttribute("title")).toBeTruthy();
    await c.endAsync();
    await row.locator(".badge.online").waitFor({ state: "detached", timeout: 10_000 });
    // a failed login shows up live in the open failed-logins list, which stays open
    await page.locator("#failed-logins summary").click();
    await connectMqtt(app.address("mqtt")!.port, {
      username: "pushed-row",
      password: "wrong-password",
      clientId: "live-failure-probe",
    }).catch(() => undefined);
    // .first(): the row's Ban button names the client id too
    await page
      .locator("#failed-logins[open] td", { hasText: "live-failure-probe" })
      .first()
      .waitFor({ timeout: 10_000 });
    expect(
      Number((await page.locator('#summary a[href="#failed-logins"]').textContent())!.replace("+", "")),
    ).toBeGreaterThanOrEqual(1);
    // deleted elsewhere: the row goes away by itself
    const doomed = await app.core.credentials.create({ type: "mqtt", username: "pushed-row-deleted-elsewhere" });
    const doomedRow = page.locator('tr[data-username="pushed-row-deleted-elsewhere"]');
    await doomedRow.waitFor({ timeout: 10_000 });
    app.core.credentials.remove(doomed.integration.id);
    await doomedRow.waitFor({ state: "detached", timeout: 10_000 });
    // a refused action (a stale CSRF token, as after signing in again elsewhere) says so in a toast
    await page.evaluate(() => document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRF-Token": "stale" })));
    page.on("dialog", (d) => void d.accept());
    await row.locator("button", { hasText: "Deactivate" }).click();
    const toast = page.locator("#toast:not([hidden])");
    await toast.waitFor({ timeout: 10_000 });
    // the server's own words, not an error page's text with a stray "Back"
    expect(await toast.textContent()).toBe(
      "This page is from an earlier sign-in (you signed in again, perhaps in another tab): nothing was changed. Reload the page and try again.",
    );
    expect(app.core.credentials.findByUsername("pushed-row")?.active).toBe(true);
    await page.close();
  }, 60_000);
});

describe("client-side validation", () => {
  it("the username pattern compiles under Chromium's v flag, so a bad name is caught before sending", async () => {
    const page = await browser.newPage();
    await signIn(page);
    await page.click("text=Add integration");
    const input = page.locator('#integration-form input[name="username"]');
    await input.fill("line 3");
    expect(await input.evaluate((el) => (el as HTMLInputElement).validity.patternMismatch)).toBe(true);
    await input.fill("plant/line-3:press@hall_2");
    expect(await input.evaluate((el) => (el as HTMLInputElement).validity.valid)).toBe(true);
    await page.close();
  }, 30_000);
});

describe("confirmations without htmx", () => {
  it("revoking an API token names it and asks first; dismissing keeps it", async () => {
    const page = await browser.newPage();
    await signIn(page);
    for (const t of app.core.admins.listApiTokens()) app.core.admins.revokeApiToken(t.id);
    await page.goto(`${url}/settings/tokens`);
    expect(await page.textContent("table")).toContain("No API tokens yet");
    app.core.admins.createApiToken("provisioning script");
    await page.reload();
    const dialogs: string[] = [];
    let accept = false;
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void (accept ? d.accept() : d.dismiss());
    });
    const asked = page.waitForEvent("dialog");
    await page.getByRole("button", { name: "Revoke" }).click();
    await asked;
    expect(dialogs).toEqual(['Revoke the API token "provisioning script"? Scripts using it are refused at once.']);
    expect(await page.textContent("table")).toContain("provisioning script");
    accept = true;
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Revoke" }).click()]);
    expect(await page.textContent("table")).toContain("No API tokens yet");
    await page.close();
  }, 30_000);
});

describe("removing an offline VRPC agent", () => {
  it("names the agent and asks first; dismissing keeps it, accepting removes it in one step", async () => {
    const announce = (payload: string) =>
      app.core.bus.publish({ topic: "plant/ghost-agent/__agentInfo__", payload: Buffer.from(payload), retain: true });
    await announce(JSON.stringify({ status: "offline", hostname: "hall-7", version: "" }));
    const page = await browser.newPage();
    await signIn(page);
    await page.goto(`${url}/agents`);
    const dialogs: string[] = [];
    let accept = false;
    const asked = () =>
      new Promise<void>((resolve) =>
        page.once(
          "dialog",
          (d) => (dialogs.push(d.message()), void (accept ? d.accept() : d.dismiss()).then(() => resolve())),
        ),
      );
    const button = page.getByRole("button", { name: "Remove plant/ghost-agent" });
    const first = asked();
    await button.click();
    await first;
    expect(dialogs).toEqual([
      'Remove the agent "plant/ghost-agent"? Its retained announcements are cleared; it reappears when it announces itself again.',
    ]);
    expect(vrpcOf(app).agent("plant", "ghost-agent")).toBeDefined();
    accept = true;
    const second = asked();
    const posted = page.waitForResponse(
      (r) => r.url().endsWith("/agents/plant/ghost-agent/remove") && r.request().method() === "POST",
    );
    await Promise.all([button.click(), second]);
    expect((await posted).status()).toBe(303);
    await page.waitForURL(`${url}/agents`);
    await page.waitForLoadState();
    expect(dialogs.length).toBe(2); // the confirmed form is not asked again by a confirmation page
    expect(vrpcOf(app).agent("plant", "ghost-agent")).toBeUndefined();
    expect(await page.textContent("main")).not.toContain("plant/ghost-agent");
    await page.close();
  }, 30_000);
});

describe("on a phone (390 × 844)", () => {
  it("no signed-in page scrolls sideways, and row actions are at least 44 px tall touch targets", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    const page = await context.newPage();
    await signIn(page);
    const { integration } = await app.core.credentials.create({
      type: "opcua",
      username: "a-rather-long-username-for-a-plc-gateway-in-hall-7",
      description: "press line 3, cabinet 12, left side",
    });
    const wide: string[] = [];
    for (const path of [
      "/integrations",
      "/integrations/new",
      `/integrations/${integration.id}/edit`,
      "/agents",
      "/certificates",
      "/topics",
      "/activity",
      "/settings",
      "/settings/tokens",
    ]) {
      await page.goto(`${url}${path}`);
      const { scroll, client } = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      if (scroll > client) wide.push(`${path}: ${scroll} > ${client}`);
    }
    expect(wide).toEqual([]);
    await page.goto(`${url}/integrations?q=a-rather-long`);
    if (process.env.SHOT) await page.screenshot({ path: process.env.SHOT, fullPage: true });
    const row = page.locator(`tr[data-username="a-rather-long-username-for-a-plc-gateway-in-hall-7"]`);
    for (const name of ["Deactivate", "Reset password"]) {
      const box = (await row.getByRole("button", { name }).boundingBox())!;
      expect(box.height).toBeGreaterThanOrEqual(44);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    const del = (await row.getByRole("link", { name: "Delete" }).boundingBox())!;
    expect(del.height).toBeGreaterThanOrEqual(44);
    expect(del.x + del.width).toBeLessThanOrEqual(390);
    // the signed-in name and Sign out stay inside the dark header
    const header = (await page.locator("header.top").boundingBox())!;
    const signOut = (await page.getByRole("button", { name: "Sign out" }).boundingBox())!;
    expect(signOut.y + signOut.height).toBeLessThanOrEqual(header.y + header.height);
    await context.close();
  }, 60_000);
});

describe("by keyboard", () => {
  it("Enter saves the edited row, Escape cancels it, and focus stays on the row after an action", async () => {
    const page = await browser.newPage();
    await signIn(page);
    await app.core.credentials.create({ type: "mqtt", username: "kbd-press-1", description: "old" });
    await page.goto(`${url}/integrations?q=kbd-press-1`);
    const row = page.locator("#integration-table tbody tr").first();
    await row.getByRole("link", { name: "Edit" }).click();
    const description = page.locator("tr.editing input[name=description]");
    await description.fill("changed, then abandoned");
    await description.press("Escape");
    await page.locator("tr.editing").waitFor({ state: "detached" });
    expect(app.core.credentials.findByUsername("kbd-press-1")!.description).toBe("old");
    await page.waitForFunction(() => document.activeElement?.textContent?.trim() === "Edit", undefined, {
      timeout: 5_000,
    });
    await page.keyboard.press("Enter"); // the focused Edit link opens the editor again
    await description.waitFor();
    // the focus moves into the editor once htmx has settled it
    await page.waitForFunction(() => (document.activeElement as HTMLInputElement | null)?.name === "username");
    await description.fill("saved with Enter");
    await description.press("Enter");
    await page.locator("tr.editing").waitFor({ state: "detached" });
    expect(app.core.credentials.findByUsername("kbd-press-1")!.description).toBe("saved with Enter");
    // The deactivation is pushed to the page, whose table then refreshes: the focus stays on the row.
    await page.evaluate(() => {
      const w = window as unknown as { tableSettled: boolean };
      w.tableSettled = false;
      document.addEventListener("htmx:afterSettle", (e) => {
        if ((e as CustomEvent).detail.requestConfig?.headers?.["HX-Target"] === "integration-table")
          w.tableSettled = true;
      });
    });
    await row.getByRole("button", { name: "Deactivate" }).click();
    await row.getByRole("button", { name: "Activate", exact: true }).waitFor();
    await page.waitForFunction(() => document.activeElement?.textContent?.trim() === "Activate", undefined, {
      timeout: 5_000,
    });
    await page.waitForFunction(() => (window as unknown as { tableSettled: boolean }).tableSettled, undefined, {
      timeout: 10_000,
    });
    expect(await page.evaluate(() => document.activeElement?.textContent?.trim())).toBe("Activate");
    await page.close();
  }, 30_000);
});

describe("back and forward", () => {
  it("the search box shows the filter of the list it belongs to", async () => {
    const page = await browser.newPage();
    await signIn(page);
    await app.core.credentials.create({ type: "mqtt", username: "history-probe" });
    await app.core.credentials.create({ type: "mqtt", username: "history-other" });
    await page.goto(`${url}/integrations`);
    const search = page.locator('form.toolbar input[name="q"]');
    await search.fill("history-probe");
    await page.waitForURL(/q=history-probe/);
    await page.locator("#integration-table").getByText("1 integration ·").waitFor();
    await page.goBack();
    await page.waitForURL(`${url}/integrations`);
    await page.waitForFunction(
      () => (document.querySelector('form.toolbar input[name="q"]') as HTMLInputElement).value === "",
      undefined,
      { timeout: 5_000 },
    );
    await page.locator('tr[data-username="history-other"]').waitFor({ timeout: 5_000 }); // the unfiltered list
    await page.close();
  }, 30_000);
});
