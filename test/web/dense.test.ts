import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import type { App } from "../../src/app.ts";
import { adminPassword, cleanupTempDirs, testApp } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";
import { closed, connectMqtt } from "../helpers/mqtt.ts";

/**
 * The Integrations page as a plant engineer runs the line from it (issue 26, part A), in Chromium:
 * dense at 1366×768, labelled cards on a phone, the keyboard paths, bulk work on 500 integrations with
 * their live sessions, search by client id, failed logins grouped. No sleeps: every wait is on an
 * element, a response, a dialog or a download.
 */

let browser: Browser;
let app: App;
let url: string;
const longName = "a-rather-long-username-for-the-plc-gateway-in-hall-7-cabinet-12";

beforeAll(async () => {
  browser = await launchBrowser();
  ({ app, url } = await testApp());
  // a screenful and more of every type, with long names and descriptions
  for (let i = 0; i < 40; i++) {
    const type = (["mqtt", "opcua", "http", "vrpc"] as const)[i % 4]!;
    await app.core.credentials.create({
      type,
      description: i % 3 ? `press line ${i}, cabinet 12, hall 7, left side next to the gate` : "",
    });
  }
  await app.core.credentials.create({ type: "mqtt", username: longName, description: "x".repeat(300) });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await app?.stop();
  cleanupTempDirs();
});

