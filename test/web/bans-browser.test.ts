import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { App } from "../../src/app.ts";
import { adminPassword, cleanupTempDirs, testApp } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";
import { closed, connectMqtt, refusalCode } from "../helpers/mqtt.ts";
import { waitFor } from "../helpers/wait.ts";

// Bans in a real Chromium: one click from a failed login, the own-address warning, Disconnect's follow-up, axe.
const axeSource = await Bun.file(require.resolve("axe-core/axe.min.js")).text();

let browser: Browser;
let app: App;
let url: string;
let mqttPort: number;

beforeAll(async () => {
  browser = await launchBrowser();
  ({ app, url } = await testApp(["--opcua-port", "off"]));
  mqttPort = app.address("mqtt")!.port;
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.stop();
  cleanupTempDirs();
});

/** newPage: axe is injected as an inline script, which the page's CSP would refuse. */
const newPage = async () => (await browser.newContext({ bypassCSP: true })).newPage();

async function signIn(page: Page) {
  await page.goto(`${url}/integrations`);
  await page.fill('input[name="username"]', "admin");
  await page.fill('input[name="password"]', adminPassword);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${url}/integrations`);
}

/** failFrom: a failed MQTT login from a chosen loopback address (recorded in the failed-logins list). */
async function failFrom(localAddress: string, username: string) {
  const failed = waitFor(app.core.events, "login.failed", (e) => e.username === username);
  await connectMqtt(mqttPort, {
    username,
    password: "wrong-password",
    clientId: `c-${localAddress}`,
    localAddress,
  }).then(
    (c) => c.end(true),
    () => undefined,
  );
  await failed;
}

async function seriousViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    type V = { id: string; impact: string | null; nodes: { target: string[] }[] };
    const r = await (window as unknown as { axe: { run(): Promise<{ violations: V[] }> } }).axe.run();
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, target: v.nodes.map((n) => n.target.join(" ")) }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}) at ${v.target.slice(0, 3).join(", ")}`);
}

describe("bans in the browser", () => {
  it("one click on a failed login bans its address: listed with expiry, the next connect refused before any hash", async () => {
    const { password } = await app.core.credentials.create({
      type: "mqtt",
      username: "noisy-plc",
      password: "right-pw-123",
    });
    await failFrom("127.0.0.2", "noisy-plc");
    const page = await newPage();
    await signIn(page);
    await page.click("#failed-logins summary");
    const row = page.locator("#failed-logins tr", { hasText: "127.0.0.2" }).first();
    await row.getByRole("button", { name: "Ban 1 h" }).click();
    await page.waitForURL(`${url}/bans`);
    const listed = page.locator("#bans tbody tr", { hasText: "127.0.0.2" });
    await listed.waitFor();
    expect(await listed.locator("time").first().getAttribute("datetime")).toBe(
      new Date(app.core.bans.list()[0]!.expiresAt).toISOString(),
    );
    const before = { ...app.core.credentials.stats };
    expect(await refusalCode(mqttPort, { username: "noisy-plc", password, localAddress: "127.0.0.2" } as never)).toBe(
      -1,
    );
    expect(app.core.credentials.stats).toEqual(before);
    expect(app.core.activity.list({ action: "ban.added" })[0]).toMatchObject({
      subject: "address 127.0.0.2",
      actor: "admin:admin",
    });
    expect(await seriousViolations(page)).toEqual([]);

    // Remove (app.js asks first)
    page.once("dialog", (d) => void d.accept());
    await listed.getByRole("button", { name: "Remove" }).click();
    await page.waitForURL(`${url}/bans`);
    await page.locator("#bans", { hasText: "No bans" }).waitFor();
    expect(app.core.bans.size).toBe(0);
    await page.close();
  }, 60_000);

  it("a ban of the admin's own address is not added without ticking the warning", async () => {
    await failFrom("127.0.0.1", "from-my-desk");
    const page = await newPage();
    await signIn(page);
    await page.click("#failed-logins summary");
    const row = page.locator("#failed-logins tr", { hasText: "from-my-desk" }).first();
    const answer = page.waitForResponse((r) => r.url() === `${url}/bans` && r.request().method() === "POST");
    await row.getByRole("button", { name: "Ban 1 h" }).click();
    expect((await answer).status()).toBe(409);
    await page.locator("#ban-form .warning", { hasText: "your own address" }).waitFor();
    expect(await page.locator('#ban-form input[name="value"]').inputValue()).toBe("127.0.0.1");
    expect(app.core.bans.list().some((b) => b.value === "127.0.0.1")).toBe(false);
    expect(await seriousViolations(page)).toEqual([]);
    await page.close();
  }, 60_000);

  it("Disconnect says the client may come back and offers Deactivate or Ban; Ban keeps it out", async () => {
    const { password } = await app.core.credentials.create({ type: "mqtt", username: "sticky" });
    const client = await connectMqtt(mqttPort, { username: "sticky", password, clientId: "sticky-1" });
    const page = await newPage();
    await signIn(page);
    const row = page.locator('tr[data-username="sticky"]');
    await row.locator(".badge.online").waitFor({ timeout: 10_000 });
    // the sessions are in the row's detail, opened from the name
    await row.locator("a.expand").click();
    const detail = page.locator('tbody.integration:has(> tr[data-username="sticky"]) tr.detail');
    const gone = closed(client);
    await detail.getByRole("button", { name: "Disconnect" }).click();
    await gone;
    const notice = page.locator("#panel #disconnected-notice");
    await notice.waitFor();
    expect(await notice.textContent()).toContain("It may connect again at once");
    expect(await notice.getByRole("button", { name: "Deactivate sticky" }).count()).toBe(1);
    expect(await seriousViolations(page)).toEqual([]);
    // its forms kept their fields (a form parsed in a table context loses them)
    expect(await notice.locator('input[name="target"]').count()).toBe(2);
    await notice.getByRole("button", { name: "Ban its client id for 1 hour" }).click();
    await page.waitForURL(`${url}/bans`);
    await page.locator("#bans tbody tr", { hasText: "sticky-1" }).waitFor();
    expect(await refusalCode(mqttPort, { username: "sticky", password, clientId: "sticky-1" })).toBe(5);
    expect(await refusalCode(mqttPort, { username: "sticky", password, clientId: "sticky-2" })).toBe(0);
    await page.close();
  }, 60_000);
});
