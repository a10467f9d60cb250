import { describe, expect, it } from "bun:test";
import { adminPassword, testWeb } from "../helpers/app.ts";
import { sha256Hex } from "../../src/lib/ids.ts";

// Managing admins on the page: each action is a form post with CSRF, answered with a redirect.
describe("admins on the settings page", () => {
  it("changing one's own password needs the current one, ends every other session, keeps this browser signed in", async () => {
    const { request, core } = await testWeb();
    const other = await core.admins.signIn("admin", adminPassword, "other-browser");
    const wrong = await request("POST", "/settings/password", {
      form: { current: "not-it", password: "a-new-password-1", confirm: "a-new-password-1" },
    });
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toContain("the current password is wrong");
    const differ = await request("POST", "/settings/password", {
      form: { current: adminPassword, password: "a-new-password-1", confirm: "a-new-password-2" },
    });
    expect(differ.status).toBe(400);
    expect(await differ.text()).toContain("the two new passwords differ");
    expect(core.admins.resolveSession(other.token)).toBeDefined(); // nothing changed yet

    const ok = await request("POST", "/settings/password", {
      form: { current: adminPassword, password: "a-new-password-1", confirm: "a-new-password-1" },
    });
    expect(ok.status).toBe(303);
    const fresh = /gh_session=([^;]+)/.exec(ok.headers.get("set-cookie") ?? "")![1]!;
    expect(core.admins.resolveSession(fresh)?.username).toBe("admin");
    expect(core.admins.resolveSession(other.token)).toBeUndefined();
    await expect(core.admins.signIn("admin", adminPassword, "t")).rejects.toThrow();
    expect((await core.admins.signIn("admin", "a-new-password-1", "t")).session.username).toBe("admin");
  });

  it("adds an admin (a taken name is a conflict), removes another, never oneself or the last one", async () => {
    const { request, core } = await testWeb();
    expect(
      (await request("POST", "/settings/admins", { form: { username: "night-shift", password: "night-shift-pass" } }))
        .status,
    ).toBe(303);
    const taken = await request("POST", "/settings/admins", {
      form: { username: "night-shift", password: "overwritten?" },
    });
    expect(taken.status).toBe(409);
    expect((await core.admins.signIn("night-shift", "night-shift-pass", "t")).session.username).toBe("night-shift"); // not overwritten
    const hostile = await request("POST", "/settings/admins", {
      form: { username: "<img src=x onerror=alert(1)>", password: "whatever-123" },
    });
    expect(hostile.status).toBe(400);
    expect(await hostile.text()).not.toContain("<img src=x");

    expect((await request("POST", "/settings/admins/remove", { form: { username: "admin" } })).status).toBe(400); // oneself
    const { token } = await core.admins.signIn("night-shift", "night-shift-pass", "t");
    expect((await request("POST", "/settings/admins/remove", { form: { username: "night-shift" } })).status).toBe(303);
    expect(core.admins.list().map((a) => a.username)).toEqual(["admin"]);
    expect(core.admins.resolveSession(token)).toBeUndefined(); // its sessions ended with it
    expect(() => core.admins.removeAdmin("admin", "someone-else")).toThrow("the last admin cannot be removed");
  });

  it("lists signed-in sessions and ends one; a forged form is refused", async () => {
    const { request, core } = await testWeb();
    const elsewhere = await core.admins.signIn("admin", adminPassword, "tablet");
    const page = await (await request("GET", "/settings")).text();
    expect(page).toContain("(this browser)");
    const id = sha256Hex(elsewhere.token); // the stored id: the token's hash
    expect(core.admins.sessions().map((s) => s.id)).toContain(id);
    expect((await request("POST", "/settings/sessions/end", { form: { id }, csrf: false })).status).toBe(403);
    expect((await request("POST", "/settings/sessions/end", { form: { id } })).status).toBe(303);
    expect(core.admins.resolveSession(elsewhere.token)).toBeUndefined();
    expect((await request("GET", "/settings")).status).toBe(200); // this browser is still signed in
  });
});

describe("the page's event stream", () => {
  it("tells an open page about changes, and ends when that admin's session ends", async () => {
    const { request, core, cookie } = await testWeb();
    const res = await request("GET", "/events");
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const next = async () => {
      const r = await reader.read();
      return r.done ? null : decoder.decode(r.value);
    };
    expect(await next()).toContain("retry:");
    await core.credentials.create({ type: "mqtt", username: "streamed" });
    expect(await next()).toContain("event: changed");
    core.admins.signOut(cookie.replace("gh_session=", ""));
    await core.credentials.create({ type: "mqtt", username: "after-sign-out" });
    expect(await next()).toBeNull(); // closed, nothing more said
    expect((await request("GET", "/events")).status).not.toBe(200);
  });
});
