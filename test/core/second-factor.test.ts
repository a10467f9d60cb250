import { afterAll, describe, expect, it } from "bun:test";
import { AdminStore, pendingMaxCodes } from "../../src/core/admins.ts";
import { totpCode } from "../../src/core/second-factor.ts";
import { AppError } from "../../src/lib/errors.ts";
import { cleanupTempDirs, testCore, testHashCost, testWeb } from "../helpers/app.ts";

afterAll(cleanupTempDirs);

/** enrolled: an admin store with "ada" signed up for TOTP; returns the key and the recovery codes. */
async function enrolled() {
  const { db } = testCore();
  const store = new AdminStore(db, { hashCost: testHashCost });
  await store.setPassword("ada", "ada-password-1");
  const { secret } = store.startEnrolment("ada");
  const recovery = store.confirmEnrolment("ada", totpCode(secret));
  return { store, db, secret, recovery };
}

async function pending(store: AdminStore, remote: string): Promise<string> {
  const step = await store.beginSignIn("ada", "ada-password-1", remote);
  if (!("pending" in step)) throw new Error("expected the code step");
  return step.pending;
}

const next = (secret: string) => totpCode(secret, Date.now() + 30_000);

describe("TOTP second factor (core)", () => {
  it("the right password alone opens no session; signIn (password only) refuses such an admin", async () => {
    const { store } = await enrolled();
    const step = await store.beginSignIn("ada", "ada-password-1", "10.0.0.1");
    expect("pending" in step && "token" in step).toBe(false);
    expect("pending" in step).toBe(true);
    await expect(store.signIn("ada", "ada-password-1", "10.0.0.1")).rejects.toThrow("code");
  });

  it("a code is good once: the same code on a second sign-in inside its window is refused", async () => {
    const { store, secret } = await enrolled();
    const code = next(secret);
    expect("token" in store.completeSignIn(await pending(store, "10.0.0.1"), code, "10.0.0.1")).toBe(true);
    const again = store.completeSignIn(await pending(store, "10.0.0.2"), code, "10.0.0.2");
    expect(again).toEqual({ retry: true, message: "wrong or already used code" });
    // and an older step's code (the enrolment's) is refused after a later one was used
    expect("token" in store.completeSignIn(await pending(store, "10.0.0.3"), totpCode(secret), "10.0.0.3")).toBe(false);
  });

  it("a recovery code works once, in any case and with or without dashes", async () => {
    const { store, recovery } = await enrolled();
    const code = recovery[0]!.replaceAll("-", " ").toUpperCase();
    expect("token" in store.completeSignIn(await pending(store, "10.0.0.1"), code, "10.0.0.1")).toBe(true);
    expect(store.completeSignIn(await pending(store, "10.0.0.1"), recovery[0]!, "10.0.0.1")).toMatchObject({
      retry: true,
    });
    expect(store.secondFactor("ada")).toEqual({ enabled: true, recoveryLeft: 9 });
  });

  it("a burst of wrong codes: 5 per password check, then the password again; 5 per address and name a minute, then 429 even for the right code", async () => {
    const { store, secret } = await enrolled();
    let p = await pending(store, "10.0.0.1");
    const answers = [];
    for (let i = 0; i < pendingMaxCodes; i++) answers.push(store.completeSignIn(p, "000000", "10.0.0.1"));
    expect(answers.map((a) => ("retry" in a ? a.retry : "session"))).toEqual([true, true, true, true, false]);
    // the form is spent: even the right code needs the password again
    expect(store.completeSignIn(p, next(secret), "10.0.0.1")).toMatchObject({ retry: false });
    // that (address, name) pair has used its 5 failures: the right code is refused without being checked
    p = await pending(store, "10.0.0.1");
    expect(() => store.completeSignIn(p, next(secret), "10.0.0.1")).toThrow("too many wrong codes");
    // the owner from another address gets in
    expect("token" in store.completeSignIn(await pending(store, "10.0.0.9"), next(secret), "10.0.0.9")).toBe(true);
  });

  it("a code guessed from many addresses: 10 wrong a minute per name, then refused everywhere", async () => {
    const { store, secret } = await enrolled();
    for (let a = 1; a <= 5; a++) {
      const p = await pending(store, `10.0.1.${a}`);
      store.completeSignIn(p, "000000", `10.0.1.${a}`);
      store.completeSignIn(p, "000001", `10.0.1.${a}`);
    }
    const p = await pending(store, "10.0.2.1");
    let refused: unknown;
    try {
      store.completeSignIn(p, next(secret), "10.0.2.1");
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe("rate_limited");
  });

  it("strangers: no pending sign-in, a forged or oversize token, a huge code: refused without a session", async () => {
    const { store, secret } = await enrolled();
    expect(store.completeSignIn(undefined, next(secret), "10.0.0.1")).toMatchObject({ retry: false });
    expect(store.completeSignIn("forged", next(secret), "10.0.0.1")).toMatchObject({ retry: false });
    expect(store.completeSignIn("x".repeat(100_000), next(secret), "10.0.0.1")).toMatchObject({ retry: false });
    const p = await pending(store, "10.0.0.1");
    expect(store.completeSignIn(p, "1".repeat(64 * 1024), "10.0.0.1")).toMatchObject({ retry: true });
  });

  it("reset (the CLI's reset-2fa): key and codes gone, sessions ended, waiting code forms void", async () => {
    const { store, db } = await enrolled();
    const p = await pending(store, "10.0.0.1");
    expect(store.resetSecondFactor("ada")).toEqual({ had: true });
    expect(store.completeSignIn(p, "000000", "10.0.0.1")).toMatchObject({ retry: false });
    expect(db.$client.query("SELECT count(*) AS n FROM admin_recovery_codes").get()).toEqual({ n: 0 });
    expect("token" in (await store.beginSignIn("ada", "ada-password-1", "10.0.0.1"))).toBe(true);
  });
});

describe("the sign-in code form over HTTP (strangers, CSRF)", () => {
  it("POST /login/code without the pre-auth token is 403; without a pending sign-in it asks for the password", async () => {
    const { request } = await testWeb();
    expect((await request("POST", "/login/code", { auth: false, form: { code: "123456" }, csrf: false })).status).toBe(
      403,
    );
    const page = await request("GET", "/login", { auth: false });
    const preauth = /gh_preauth=([^;]+)/.exec(page.headers.get("set-cookie") ?? "")![1]!;
    const res = await request("POST", "/login/code", {
      auth: false,
      csrf: false,
      headers: { cookie: `gh_preauth=${preauth}` },
      form: { code: "123456", _csrf: preauth },
    });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("enter your password again");
    expect(res.headers.get("set-cookie") ?? "").not.toContain("gh_session=");
  });

  const forms: [string, Record<string, string>][] = [
    ["/settings/2fa/start", {}],
    ["/settings/2fa/confirm", { code: "123456" }],
    ["/settings/2fa/disable", { code: "123456" }],
    ["/settings/backup/database", {}],
    ["/settings/backup/export", {}],
    ["/settings/admins/role", { username: "admin", role: "read-only" }],
  ];
  for (const [path, form] of forms) {
    for (const variant of ["missing", "wrong", "cross-site"] as const) {
      it(`POST ${path} with a ${variant} CSRF token -> 403`, async () => {
        const { request, csrf } = await testWeb();
        const res = await request("POST", path, {
          csrf: false,
          form: variant === "missing" ? form : { ...form, _csrf: variant === "wrong" ? "nope" : csrf },
          headers: variant === "cross-site" ? { origin: "https://evil.example" } : {},
        });
        expect(res.status).toBe(403);
      });
    }
  }
});
