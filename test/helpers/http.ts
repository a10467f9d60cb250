import { expect } from "bun:test";

/** postSignIn: the sign-in form fetched and sent as a browser does; the answer to the POST. */
export async function postSignIn(base: string, username: string, password: string): Promise<Response> {
  const form = await fetch(`${base}/login`);
  const pre = form.headers.get("set-cookie")!.split(";")[0]!;
  const csrf = (await form.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
  return fetch(`${base}/login`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie: pre, "content-type": "application/x-www-form-urlencoded", origin: base },
    body: new URLSearchParams({ _csrf: csrf, username, password }),
  });
}

/** signIn: the browser's way, through the sign-in form; returns the session cookie and the page's CSRF token. */
export async function signIn(base: string, username = "admin", password = "correct-horse-battery") {
  const res = await postSignIn(base, username, password);
  expect(res.status).toBe(303);
  const cookie = res.headers
    .getSetCookie()
    .find((c) => c.startsWith("gh_session="))!
    .split(";")[0]!;
  const page = await (await fetch(`${base}/integrations`, { headers: { cookie } })).text();
  return { cookie, csrf: page.match(/name="_csrf" value="([^"]+)"/)![1]! };
}
