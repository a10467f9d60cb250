import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { App } from "../../src/app.ts";
import { adminPassword, cleanupTempDirs, testApp } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { startMosquitto, stopUpstreams } from "../helpers/upstream.ts";

/** The Uplinks page in a real Chromium: add through the form, the state live through the event stream. */
let browser: Browser;
let app: App;
let url: string;
let up: Awaited<ReturnType<typeof startMosquitto>>;

beforeAll(async () => {
  browser = await launchBrowser();
  up = await startMosquitto();
  ({ app, url } = await testApp(["--opcua-port", "off", "--uplink-reconnect-max", "1"]));
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await stopUpstreams();
  cleanupTempDirs();
});

async function signIn(page: Page) {
  await page.goto(`${url}/uplinks`);
  await page.fill('input[name="username"]', "admin");
  await page.fill('input[name="password"]', adminPassword);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${url}/uplinks`);
}

const secret = "Page-Secret-9xq2";

describe("the Uplinks page", () => {
  it("adds an uplink through the form (the password write-only), then shows its state live, without a reload", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page);
    await page.click('nav a[href="/uplinks"]');
    await page.waitForSelector("text=No uplink yet");
    await page.click("text=Add uplink");
    await page.waitForURL(`${url}/uplinks/new`);
    // a mistake first: the form comes back with the field's error, and without the password
    await page.fill('input[name="name"]', "page-cloud");
    await page.fill('textarea[name="urls"]', "http://not-mqtt.example");
    await page.fill('input[name="password"]', secret);
    await page.fill('input[name="remotePrefix"]', "page-site/");
    await page.fill('input[name="username"]', "edge-page");
    await page.click('button:has-text("Save uplink")');
    await page.waitForSelector("text=use mqtt://, mqtts://, ws:// or wss://");
    expect(await page.content()).not.toContain(secret);
    await page.fill('textarea[name="urls"]', `mqtt://127.0.0.1:${up.port}`);
    await page.fill('input[name="password"]', secret);
    await page.fill('textarea[name="forward"]', "page/#");
    await page.click('button:has-text("Save uplink")');
    await page.waitForURL(`${url}/uplinks`);
    const row = page.locator('tr[data-uplink="page-cloud"]');
    await row.locator("text=connected").first().waitFor();
    await row.locator(".badge.online").waitFor({ timeout: 15_000 });
    expect(await page.content()).not.toContain(secret);

    // the upstream goes away: the row says so by itself (the event stream), with "disconnected since"
    await up.stop();
    await row.locator("text=disconnected").waitFor({ timeout: 15_000 });
    // what waits is counted as it comes in
    const { password } = await app.core.credentials.create({
      type: "mqtt",
      username: "plc-page",
      publishAcl: ["page/#"],
    });
    const plc = await connectMqtt(app.address("mqtt")!.port, { username: "plc-page", password, clientId: "plc-page" });
    for (let i = 0; i < 7; i++) await plc.publishAsync("page/x", String(i), { qos: 1 });
    await row.locator("td.queued", { hasText: "7 messages" }).waitFor({ timeout: 15_000 });
    await up.restart();
    await row.locator(".badge.online").waitFor({ timeout: 20_000 });
    await row.locator("td.forwarded", { hasText: "7 (" }).waitFor({ timeout: 15_000 });
    await plc.endAsync();

    // the edit page leaves the password field empty
    await row.locator("text=Edit").click();
    await page.waitForURL(`${url}/uplinks/page-cloud/edit`);
    expect(await page.inputValue('input[name="password"]')).toBe("");
    expect(await page.getAttribute('input[name="password"]', "placeholder")).toContain("stored");
    expect(await page.content()).not.toContain(secret);
    await page.click("text=Cancel");
    await page.waitForURL(`${url}/uplinks`);

    // disable, then remove (the confirm names it)
    await page.locator('tr[data-uplink="page-cloud"] button:has-text("Disable")').click();
    await page.locator('tr[data-uplink="page-cloud"] .badge.deactivated').waitFor();
    let asked = "";
    page.once("dialog", (d) => {
      asked = d.message();
      void d.accept();
    });
    await page.locator('tr[data-uplink="page-cloud"] button:has-text("Remove")').click();
    await page.waitForSelector("text=No uplink yet");
    expect(asked).toContain('"page-cloud"');
    await context.close();
  }, 90_000);

  it("on a phone no uplink page scrolls sideways", async () => {
    const token = app.core.admins.createApiToken("phone").token;
    await fetch(`${url}/api/v1/uplinks`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "a-long-uplink-name-for-the-central-cluster",
        urls: [
          "mqtts://node-1.mqtt-cluster.central.example.com:8883",
          "mqtts://node-2.mqtt-cluster.central.example.com:8883",
        ],
        forward: ["plant/line-3/cabinet-12/#", "plant/line-4/#"],
        remotePrefix: "europe/plant-berlin/line-3/",
      }),
    });
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    const page = await context.newPage();
    await signIn(page);
    const wide: string[] = [];
    for (const path of ["/uplinks", "/uplinks/new", "/uplinks/a-long-uplink-name-for-the-central-cluster/edit"]) {
      await page.goto(`${url}${path}`);
      const { scroll, client } = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      if (scroll > client) wide.push(`${path}: ${scroll} > ${client}`);
    }
    expect(wide).toEqual([]);
    await context.close();
  }, 60_000);
});
