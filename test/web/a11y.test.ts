import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { App } from "../../src/app.ts";
import { adminPassword, cleanupTempDirs, testApp } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";

// axe-core in a real Chromium: every page, signed in and first-start, on a desktop and on a phone, against
// WCAG 2.0-2.2 A and AA (target size included) and axe's best practices.
const axeSource = await Bun.file(require.resolve("axe-core/axe.min.js")).text();

let browser: Browser;
let app: App;
let url: string;

beforeAll(async () => {
  browser = await launchBrowser();
  ({ app, url } = await testApp());
  // content that could trip contrast or naming rules: a row in every state, a pending secret, a token
  const { integration } = await app.core.credentials.create({
    type: "opcua",
    username: "plc-hall-7",
    description: "press line 3",
  });
  await app.core.credentials
    .create({ type: "mqtt", username: "sensor-off" })
    .then(({ integration: i }) => app.core.credentials.setActive(i.id, false));
  await app.core.admins.addAdmin("night-shift", "night-shift-password"); // its Remove button is a target too
  const token = app.core.admins.createApiToken("prometheus").token;
  // an uplink whose upstream refuses: a row with its state and last error
  const uplink = await fetch(`${url}/api/v1/uplinks`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "a11y-cloud", urls: ["mqtt://127.0.0.1:9"], forward: ["#"] }),
  });
  expect(uplink.status).toBe(201);
  void integration;
  // a pending onboarding request, so its table (checkboxes, buttons) is on the page
  app.core.onboarding.open({ minutes: 30, by: "test" });
  await app.core.onboarding.consider("mqtt", "press-waiting", "its-own-password", {
    remote: "10.0.0.9",
    clientId: "p-9",
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.stop();
  cleanupTempDirs();
});

type Violation = { id: string; impact: string | null; help: string; nodes: { target: string[] }[] };

async function seriousViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    const axe = (
      window as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Violation[] }> } }
    ).axe;
    const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];
    const r = await axe.run(document, { runOnly: { type: "tag", values: tags } });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target })),
    }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help} at ${v.nodes
          .map((n) => n.target.join(" "))
          .slice(0, 3)
          .join(", ")}`,
    );
}

const signedInPages = (id: number) => [
  "/integrations",
  "/integrations/new",
  "/integrations/new?type=vrpc",
  "/integrations?page=99",
  `/integrations/${id}`,
  `/integrations/${id}/edit`,
  `/integrations/${id}/delete`,
  "/once/not-a-key",
  "/agents",
  "/certificates",
  "/topics",
  "/bans",
  "/activity",
  "/settings",
  "/settings/tokens",
  "/uplinks",
  "/uplinks/new",
  "/uplinks/a11y-cloud/edit",
];

for (const [label, viewport] of [
  ["desktop", { width: 1366, height: 900 }],
  ["phone", { width: 390, height: 844 }],
] as const) {
  describe(`axe-core on a ${label}`, () => {
    it("no serious or critical violations on the sign-in page and every signed-in page", async () => {
      // the CSP forbids inline script, as it should; axe is injected by the test, not by the page
      const context = await browser.newContext({ viewport, bypassCSP: true });
      const page = await context.newPage();
      const found: string[] = [];
      await page.goto(`${url}/login`);
      found.push(...(await seriousViolations(page)).map((v) => `/login: ${v}`));
      await page.fill('input[name="username"]', "admin");
      await page.fill('input[name="password"]', adminPassword);
      await page.click('button[type="submit"]');
      await page.waitForURL(`${url}/integrations`);
      const id = app.core.credentials.findByUsername("plc-hall-7")!.id;
      for (const path of signedInPages(id)) {
        await page.goto(`${url}${path}`);
        found.push(...(await seriousViolations(page)).map((v) => `${path}: ${v}`));
      }
      // the list with a row's detail open and onboarding's form unfolded (its checkboxes, its note)
      await page.goto(`${url}/integrations`);
      await page.locator('tr[data-username="plc-hall-7"] a.expand').click();
      await page.locator("tr.detail").waitFor();
      app.core.onboarding.close();
      await page.locator("#onboarding summary").waitFor();
      await page.locator("#onboarding summary").click();
      found.push(...(await seriousViolations(page)).map((v) => `/integrations (detail, onboarding form): ${v}`));
      // pages that answer a post: the bulk permissions page, the API token's revoke confirmation
      await page.goto(`${url}/integrations`);
      await page.locator('tr[data-username="plc-hall-7"] input[name="ids"]').check();
      await page.selectOption('form.bulk select[name="action"]', "permissions");
      await Promise.all([page.waitForURL(`${url}/integrations/bulk`), page.locator("form.bulk button").click()]);
      found.push(...(await seriousViolations(page)).map((v) => `bulk permissions: ${v}`));
      await page.goto(`${url}/settings/tokens`);
      await Promise.all([
        page.waitForURL(/\/settings\/tokens\/\d+\/delete$/),
        page.evaluate(() => (document.querySelector("form[data-confirm]") as HTMLFormElement).submit()),
      ]);
      expect(await page.textContent("h1")).toBe("Revoke API token?");
      found.push(...(await seriousViolations(page)).map((v) => `token revoke: ${v}`));
      app.core.onboarding.open({ minutes: 30, by: "test" });
      await app.core.onboarding.consider("mqtt", "press-waiting", "its-own-password", { remote: "10.0.0.9" });
      expect(found).toEqual([]);
      await context.close();
    }, 90_000);
  });
}

describe("axe-core on the first-start pages", () => {
  it("the setup page, a used or invalid setup link and the sign-in page without an admin have no serious or critical violations", async () => {
    const fresh = await testApp();
    try {
      fresh.app.core.db.$client.run("DELETE FROM admins");
      const token = fresh.app.core.admins.startSetup();
      const context = await browser.newContext({ bypassCSP: true });
      const page = await context.newPage();
      await page.goto(`${fresh.url}/setup?token=${token}`);
      expect(await page.locator("main").count()).toBe(1);
      expect(await page.getAttribute("html", "lang")).toBe("en");
      expect(await seriousViolations(page)).toEqual([]);
      // an invalid (or used, or expired) link: a styled page in a language, like every other
      for (const path of [`/setup?token=${token.slice(1)}x`, "/login"]) {
        await page.goto(`${fresh.url}${path}`);
        expect(await page.getAttribute("html", "lang")).toBe("en");
        expect(await page.locator("main .card").count()).toBe(1);
        expect(await seriousViolations(page)).toEqual([]);
      }
      await context.close();
    } finally {
      await fresh.app.stop();
    }
  }, 60_000);
});
