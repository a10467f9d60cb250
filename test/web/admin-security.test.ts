import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { App } from "../../src/app.ts";
import { totpCode } from "../../src/core/second-factor.ts";
import { adminPassword, cleanupTempDirs, newDataDir, tempDir, testApp } from "../helpers/app.ts";
import { launchBrowser } from "../helpers/browser.ts";
import { runCli } from "../helpers/serve.ts";

// The admin's second factor, the read-only role's pages and the backup downloads, in a real Chromium
// against the whole appliance; codes are computed here from the key the page shows (RFC 6238).
const axeSource = await Bun.file(require.resolve("axe-core/axe.min.js")).text();

let browser: Browser;
let app: App;
let url: string;
let dir: string;

beforeAll(async () => {
  browser = await launchBrowser();
  ({ app, url, dir } = await testApp());
  await app.core.credentials.create({ type: "mqtt", username: "press-7", description: "line 3" });
  await app.core.admins.addAdmin("viewer", "viewer-password-1", "read-only");
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
    const r = await (window as unknown as { axe: { run(): Promise<{ violations: Violation[] }> } }).axe.run();
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target) }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${page.url()}: ${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.slice(0, 3))}`);
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  // bypassCSP only so that axe can be injected; the pages themselves run under the real CSP
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, bypassCSP: true });
  const page = await context.newPage();
  page.on("dialog", (d) => void d.accept());
  return { context, page };
}

async function password(page: Page, username: string, pw: string) {
  await page.goto(`${url}/login`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', pw);
  await page.click('button[type="submit"]');
}

async function signOut(page: Page) {
  await page.click("header form[action='/logout'] button");
  await page.waitForURL(/\/login/);
}

describe("two-step sign-in (TOTP) in the browser", () => {
  it("sets up an app from the QR page, asks for the code after the password, refuses a replayed code, takes a recovery code once", async () => {
    const { context, page } = await newPage();
    const axe: string[] = [];
    await password(page, "admin", adminPassword);
    await page.waitForURL(`${url}/integrations`);
    await page.goto(`${url}/settings/2fa`);
    axe.push(...(await seriousViolations(page)));
    await page.click("form[action='/settings/2fa/start'] button");
    await page.waitForURL(`${url}/settings/2fa`);
    expect(await page.locator(".qr svg path").count()).toBe(1); // the QR code, drawn on the server
    axe.push(...(await seriousViolations(page)));
    const secret = (await page.textContent(".secret-value"))!.trim();
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    await page.fill("input[name='code']", "000000" === totpCode(secret) ? "111111" : "000000");
    await page.click("form[action='/settings/2fa/confirm'] button");
    expect(await page.textContent(".field-error")).toContain("wrong code");
    await page.fill("input[name='code']", totpCode(secret));
    await page.click("form[action='/settings/2fa/confirm'] button");
    const recovery = (await page.locator("ul.codes code").allTextContents()).map((c) => c.trim());
    expect(recovery).toHaveLength(10);
    expect(new Set(recovery).size).toBe(10);
    axe.push(...(await seriousViolations(page)));
    // the database keeps hashes of the recovery codes, never the codes
    const stored = app.core.db.$client.query("SELECT code_hash FROM admin_recovery_codes").all() as {
      code_hash: string;
    }[];
    expect(stored).toHaveLength(10);
    for (const c of recovery) expect(JSON.stringify(stored)).not.toContain(c.replaceAll("-", ""));
    await signOut(page);

    // the password alone no longer signs in: the code page follows
    await password(page, "admin", adminPassword);
    await page.waitForSelector("form[action='/login/code']");
    axe.push(...(await seriousViolations(page)));
    expect(await page.context().cookies()).not.toContainEqual(expect.objectContaining({ name: "gh_session" }));
    // the next step's code (the enrolment used this step's): accepted within RFC 6238's one step of drift
    const code = totpCode(secret, Date.now() + 30_000);
    await page.fill("input[name='code']", code);
    await page.click("form[action='/login/code'] button");
    await page.waitForURL(`${url}/integrations`);
    await signOut(page);

    // the same code again, inside its window: refused
    await password(page, "admin", adminPassword);
    await page.waitForSelector("form[action='/login/code']");
    await page.fill("input[name='code']", code);
    await page.click("form[action='/login/code'] button");
    expect(await page.textContent(".field-error")).toContain("wrong or already used code");
    // a recovery code, typed in capitals without dashes, works once
    await page.fill("input[name='code']", recovery[3]!.replaceAll("-", "").toUpperCase());
    await page.click("form[action='/login/code'] button");
    await page.waitForURL(`${url}/integrations`);
    await page.goto(`${url}/settings/2fa`);
    expect(await page.textContent("main")).toContain("9 recovery codes left");
    await signOut(page);
    await password(page, "admin", adminPassword);
    await page.waitForSelector("form[action='/login/code']");
    await page.fill("input[name='code']", recovery[3]!);
    await page.click("form[action='/login/code'] button");
    expect(await page.textContent(".field-error")).toContain("wrong or already used code");
    expect(axe).toEqual([]);

    // a lost phone: `gatehouse admin reset-2fa admin` on the device, beside the running appliance
    const reset = await runCli(["admin", "reset-2fa", "admin", "--data-dir", dir]);
    expect(reset).toMatchObject({ code: 0 });
    expect(reset.out).toContain("removed");
    await password(page, "admin", adminPassword);
    await page.waitForURL(`${url}/integrations`);
    expect(app.core.admins.secondFactor("admin")).toEqual({ enabled: false, recoveryLeft: 0 });
    await context.close();
  }, 120_000);
});

describe("backups in the browser", () => {
  it("downloads a backup that `gatehouse restore` takes on a fresh data dir, leaving no copy behind", async () => {
    const { context, page } = await newPage();
    await password(page, "admin", adminPassword);
    await page.waitForURL(`${url}/integrations`);
    await page.goto(`${url}/settings/backup`);
    expect(await seriousViolations(page)).toEqual([]);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("form[action='/settings/backup/database'] button"),
    ]);
    expect(download.suggestedFilename()).toMatch(/^gatehouse-\d{8}-\d{6}\.db$/);
    const file = join(tempDir(), "downloaded.db");
    await download.saveAs(file);
    expect(readdirSync(dir).filter((n) => n.includes("download"))).toEqual([]);
    // restore on a fresh data dir with no appliance on it, then the integration is there
    const fresh = newDataDir();
    const restored = await runCli(["restore", file, "--data-dir", fresh]);
    expect(restored.err).toBe("");
    expect(restored.code).toBe(0);
    const listed = await runCli(["integrations", "list", "--json", "--data-dir", fresh]);
    expect(JSON.parse(listed.out).map((i: { username: string }) => i.username)).toContain("press-7");
    // and the restored appliance knows its admins (the backup is the whole database)
    const admins = await runCli(["admin", "list", "--data-dir", fresh]);
    expect(admins.out).toContain("viewer\tread-only");
    await context.close();
  }, 90_000);

  it("exports JSON without hashes by default; with them only when confirmed, and that file imports with --full", async () => {
    const { context, page } = await newPage();
    await password(page, "admin", adminPassword);
    await page.waitForURL(`${url}/integrations`);
    await page.goto(`${url}/settings/backup`);
    const save = async () => {
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click("form[action='/settings/backup/export'] button"),
      ]);
      const file = join(tempDir(), download.suggestedFilename());
      await download.saveAs(file);
      return file;
    };
    const plain = JSON.parse(readFileSync(await save(), "utf8"));
    expect(plain).toMatchObject({ format: "gatehouse-export", version: 1, secrets: false });
    expect(plain.integrations[0]).toMatchObject({ username: "press-7", type: "mqtt", description: "line 3" });
    expect(plain.integrations[0].passwordHash).toBeUndefined();
    // asked for the hashes without the confirmation: refused, the page says why
    await page.check("input[name='secrets']");
    await page.click("form[action='/settings/backup/export'] button");
    expect(await page.textContent(".field-error")).toContain("include hashes");
    await page.check("input[name='secrets']");
    await page.fill("input[name='confirm']", "include hashes");
    const withHashes = await save();
    expect(JSON.parse(readFileSync(withHashes, "utf8")).integrations[0].passwordHash).toMatch(/^\$/);
    const fresh = newDataDir();
    const imported = await runCli(["import", "--full", withHashes, "--data-dir", fresh]);
    expect(imported.code).toBe(0);
    const listed = await runCli(["integrations", "list", "--json", "--data-dir", fresh]);
    expect(JSON.parse(listed.out).map((i: { username: string }) => i.username)).toContain("press-7");
    await context.close();
  }, 90_000);
});

describe("a read-only admin in the browser", () => {
  it("sees the pages without forms that change things, cannot download a backup, and a forged post is refused", async () => {
    const { context, page } = await newPage();
    await password(page, "viewer", "viewer-password-1");
    await page.waitForURL(`${url}/integrations`);
    expect(await page.textContent("header")).toContain("read-only");
    await page.goto(`${url}/settings`);
    expect(await page.locator("form[action='/settings/admins']").count()).toBe(0);
    expect(await page.isDisabled("input[name='mqtt.publishAcl']")).toBe(true);
    expect(await page.locator("form[action='/settings/defaults'] button").count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
    await page.goto(`${url}/settings/backup`);
    expect(await page.locator("form[action='/settings/backup/database']").count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
    // the form is not there, but a post made by hand (with the session's own CSRF token) is refused too
    const status = await page.evaluate(async () => {
      const csrf = (document.querySelector("input[name='_csrf']") as HTMLInputElement).value;
      const r = await fetch("/settings/backup/database", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `_csrf=${encodeURIComponent(csrf)}`,
      });
      return r.status;
    });
    expect(status).toBe(403);
    await context.close();
  }, 60_000);
});
