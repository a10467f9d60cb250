import { expect } from "bun:test";

/** signIn: the browser's way, through the sign-in form; returns the session cookie and the page's CSRF token. */
export async function signIn(base: string, username = "admin", password = "correct-horse-battery") {
  const form = await fetch(`${base}/login`);
  const pre = form.headers.get("set-cookie")!.split(";")[0]!;
  const csrf = (await form.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
  const res = await fetch(`${base}/login`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie: pre, "content-type": "application/x-www-form-urlencoded", origin: base },
    body: new URLSearchParams({ _csrf: csrf, username, password }),
  });
  expect(res.status).toBe(303);
  const cookie = res.headers
    .getSetCookie()
    .find((c) => c.startsWith("gh_session="))!
    .split(";")[0]!;
  const page = await (await fetch(`${base}/integrations`, { headers: { cookie } })).text();
  return { cookie, csrf: page.match(/name="_csrf" value="([^"]+)"/)![1]! };
}