async function signedIn(viewport = { width: 1366, height: 768 }, javaScriptEnabled = true): Promise<Page> {
  const context = await browser.newContext({ viewport, javaScriptEnabled });
  const page = await context.newPage();
  await page.goto(`${url}/login`);
  await page.fill('input[name="username"]', "admin");
  await page.fill('input[name="password"]', adminPassword);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${url}/integrations`);
  return page;
}

describe("at 1366 × 768", () => {
  it("at least 15 integrations show at once, one line each; a long name is cut and shown whole on hover and focus", async () => {
    const page = await signedIn();
    const c = await connectMqtt(app.address("mqtt")!.port, {
      username: longName,
      password: (await app.core.credentials.resetPassword(app.core.credentials.findByUsername(longName)!.id)).password,
      clientId: "plc-hall-7",
    });
    await page.goto(`${url}/integrations`);
    await page.locator(`tr[data-username="${longName}"] .badge.online`).waitFor();
    const rows = await page.evaluate(() =>
      Array.from(document.querySelectorAll("tbody.integration > tr:first-child")).map((tr) => {
        const r = tr.getBoundingClientRect();
        const time = tr.querySelector("time")!.getBoundingClientRect();
        return { top: r.top, bottom: r.bottom, height: r.height, timeHeight: time.height };
      }),
    );
    const visible = rows.filter((r) => r.bottom <= 768);
    expect(visible.length).toBeGreaterThanOrEqual(15);
    // one line per row: every row as tall as the others, and no taller than two lines of text would need
    const heights = new Set(rows.map((r) => Math.round(r.height)));
    expect(heights.size).toBe(1);
    expect(rows[0]!.height).toBeLessThan(40);
    expect(Math.max(...rows.map((r) => r.timeHeight))).toBeLessThan(24); // relative times on one line
    // the long name and description are cut with an ellipsis...
    const row = page.locator(`tr[data-username="${longName}"]`);
    const cut = await row.evaluate((tr) => {
      const name = tr.querySelector(".username") as HTMLElement;
      const desc = tr.querySelector(".description .clip") as HTMLElement;
      return {
        name: name.scrollWidth > name.clientWidth,
        desc: desc.scrollWidth > desc.clientWidth,
        overflow: getComputedStyle(name).textOverflow,
      };
    });
    expect(cut).toEqual({ name: true, desc: true, overflow: "ellipsis" });
    // ...and the whole name shows on hover, and on keyboard focus
    const full = row.locator(".full");
    expect(await full.isVisible()).toBe(false);
    await row.locator("a.expand").hover();
    await full.waitFor({ state: "visible" });
    expect(await full.textContent()).toBe(longName);
    await page.mouse.move(0, 0);
    await full.waitFor({ state: "hidden" });
    await row.locator('input[type="checkbox"]').focus();
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.closest("tr")?.getAttribute("data-username"))).toBe(
      longName,
    );
    await full.waitFor({ state: "visible" });
    // the sessions, permissions and the last login's origin are in the row's detail, opened from the name
    await page.keyboard.press("Enter");
    const detail = page.locator(`tbody.integration:has(> tr[data-username="${longName}"]) tr.detail`);
    await detail.waitFor();
    expect(await detail.textContent()).toContain("plc-hall-7");
    expect(await detail.textContent()).toContain("from 127.0.0.1, client id plc-hall-7");
    await c.endAsync();
    await page.context().close();
  }, 60_000);

  it("row actions do not touch: a gap between Reset password and Delete", async () => {
    const page = await signedIn();
    const row = page.locator("tbody.integration > tr:first-child").first();
    const reset = (await row.getByRole("button", { name: "Reset password" }).boundingBox())!;
    const del = (await row.getByRole("link", { name: "Delete" }).boundingBox())!;
    expect(del.x - (reset.x + reset.width)).toBeGreaterThanOrEqual(8);
    expect(Math.abs(del.y - reset.y)).toBeLessThan(4); // one line
    await page.context().close();
  }, 30_000);
});

describe("on a phone (390 × 844)", () => {
  it("every value of a card says what it is", async () => {
    const page = await signedIn({ width: 390, height: 844 });
    const labels = await page.evaluate(() =>
      Array.from(document.querySelectorAll("tbody.integration:first-of-type > tr:first-child > td[data-label]")).map(
        (td) => ({
          label: getComputedStyle(td, "::before").content,
          shown: (td as HTMLElement).offsetHeight > 0,
        }),
      ),
    );
    const shown = labels.filter((l) => l.shown).map((l) => l.label);
    expect(shown).toEqual(expect.arrayContaining(['"Type: "', '"Status: "', '"Last login: "', '"Created: "']));
    // last login and created can no longer be told apart only by their order
    expect(shown.indexOf('"Last login: "')).toBeGreaterThanOrEqual(0);
    await page.context().close();
    // a desktop table says it in its head instead
    const desk = await signedIn();
    const content = await desk.evaluate(
      () => getComputedStyle(document.querySelector("td[data-label='Created']")!, "::before").content,
    );
    expect(content).toBe("none");
    await desk.context().close();
  }, 30_000);
});

describe("by keyboard", () => {
  it("Enter on Add opens the form at its first field; ArrowDown on Type keeps the focus; Escape closes it back to Add", async () => {
    const page = await signedIn();
    const add = page.locator(".page-head a.add");
    await add.focus();
    await page.keyboard.press("Enter");
    await page.locator("#integration-form").waitFor();
    await page.waitForFunction(() => document.activeElement?.id === "integration-type");
    const before = await page.inputValue("#integration-username");
    // ArrowDown on a closed select changes its value at once: the form is swapped for the new type's
    const swapped = page.waitForResponse(
      (r) => r.url().endsWith("/integrations/new") && r.request().method() === "POST",
    );
    await page.keyboard.press("ArrowDown");
    await swapped;
    await page.waitForFunction(
      (was) => (document.getElementById("integration-username") as HTMLInputElement).value !== was,
      before,
    );
    expect(await page.inputValue("#integration-type")).toBe("opcua");
    expect(await page.inputValue("#integration-username")).toBe(before.replace(/^mqtt-/, "opcua-"));
    await page.waitForFunction(() => document.activeElement?.id === "integration-type");
    // the connection help follows the type
    expect(await page.locator("#integration-form .connect-help").textContent()).toContain("opc.tcp://");
    await page.locator("#integration-description").focus();
    await page.keyboard.press("Escape");
    await page.locator("#integration-form").waitFor({ state: "detached" });
    await page.waitForFunction(() => document.activeElement?.matches(".page-head a.add") === true);
    expect(new URL(page.url()).pathname).toBe("/integrations");
    // Enter in the form saves it; the focus goes to the new password's Copy button
    await page.keyboard.press("Enter");
    await page.locator("#integration-username").waitFor();
    await page.waitForFunction(() => document.activeElement?.id === "integration-type");
    await page.locator("#integration-description").fill("made by keyboard");
    await page.keyboard.press("Enter");
    await page.locator("#integration-form .secret-value").waitFor();
    await page.waitForFunction(() => document.activeElement?.matches("#integration-form button.copy") === true);
    await page.context().close();
  }, 60_000);
});

describe("bulk work in the browser", () => {
  it("all 500 matching -> Deactivate: one dialog naming 500, every one deactivated, their live sessions dropped", async () => {
    const made = await app.core.credentials.createMany(
      Array.from({ length: 500 }, (_, i) => ({ type: "mqtt" as const, username: `bulk-line-${i}` })),
    );
    const port = app.address("mqtt")!.port;
    const clients = await Promise.all(
      made
        .slice(0, 5)
        .map((m, i) =>
          connectMqtt(port, { username: m.integration.username, password: m.password, clientId: `bulk-plc-${i}` }),
        ),
    );
    const gone = clients.map((c) => closed(c));
    const page = await signedIn();
    await page.goto(`${url}/integrations?q=bulk-line`);
    await page.locator("#integration-table").getByText("500 integrations ·").waitFor();
    const dialogs: string[] = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await page.locator('form.bulk input[name="all"]').check();
    await page.selectOption('form.bulk select[name="action"]', "deactivate");
    await Promise.all([page.waitForURL(/done=deactivated&n=500/), page.locator("form.bulk button").click()]);
    expect(dialogs).toEqual(["Deactivate 500 integrations? Their connected clients are disconnected at once."]);
    expect(await page.locator(".flash").textContent()).toBe("Deactivated 500 integrations.");
    await Promise.all(gone);
    expect(made.every((m) => app.core.credentials.get(m.integration.id)!.active === false)).toBe(true);
    expect(made.every((m) => app.core.sessions.countFor(m.integration.id) === 0)).toBe(true);
    const entries = app.core.db.$client
      .query(
        "SELECT count(*) AS n FROM activity WHERE action = 'integration.deactivated' AND subject LIKE 'bulk-line-%'",
      )
      .get() as { n: number };
    expect(entries.n).toBe(500);
    // the rows on screen say so too (the page's filter kept)
    expect(new URL(page.url()).searchParams.get("q")).toBe("bulk-line");
    expect(await page.locator(".badge.deactivated").count()).toBe(25);
    await page.context().close();
  }, 90_000);

  it("ticked rows -> Export as CSV: a download with exactly those rows", async () => {
    const page = await signedIn();
    await page.goto(`${url}/integrations?q=bulk-line-4`);
    const boxes = page.locator("tbody.integration input[name=ids]");
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    const names = await Promise.all(
      [0, 1].map((n) => page.locator("tbody.integration > tr").nth(n).getAttribute("data-username")),
    );
    await page.selectOption('form.bulk select[name="action"]', "export-csv");
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("form.bulk button").click()]);
    const csv = readFileSync((await download.path())!, "utf8");
    const lines = csv.trim().split("\r\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toStartWith("id,username,type,description");
    for (const n of names) expect(csv).toContain(`,${n},mqtt,`);
    await page.context().close();
  }, 30_000);

  it("without JavaScript: ticked rows -> Activate asks on a page naming the count, then comes back", async () => {
    const page = await signedIn(undefined, false);
    await page.goto(`${url}/integrations?q=bulk-line-1&sort=username`);
    const boxes = page.locator("tbody.integration input[name=ids]");
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await page.selectOption('form.bulk select[name="action"]', "activate");
    await page.locator("form.bulk button").click();
    expect(await page.textContent("h1")).toBe("Activate 2 integrations?");
    await page.getByRole("button", { name: "Activate" }).click();
    await page.waitForURL(/done=activated&n=2/);
    expect(new URL(page.url()).searchParams.get("q")).toBe("bulk-line-1");
    expect(await page.locator(".flash").textContent()).toBe("Activated 2 integrations.");
    expect(await page.locator(".badge.offline").count()).toBe(2);
    await page.context().close();
  }, 30_000);
});

describe("search and failed logins", () => {
  it("finds an integration by its live client id; failed logins are grouped with a count", async () => {
    const { integration, password } = await app.core.credentials.create({ type: "mqtt", username: "quiet-name" });
    const client = await connectMqtt(app.address("mqtt")!.port, {
      username: "quiet-name",
      password,
      clientId: "Siemens-S7-1500",
    });
    const page = await signedIn();
    await page.locator('form.toolbar input[name="q"]').fill("s7-1500");
    // the newest row is on the unfiltered list already: wait for the filtered one
    await page.locator("#integration-table").getByText("1 integration ·").waitFor();
    expect(await page.locator("tbody.integration > tr").getAttribute("data-username")).toBe("quiet-name");
    await client.endAsync();
    void integration;

    // a device retrying a stale password: one line, counted
    for (let i = 0; i < 4; i++)
      await connectMqtt(app.address("mqtt")!.port, {
        username: "quiet-name",
        password: "stale-password",
        clientId: "retrying-plc",
        reconnectPeriod: 0,
      }).catch(() => undefined);
    await page.goto(`${url}/integrations`);
    await page.locator("#failed-logins summary").click();
    const line = page.locator("#failed-logins tbody tr", { hasText: "quiet-name" });
    await line.waitFor();
    expect(await line.count()).toBe(1);
    const cells = await line.locator("td").allTextContents();
    expect(cells[1]).toBe("MQTT 3.1.1"); // the type's label, then the protocol level
    expect(cells[2]).toBe("quiet-name");
    expect(cells[4]).toBe("wrong-password");
    expect(cells[5]).toBe("4");
    expect(cells[7]).toBe("retrying-plc");
    await page.context().close();
  }, 60_000);
});
